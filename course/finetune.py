"""Fine-tuning a pretrained GPT (chapter 07): tasks, the response-only loss, a classification head, LoRA.

Everything trains with `course.train.Trainer` (the course's one training loop),
through its hooks: an `ExampleSampler` that draws rows of fixed example tensors,
fixed evaluation batches, and a ``loss_fn``.

* **Tasks**, built deterministically from a seed:
  `word_task_examples` (text to text: ``"upper: crown\\n"`` → ``"CROWN\\n"``,
  also ``lower`` and ``reverse``) and `speaker_examples` (which of two
  characters of Tiny Shakespeare speaks a line).
* **Supervised fine-tuning** (SFT): `encode_sft` turns (prompt, response) pairs
  into inputs and targets where every prompt position is -100, so the loss is
  computed on the response tokens only (`response_targets`); `greedy_complete`
  and `exact_match` evaluate.
* **Classification**: `GPTClassifier` puts a linear head on the hidden state of
  the last token; `bag_of_chars` + `fit_logistic_regression` is the baseline;
  `accuracy` and `confusion_matrix` evaluate.
* **LoRA**: `LoRALinear` adds ``(alpha / r) · B A`` to a frozen linear layer,
  with ``B = 0`` at the start so the wrapped model starts exactly as the
  pretrained one. `apply_lora`, `merge_lora` (fold ``B A`` into the weights:
  same outputs, no extra cost at inference) and `remove_lora`.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .model import GPT
from .train import TrainConfig

IGNORE = -100  # targets equal to this are left out of the cross-entropy (GPT.forward, F.cross_entropy)
WORD_TASKS = ("upper", "lower", "reverse")


# ============================================================================ tasks


def corpus_words(text: str, min_len: int = 3, max_len: int = 8) -> list[str]:
    """The distinct lower-case words of ``text`` with ``min_len``..``max_len`` letters, sorted."""
    if min_len < 1 or max_len < min_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got min_len={min_len}, max_len={max_len}.")
    return sorted({w for w in re.findall(r"[a-z]+", text) if min_len <= len(w) <= max_len})


def apply_word_task(task: str, word: str) -> str:
    """The answer of ``task`` for ``word`` (no newline)."""
    if task == "upper":
        return word.upper()
    if task == "lower":
        return word.lower()
    if task == "reverse":
        return word[::-1]
    raise ValueError(f"unknown task {task!r}: choose one of {WORD_TASKS}.")


def word_task_examples(
    words: Sequence[str], n: int, seed: int, tasks: Sequence[str] = WORD_TASKS
) -> list[tuple[str, str]]:
    """``n`` (prompt, response) pairs such as ("upper: crown\\n", "CROWN\\n"), drawn with ``seed``.

    ``lower`` gets the word in capitals, so every task changes its input. Give
    disjoint word lists for training and testing: held-out words are words the
    fine-tuning never saw.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}.")
    if not words:
        raise ValueError("words is empty: pass the words to build examples from (e.g. corpus_words(text)).")
    for t in tasks:
        apply_word_task(t, "x")  # fails clearly on an unknown task
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        task = tasks[int(rng.integers(len(tasks)))]
        word = words[int(rng.integers(len(words)))]
        shown = word.upper() if task == "lower" else word
        out.append((f"{task}: {shown}\n", apply_word_task(task, shown) + "\n"))
    return out


def split_words(words: Sequence[str], test_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Shuffle ``words`` with ``seed`` and split them into disjoint (train, test) lists."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}.")
    order = np.random.default_rng(seed).permutation(len(words))
    cut = int(round(len(words) * (1 - test_fraction)))
    return [words[i] for i in order[:cut]], [words[i] for i in order[cut:]]


