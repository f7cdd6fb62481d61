"""The course's pretrained Shakespeare models: characters (chapter 05; used by 06, 07 and 08) and BPE (chapter 09).

`load_pretrained()` returns the character model, `load_pretrained(tokenizer="bpe")`
the same architecture trained on the course's own byte-level BPE tokens; each
comes with its tokenizer and a description of where it came from:

1. the checkpoint shipped inside this package (``course/checkpoints/shakespeare-char``
   and ``shakespeare-bpe``), with its training log; its ``TRAINING.md`` says how
   and where it was trained;
2. if that is missing (a trimmed install), a quick CPU training run with the
   chapter 05 preset, cached in the user cache folder so it happens once.

Both paths give a `course.model.GPT` in eval mode and a
`course.tokenizers.CharTokenizer` (or `BPETokenizer`).

Losses: `validation_loss` is in nats per token (per character for the character
model); `validation_bpc` is in bits per character, the unit in which models with
different tokenizers can be compared (chapter 09).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .data import cache_dir
from .evaluate import eval_mode
from .model import GPT
from .tokenizers import BPETokenizer, CharTokenizer

SHIPPED = Path(__file__).resolve().parent / "checkpoints" / "shakespeare-char"
SHIPPED_BPE = Path(__file__).resolve().parent / "checkpoints" / "shakespeare-bpe"
TOKENIZERS = ("char", "bpe")
BPE_VOCAB_SIZE = 8192  # the shipped BPE model's vocabulary: 256 bytes + 7,936 merges (chosen in chapter 09)


def shipped_folder(tokenizer: str = "char") -> Path:
    """Where the shipped checkpoint of the ``tokenizer`` ("char" or "bpe") model lives."""
    if tokenizer not in TOKENIZERS:
        raise ValueError(f"tokenizer must be one of {TOKENIZERS}, got {tokenizer!r}.")
    return SHIPPED if tokenizer == "char" else SHIPPED_BPE


@dataclass
class Pretrained:
    model: GPT
    tokenizer: CharTokenizer | BPETokenizer
    source: str  # "shipped" or "quick CPU run"
    path: Path
    info: dict[str, Any]  # training facts from the checkpoint's info.json (or the quick run)

    def __iter__(self):  # model, tokenizer = load_pretrained()
        return iter((self.model, self.tokenizer))


def _load(folder: Path, device: str | torch.device) -> tuple[GPT, Any, dict[str, Any]]:
    from .train import load_model, load_tokenizer

    model, _ = load_model(folder, device=device)
    model = model.float()  # shipped weights may be bfloat16; CPU work runs in float32
    tokenizer = load_tokenizer(folder)
    info_file = folder / "info.json"
    try:
        info = json.loads(info_file.read_text(encoding="utf-8")) if info_file.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{info_file} cannot be read ({type(err).__name__}: {err}): delete it, "
                         "or the whole folder to train the stand-in again.") from None
    return model, tokenizer, info


def quick_cpu_model(folder: Path | None = None, max_iters: int = 600, tokenizer: str = "char") -> Path:
    """Train a small model on the CPU (about a minute on 2 cores) and save it as a checkpoint folder."""
    from .train import Trainer, cpu_preset

    shipped_folder(tokenizer)  # checks the name
    folder = folder or cache_dir() / f"quick-shakespeare-{tokenizer}"
    config = cpu_preset(max_iters=max_iters, lr_decay_iters=max_iters, eval_interval=max_iters, out_dir=str(folder),
                        progress=False, tokenizer=tokenizer, bpe_vocab_size=BPE_VOCAB_SIZE)
    result = Trainer(config).train()
    ckpt = result.checkpoint
    if result.interrupted or ckpt is None:  # never cache a cut-short run as the stand-in: the next call trains again
        raise KeyboardInterrupt(f"the quick CPU run was interrupted at step {result.steps}: nothing was cached "
                                "(load_pretrained() trains it again next time)")
    (ckpt / "info.json").write_text(json.dumps({
        "trained_on": "CPU (quick fallback run)", "steps": result.steps, "seconds": round(result.seconds, 1),
        "final_val_loss": round(result.final_val_loss, 4),
    }))
    return ckpt


def _complete_quick_run(ckpt: Path) -> bool:
    """A cached stand-in that finished: its info.json exists and records a finite validation loss."""
    try:
        info = json.loads((ckpt / "info.json").read_text(encoding="utf-8"))
        return math.isfinite(float(info["final_val_loss"]))
    except (OSError, ValueError, KeyError, TypeError):  # missing, unreadable, or an interrupted run's NaN
        return False


def load_pretrained(device: str | torch.device = "cpu", *, tokenizer: str = "char", allow_fallback: bool = True) -> Pretrained:
    """The shipped pretrained model (``tokenizer="char"`` or ``"bpe"``), or (if it is missing) a quick CPU-trained stand-in."""
    shipped = shipped_folder(tokenizer)
    if (shipped / "model.safetensors").is_file():
        model, tok, info = _load(shipped, device)
        return Pretrained(model, tok, "shipped", shipped, info)
    if not allow_fallback:
        raise FileNotFoundError(f"the pretrained checkpoint is missing from {shipped}.")
    from .train import latest_checkpoint

    folder = cache_dir() / f"quick-shakespeare-{tokenizer}"
    ckpt = latest_checkpoint(folder) if folder.is_dir() else None
    if ckpt is None or not _complete_quick_run(ckpt):
        print(f"The pretrained checkpoint is missing from {shipped}; training a small stand-in on the CPU (about a minute)...")
        ckpt = quick_cpu_model(folder) if tokenizer == "char" else quick_cpu_model(folder, tokenizer=tokenizer)
    model, tok, info = _load(ckpt, device)
    return Pretrained(model, tok, "quick CPU run", ckpt, info)


# ============================================================================ the text and the loss the model is measured on

VAL_FRACTION = 0.1  # chapter 05 trains on the first 90% of the corpus and validates on the rest


def corpus_text(tokenizer: CharTokenizer | BPETokenizer, *, replacement: str = " ") -> str:
    """The training corpus (Tiny Shakespeare) in the character model's alphabet.

    With the real corpus this is the text itself. With the offline fallback corpus
    (`course.data`), characters outside the model's 65-character alphabet are
    replaced by ``replacement`` and a notice says how many, so every chapter that
    uses the model still runs (with other numbers than the book's). A byte-level
    BPE tokenizer can encode any text: it gets the corpus unchanged.
    """
    from .data import tinyshakespeare

    corpus = tinyshakespeare()
    text = corpus.text
    if corpus.is_fallback and isinstance(tokenizer, CharTokenizer):
        if replacement not in tokenizer.stoi:
            raise ValueError(f"the replacement {replacement!r} is itself not in the model's vocabulary.")
        missing = sum(c not in tokenizer.stoi for c in text)
        text = "".join(c if c in tokenizer.stoi else replacement for c in text)
        print(f"NOTICE: the fallback corpus is mapped to the model's alphabet: {missing:,} of its "
              f"{len(text):,} characters are outside it and became {replacement!r}.")
    return text


def validation_text(tokenizer: CharTokenizer | BPETokenizer) -> str:
    """The validation split the model was measured on: the last 10% of `corpus_text`."""
    from .data import train_val_split

    return train_val_split(corpus_text(tokenizer), VAL_FRACTION)[1]


def validation_loss(model: GPT, tokenizer: CharTokenizer | BPETokenizer, text: str | None = None, *,
                    batch_size: int = 32) -> float:
    """THE validation loss of a model, in nats per token (per character for a character model).

    The mean negative log-likelihood over the whole validation split (or ``text``):
    every character but the first is predicted exactly once, in consecutive
    non-overlapping windows of the model's context (``block_size``), each from the
    characters before it in its window. This is what chapters 05, 06 and 08 quote
    for the shipped model; the training log's value is an estimate of the same
    quantity from random windows.
    """
    from .sampling import evaluate_nll

    text = validation_text(tokenizer) if text is None else text
    return evaluate_nll(model, tokenizer.encode(text), stride=model.config.block_size, batch_size=batch_size)[0]


def chars_per_token(tokenizer: Any, ids: Sequence[int], text: str) -> np.ndarray:
    """How many characters of ``text`` each token of ``ids = tokenizer.encode(text)`` completes.

    A character belongs to the token that holds its last byte (a byte-level token
    can end in the middle of a character), so the counts add up to ``len(text)``
    exactly. One per token for the character tokenizer.
    """
    if isinstance(tokenizer, CharTokenizer):
        return np.ones(len(ids), dtype=np.int64)
    token_ends = np.cumsum([len(tokenizer.vocab[int(i)]) for i in ids])  # byte offset where each token ends
    char_ends = np.cumsum([len(c.encode("utf-8")) for c in text])  # byte offset where each character ends
    if len(token_ends) == 0 or token_ends[-1] != (char_ends[-1] if len(char_ends) else 0):
        raise ValueError("the ids do not encode this text (their bytes and the text's differ in length).")
    owner = np.searchsorted(token_ends, char_ends, side="left")
    return np.bincount(owner, minlength=len(ids))


def validation_bpc(model: GPT, tokenizer: Any, text: str | None = None, *, batch_size: int = 32) -> tuple[float, float, int, int]:
    """Bits per character of the validation split (or ``text``) under a model with any tokenizer (chapter 09).

    Returns (bits per character, nats per token, tokens scored, characters they
    cover). The tokens are scored as in `validation_loss` (every token but the
    first, in non-overlapping windows of the model's context); the characters are
    those the scored tokens complete (`chars_per_token`): the text without the
    characters of its first token. Models with different tokenizers are compared
    on the same text in this unit.
    """
    from .sampling import evaluate_nll
    from .scaling import bits_per_char

    text = validation_text(tokenizer) if text is None else text
    ids = tokenizer.encode(text)
    if len(ids) < 2:
        raise ValueError(f"the text encodes to {len(ids)} token(s); at least 2 are needed to score a prediction.")
    nats, scored = evaluate_nll(model, ids, stride=model.config.block_size, batch_size=batch_size)
    chars = int(chars_per_token(tokenizer, ids, text)[1:].sum())
    return bits_per_char(nats, scored, chars), nats, scored, chars


@torch.no_grad()
def token_bits(model: GPT, tokenizer: Any, text: str, *, batch_size: int = 32) -> dict[str, np.ndarray]:
    """Every scored token of ``text`` with its cost: the per-token view of `validation_bpc`.

    Windows as in `validation_bpc` (non-overlapping, the model's context). Returns
    arrays over the scored tokens (all but the first): ``id``, ``bits`` (its
    negative log2-likelihood), ``chars`` (characters it completes) and ``context``
    (characters completed by the earlier tokens of its window: what the model saw).
    ``bits.sum() / chars.sum()`` is the text's bits per character.
    """
    ids = torch.as_tensor(tokenizer.encode(text), dtype=torch.long)
    if ids.numel() < 2:
        raise ValueError(f"the text encodes to {ids.numel()} token(s); at least 2 are needed to score a prediction.")
    lengths = torch.as_tensor(chars_per_token(tokenizer, ids.tolist(), text))
    block = model.config.block_size
    parts: dict[str, list[Tensor]] = {k: [] for k in ("id", "bits", "chars", "context")}
    starts = list(range(0, ids.numel() - 1, block))
    with eval_mode(model):
        for i in range(0, len(starts), batch_size):
            group = starts[i:i + batch_size]
            full = [b for b in group if b + block < ids.numel()]  # whole windows, in one batch
            rest = [b for b in group if b + block >= ids.numel()]  # the shorter last window, alone
            for batch in ([full] if full else []) + [[b] for b in rest]:
                length = min(block, ids.numel() - 1 - batch[0])
                x = torch.stack([ids[b:b + length] for b in batch])
                y = torch.stack([ids[b + 1:b + length + 1] for b in batch])
                logits, _ = model(x)
                nll = F.cross_entropy(logits.double().transpose(1, 2), y, reduction="none") / math.log(2)
                inputs_chars = torch.stack([lengths[b:b + length] for b in batch])
                parts["id"].append(y.flatten())
                parts["bits"].append(nll.flatten())
                parts["chars"].append(torch.stack([lengths[b + 1:b + length + 1] for b in batch]).flatten())
                parts["context"].append(inputs_chars.cumsum(1).flatten())  # target j saw inputs 0..j
    return {k: torch.cat(v).numpy() for k, v in parts.items()}
