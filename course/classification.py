"""Classification with a pretrained GPT (chapter 07): which of two characters speaks a line.

* **The task**: `speaker_examples` labels lines of Tiny Shakespeare by who speaks them.
* **The model**: `GPTClassifier` puts a linear head on the hidden state of the
  last token; `classification_loss` is its ``loss_fn`` for `course.train.Trainer`;
  `predict_classes` runs it in eval mode.
* **The baseline**: `bag_of_chars` + `fit_logistic_regression` (no GPT at all).
* **Metrics**: `accuracy` and `confusion_matrix`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .evaluate import eval_mode
from .model import GPT


# ============================================================================ the task


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


# ============================================================================ the classifier


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
        hidden = self.gpt.hidden_states(idx)  # (B, T, n_embd), after the final norm
        return self.head(hidden[:, -1])


def classification_loss(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Cross-entropy of class logits (B, classes) against labels (B,): a ``loss_fn`` for the Trainer."""
    return F.cross_entropy(model(x), y)


@torch.no_grad()
def predict_classes(model: nn.Module, x: Tensor, batch_size: int = 256) -> Tensor:
    """The predicted class of every row of ``x`` (on the CPU), in eval mode, ``batch_size`` rows at a time."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}.")
    device = next(model.parameters()).device
    with eval_mode(model):
        return torch.cat([model(x[i : i + batch_size].to(device)).argmax(-1).cpu() for i in range(0, len(x), batch_size)])


# ============================================================================ metrics


def accuracy(pred: Tensor, target: Tensor) -> float:
    """The fraction of predictions equal to their target."""
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


# ============================================================================ the baseline: logistic regression on character counts


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