def speaker_examples(
    text: str, speakers: tuple[str, str] = ("ROMEO", "MENENIUS"), length: int = 32, seed: int = 0
) -> tuple[list[str], list[int]]:
    """Lines of two characters of the play text, labelled 0 or 1 by who speaks them.

    The rule: a speech starts after a blank line with ``NAME:`` on its own line;
    every line of a speech by ``speakers[0]`` (label 0) or ``speakers[1]``
    (label 1) with at least ``length`` characters gives one example, its first
    ``length`` characters (all examples have the same length, so the last token
    is always at the same position). The larger class is subsampled to the size
    of the smaller one (chance = 50%), then the examples are shuffled with ``seed``.
    """
    if len(speakers) != 2 or speakers[0] == speakers[1]:
        raise ValueError(f"speakers must be two different names, got {speakers!r}.")
    lines: list[list[str]] = [[], []]
    for speech in ("\n" + text).split("\n\n"):
        head, _, body = speech.strip("\n").partition("\n")
        if head.endswith(":") and head[:-1] in speakers:
            label = speakers.index(head[:-1])
            lines[label] += [line[:length] for line in body.split("\n") if len(line) >= length]
    for name, found in zip(speakers, lines):
        if not found:
            raise ValueError(f"no line of {name!r} with >= {length} characters in the text: check the name (it is case sensitive).")
    rng = np.random.default_rng(seed)
    n = min(len(lines[0]), len(lines[1]))
    pairs = [(s, label) for label in (0, 1) for s in (lines[label] if len(lines[label]) == n else [lines[label][i] for i in sorted(rng.choice(len(lines[label]), n, replace=False))])]
    order = rng.permutation(len(pairs))
    return [pairs[i][0] for i in order], [pairs[i][1] for i in order]


def restrict_to_vocab(text: str, tokenizer: Any, replacement: str = " ") -> str:
    """``text`` with every character outside the tokenizer's vocabulary replaced by ``replacement``."""
    if replacement not in tokenizer.stoi:
        raise ValueError(f"the replacement {replacement!r} is itself not in the vocabulary.")
    return "".join(c if c in tokenizer.stoi else replacement for c in text)


# ============================================================================ supervised fine-tuning


def response_targets(ids: Sequence[int], prompt_len: int) -> tuple[list[int], list[int]]:
    """Inputs and next-token targets of one example, with the prompt's targets masked.

    ``ids`` is prompt + response (``prompt_len`` prompt tokens). Input position t
    predicts ``ids[t + 1]``; the targets that are prompt tokens (positions
    ``t < prompt_len - 1``) become -100, so only the response is learned.
    """
    if not 1 <= prompt_len < len(ids):
        raise ValueError(f"prompt_len must be between 1 and len(ids) - 1 = {len(ids) - 1} (the response needs a token), got {prompt_len}.")
    x, y = list(ids[:-1]), list(ids[1:])
    for t in range(prompt_len - 1):
        y[t] = IGNORE
    return x, y


def encode_sft(
    examples: Sequence[tuple[str, str]], tokenizer: Any, *, pad_id: int = 0, mask_prompt: bool = True
) -> tuple[Tensor, Tensor]:
    """(inputs, targets), each (n, longest - 1): right-padded with ``pad_id`` in inputs, -100 in targets.

    With ``mask_prompt=False`` the prompt is learned too (ordinary language modelling).
    """
    if not examples:
        raise ValueError("examples is empty.")
    rows = []
    for prompt, response in examples:
        if not prompt or not response:
            raise ValueError(f"every example needs a non-empty prompt and response, got {(prompt, response)!r}.")
        p, r = tokenizer.encode(prompt), tokenizer.encode(response)
        rows.append(response_targets(p + r, len(p) if mask_prompt else 1))
    width = max(len(x) for x, _ in rows)
    xs = torch.full((len(rows), width), pad_id, dtype=torch.long)
    ys = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    for i, (x, y) in enumerate(rows):
        xs[i, : len(x)] = torch.tensor(x)
        ys[i, : len(y)] = torch.tensor(y)
    return xs, ys


@torch.no_grad()
def greedy_complete(
    model: nn.Module, prompts: Sequence[str], tokenizer: Any, *, max_new: int = 12, stop: str = "\n"
) -> list[str]:
    """The greedy continuation of every prompt, up to and including ``stop`` (or ``max_new`` tokens).

    Prompts of the same length run as one batch, so no padding is needed.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    stop_id = tokenizer.encode(stop)[0]
    out: list[str] = [""] * len(prompts)
    groups: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        groups.setdefault(len(p), []).append(i)
    for _, members in sorted(groups.items()):
        idx = torch.tensor([tokenizer.encode(prompts[i]) for i in members], dtype=torch.long, device=device)
        done = torch.zeros(len(members), dtype=torch.bool, device=device)
        new = []
        for _ in range(max_new):
            nxt = model(idx)[0][:, -1].argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, stop_id), nxt)
            new.append(nxt)
            done |= nxt == stop_id
            idx = torch.cat([idx, nxt[:, None]], dim=1)
            if bool(done.all()):
                break
        gen = torch.stack(new, 1).tolist()
        for row, i in zip(gen, members):
            text = tokenizer.decode(row)
            out[i] = text[: text.index(stop) + 1] if stop in text else text
    model.train(was_training)
    return out


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    """The fraction of predictions equal to their reference, character for character."""
    if len(predictions) != len(references) or not references:
        raise ValueError(f"need as many predictions as references (and at least one): got {len(predictions)} and {len(references)}.")
    return sum(p == r for p, r in zip(predictions, references)) / len(references)


# ============================================================================ classification


class GPTClassifier(nn.Module):
    """A GPT body with a linear head on the hidden state of the last token (last-token pooling).

    A causal model's last position is the only one that has seen the whole
    input, so it is the natural summary. All inputs of a batch have the same
    length (see `speaker_examples`): no padding, no lengths to track.
    """

    def __init__(self, gpt: GPT, n_classes: int) -> None:
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"n_classes must be >= 2, got {n_classes}.")
        self.gpt = gpt
        self.head = nn.Linear(gpt.config.n_embd, n_classes)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def forward(self, idx: Tensor) -> Tensor:
        hidden, _ = self.gpt._trunk(idx, None, return_weights=False)  # (B, T, n_embd), after the final norm
        return self.head(hidden[:, -1])


def classification_loss(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Cross-entropy of class logits (B, classes) against labels (B,): a ``loss_fn`` for the Trainer."""
    return F.cross_entropy(model(x), y)


@torch.no_grad()
def predict_classes(model: nn.Module, x: Tensor, batch_size: int = 256) -> Tensor:
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = torch.cat([model(x[i : i + batch_size].to(device)).argmax(-1).cpu() for i in range(0, len(x), batch_size)])
    model.train(was_training)
    return out


def accuracy(pred: Tensor, target: Tensor) -> float:
    if pred.shape != target.shape or pred.numel() == 0:
        raise ValueError(f"pred and target must have the same non-empty shape, got {tuple(pred.shape)} and {tuple(target.shape)}.")
    return float((pred == target).float().mean())


def confusion_matrix(pred: Tensor, target: Tensor, n_classes: int) -> Tensor:
    """Counts: row = true class, column = predicted class."""
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}.")
    if len(target) and (int(target.max()) >= n_classes or int(pred.max()) >= n_classes):
        raise ValueError(f"a class id is >= n_classes={n_classes}.")
    return torch.bincount(target * n_classes + pred, minlength=n_classes * n_classes).view(n_classes, n_classes)


def bag_of_chars(x: Tensor, vocab_size: int) -> Tensor:
    """Each row of token ids as the frequencies of its characters: (n, vocab_size), rows sum to 1."""
    counts = F.one_hot(x, vocab_size).sum(1).float()
    return counts / counts.sum(1, keepdim=True)


def fit_logistic_regression(
    features: Tensor, labels: Tensor, n_classes: int, *, l2: float = 1e-4, steps: int = 300, lr: float = 0.5
) -> nn.Linear:
    """Multinomial logistic regression, full-batch Adam on the mean cross-entropy + l2·|W|² (deterministic)."""
    gen = torch.Generator().manual_seed(0)
    lin = nn.Linear(features.shape[1], n_classes)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(lin.weight.shape, generator=gen) * 0.01)
        lin.bias.zero_()
    mu, sd = features.mean(0), features.std(0) + 1e-6
    opt = torch.optim.Adam(lin.parameters(), lr=lr / 10)
    z = (features - mu) / sd
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(lin(z), labels) + l2 * lin.weight.pow(2).sum()
        loss.backward()
        opt.step()
    with torch.no_grad():  # fold the standardisation into the layer: it takes raw features
        lin.bias.sub_(lin.weight @ (mu / sd))
        lin.weight.div_(sd)
    return lin


# ============================================================================ LoRA


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank change: y = base(x) + (alpha / r) · x Aᵀ Bᵀ.

    A is (r, in_features), initialised at random; B is (out_features, r),
    initialised to 0, so at the start the layer computes exactly what ``base``
    does. Only A and B train: r·(in + out) numbers instead of in·out.
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}.")
        if isinstance(rank, bool) or not isinstance(rank, int) or rank <= 0:
            raise ValueError(f"rank must be a positive int, got {rank!r}.")
        if rank > min(base.in_features, base.out_features):
            raise ValueError(f"rank={rank} exceeds min(in, out) = {min(base.in_features, base.out_features)}: a low-rank change needs a smaller rank.")
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.rank = rank
        self.alpha = float(rank if alpha is None else alpha)
        self.scaling = self.alpha / rank
        w = base.weight
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, dtype=w.dtype, device=w.device))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, dtype=w.dtype, device=w.device))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # as nn.Linear initialises its weight
        self.dropout = nn.Dropout(dropout)

    def delta_weight(self) -> Tensor:
        """The change to the base weight: scaling · B A, shape (out, in)."""
        return self.scaling * (self.lora_B @ self.lora_A)

    def forward(self, x: Tensor) -> Tensor:
        return self.base(x) + self.scaling * (self.dropout(x) @ self.lora_A.T @ self.lora_B.T)

    def merged(self) -> nn.Linear:
        """A plain ``nn.Linear`` with weight W + scaling · B A: the same function, no adapter."""
        b = self.base
        out = nn.Linear(b.in_features, b.out_features, bias=b.bias is not None, device=b.weight.device, dtype=b.weight.dtype)
        with torch.no_grad():
            out.weight.copy_(b.weight + self.delta_weight())
            if b.bias is not None:
                out.bias.copy_(b.bias)
        return out

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha}"


def linear_layer_names(model: nn.Module) -> list[str]:
    """Names of every ``nn.Linear`` of ``model`` (the layers LoRA can wrap)."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def apply_lora(
    model: nn.Module, rank: int, alpha: float | None = None, targets: Sequence[str] = ("attn.qkv", "attn.proj"),
    dropout: float = 0.0, train: Sequence[str] = (),
) -> list[str]:
    """Freeze ``model`` and wrap every linear layer whose name ends with one of ``targets`` in a `LoRALinear`.

    ``train`` lists name prefixes of modules that stay trainable (for example a
    classification ``"head"``). Returns the wrapped layers' names. Unknown
    targets raise a ValueError that lists the linear layers there are.
    """
    if isinstance(rank, bool) or not isinstance(rank, int) or rank <= 0:
        raise ValueError(f"rank must be a positive int, got {rank!r}.")
    if any(isinstance(m, LoRALinear) for m in model.modules()):
        raise ValueError("this model already has LoRA adapters: merge_lora or remove_lora first.")
    names = linear_layer_names(model)
    chosen = [n for n in names if any(n == t or n.endswith("." + t) for t in targets)]
    unmatched = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if unmatched or not targets:
        short = sorted({n.split(".", 2)[-1] if n.startswith(("blocks.", "gpt.blocks.")) else n for n in names})
        raise ValueError(f"no linear layer matches {unmatched or list(targets)!r}; the linear layers are named like {short}.")
    for p in model.parameters():
        p.requires_grad_(False)
    for name in chosen:
        _set_module(model, name, LoRALinear(model.get_submodule(name), rank, alpha, dropout))  # type: ignore[arg-type]
    for prefix in train:
        mods = [m for n, m in model.named_modules() if n == prefix]
        if not mods:
            raise ValueError(f"train={prefix!r} names no module of the model.")
        for p in mods[0].parameters():
            p.requires_grad_(True)
    return chosen


def _replace_lora(model: nn.Module, merge: bool) -> int:
    found = [(n, m) for n, m in model.named_modules() if isinstance(m, LoRALinear)]
    for name, m in found:
        new = m.merged() if merge else m.base
        new.requires_grad_(False)  # the layer stays frozen, like the rest of the model: requires_grad_(True) to train it all
        _set_module(model, name, new)
    return len(found)


def merge_lora(model: nn.Module) -> int:
    """Fold every adapter into its layer's weight (in place); returns how many were merged.

    The model keeps its frozen parameters frozen (call ``model.requires_grad_(True)``
    to fine-tune all of it afterwards).
    """
    return _replace_lora(model, merge=True)


def remove_lora(model: nn.Module) -> int:
    """Drop every adapter, restoring the original layers (in place); returns how many were removed."""
    return _replace_lora(model, merge=False)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters, each shared tensor counted once."""
    params = list(model.parameters())  # parameters() yields a shared tensor once
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes held by the optimizer's state tensors (AdamW: two moments per trained number)."""
    return sum(v.numel() * v.element_size() for s in optimizer.state.values() for v in s.values() if isinstance(v, Tensor) and v.dim() > 0)


# ============================================================================ training through course.train


class ExampleSampler:
    """Random rows of fixed example tensors, for `course.train.Trainer`'s ``sampler`` hook.

    Like `course.train.BatchSampler`, each step draws the indices of the global
    batch from one seeded generator (its state is checkpointed) and each process
    takes its slice.
    """

    def __init__(self, x: Tensor, y: Tensor, seed: int) -> None:
        if len(x) != len(y) or len(x) == 0:
            raise ValueError(f"x and y must have the same, non-zero number of rows, got {len(x)} and {len(y)}.")
        self.x, self.y = x, y
        self.generator = torch.Generator().manual_seed(seed)

    def step_batches(self, micro_batch: int, grad_accum: int, world_size: int = 1, rank: int = 0) -> list[tuple[Tensor, Tensor]]:
        idx = torch.randint(len(self.x), (grad_accum, world_size, micro_batch), generator=self.generator)
        return [(self.x[idx[i, rank]], self.y[idx[i, rank]]) for i in range(grad_accum)]


def batches(x: Tensor, y: Tensor, batch_size: int) -> list[tuple[Tensor, Tensor]]:
    """Fixed evaluation batches covering every row once, in order."""
    return [(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(x), batch_size)]


def finetune_config(**overrides: Any) -> TrainConfig:
    """A TrainConfig for short fine-tuning runs: small learning rate, short warmup, no progress bar, CPU-sized."""
    base: dict[str, Any] = dict(
        batch_size=32, max_iters=200, lr=1e-3, min_lr=1e-4, warmup_iters=10, weight_decay=0.0,
        eval_interval=50, eval_iters=1, log_interval=10, progress=False, seed=0, dtype="float32",
    )
    base.update(overrides)
    return TrainConfig(**base)


def set_dropout(model: nn.Module, p: float) -> None:
    """Set the dropout probability of every ``nn.Dropout`` of the model (the residual-stream dropouts)."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {p}.")
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = p


@dataclass
class EarlyStopping:
    """An ``on_eval`` callback that keeps the weights of the best validation loss so far.

    ``stop_step`` is the evaluation step where patience ran out (no improvement in
    ``patience`` evaluations): where training would have stopped.
    """

    patience: int = 3
    best_loss: float = math.inf
    best_step: int = 0
    stop_step: int | None = None
    best_state: dict[str, Tensor] | None = None
    _bad: int = 0

    def __call__(self, trainer: Any, val_loss: float) -> None:
        if val_loss < self.best_loss:
            self.best_loss, self.best_step, self._bad = val_loss, trainer.step, 0
            self.best_state = copy.deepcopy(trainer.model.state_dict())
        else:
            self._bad += 1
            if self._bad >= self.patience and self.stop_step is None:
                self.stop_step = trainer.step

    def restore(self, model: nn.Module) -> None:
        if self.best_state is None:
            raise ValueError("no evaluation has run yet: pass this object as on_eval to Trainer.train first.")
        model.load_state_dict(self.best_state)
