"""Chapter 13: running a model past the context it was trained on, and measuring loss by position.

A model with learned positions has no embedding for position ``block_size``: it cannot
read further at all. A RoPE model can compute angles for any position, but angles it
never saw in training are out of distribution, and its loss rises past the trained
length. Two cheap fixes change the angles instead of the weights:

* **position interpolation** (Chen et al. 2023): divide every position by the factor
  ``s = new_length / trained_length``, so the new range of positions maps onto the
  trained one (position 2k of the longer context gets the angles of k);
* **NTK-aware scaling** (proposed in 2023 by "bloc97" in a Reddit post; YaRN, Peng et
  al. 2023, refines it): raise the base instead, ``base · s^(d / (d - 2))``, which slows
  the lowest frequency by exactly s and leaves the highest one as it was, so nearby
  tokens keep their trained resolution.

ALiBi (Press et al. 2022) has no angles at all: a penalty proportional to the distance
is added to each score, a rule that applies as well to distances never seen in training.
A sliding window (``attention_window``) caps the distances a query ever sees, so a model
trained with one never meets a new distance, however long the text.

`extend_context` returns a copy of a model with a longer ``block_size`` (RoPE tables
rebuilt by one of the methods above; an ALiBi model unchanged but for the length; an
optional sliding window imposed); `loss_by_position` measures the cross-entropy at each
position of many windows, the curve that shows where a model stops coping.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor

from .model import GPT
from .positional import RoPE, rope_cos_sin

__all__ = ["METHODS", "ScaledRoPE", "extend_context", "loss_by_position", "ntk_base"]

METHODS = ("none", "interpolate", "ntk")


def ntk_base(base: float, factor: float, head_dim: int) -> float:
    """The NTK-aware base: base · factor^(d / (d - 2)); the lowest frequency then slows by exactly ``factor``."""
    return base * factor ** (head_dim / (head_dim - 2))


class ScaledRoPE(RoPE):
    """RoPE whose positions are divided by ``position_scale`` (1 = the usual RoPE) before the angles."""

    def __init__(self, head_dim: int, max_positions: int, base: float = 10000.0, pairing: str = "half",
                 position_scale: float = 1.0) -> None:
        super().__init__(head_dim, max_positions, base, pairing)  # type: ignore[arg-type]
        if position_scale <= 0:
            raise ValueError(f"position_scale must be positive, got {position_scale}.")
        self.position_scale = float(position_scale)
        self._rebuild()

    def _rebuild(self) -> None:
        positions = torch.arange(self.max_positions, dtype=torch.float64) / self.position_scale
        cos, sin = rope_cos_sin(positions, self.head_dim, self.base)
        self.cos, self.sin = cos.to(self.cos.device), sin.to(self.sin.device)

    def _apply(self, fn, recurse: bool = True):  # type: ignore[no-untyped-def]
        super()._apply(fn, recurse)  # after a cast the parent rebuilds unscaled float32 tables: scale them again
        if getattr(self, "position_scale", 1.0) != 1.0:
            self._rebuild()
        return self


def extend_context(model: GPT, block_size: int, method: str = "none", *, window: int | None = None) -> GPT:
    """A copy of ``model`` that reads ``block_size`` tokens (weights copied, not changed).

    RoPE: ``method`` "none" (the trained angles, extrapolated), "interpolate" (positions divided
    by block_size / trained block_size) or "ntk" (the base raised, `ntk_base`). ALiBi: "none" only
    (its penalty is defined at every distance). ``window``: also limit attention to the last
    ``window`` positions (sliding-window attention imposed at inference; None keeps the model's).
    """
    c = model.config
    if c.positional not in ("rope", "alibi"):
        raise ValueError(f"the model's positions are {c.positional!r}: only a RoPE or ALiBi model can be extended "
                         "(learned positions have no embedding beyond block_size).")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    if c.positional == "alibi" and method != "none":
        raise ValueError(f"method={method!r} rescales RoPE's angles; an ALiBi model has none (use method='none').")
    if block_size < c.block_size:
        raise ValueError(f"block_size={block_size} is shorter than the trained context ({c.block_size}).")
    longer = copy.deepcopy(model)
    longer.config = replace(c, block_size=block_size,
                            attention_window=c.attention_window if window is None else window)
    if window is not None:
        for block in longer.blocks:
            block.attn.window = window
    if c.positional == "rope":
        factor = block_size / c.block_size
        base = ntk_base(c.rope_base, factor, c.head_dim) if method == "ntk" else c.rope_base
        scale = factor if method == "interpolate" else 1.0
        rope = ScaledRoPE(c.head_dim, block_size, base, c.rope_pairing, scale).to(next(model.parameters()).device)
        longer.rope = rope
        for block in longer.blocks:
            block.attn.rope = rope
    return longer


@torch.no_grad()
def loss_by_position(model: GPT, tokens: Tensor, length: int, windows: int, *, seed: int = 0,
                     batch_size: int = 8) -> Tensor:
    """Mean cross-entropy (nats) at each position 0 .. length - 1 over ``windows`` random windows of ``tokens``.

    ``tokens``: a 1-D tensor of ids. Each window is ``length + 1`` consecutive tokens: the
    model reads the first ``length`` and is scored on the next token at every position.
    """
    if tokens.dim() != 1 or tokens.numel() < length + 2:
        raise ValueError(f"tokens must be 1-D and longer than length + 1 = {length + 1}; got shape {tuple(tokens.shape)}.")
    if length > model.config.block_size:
        raise ValueError(f"length={length} exceeds the model's block_size={model.config.block_size}: "
                         "extend the context first (extend_context).")
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, tokens.numel() - length - 1, (windows,), generator=g)
    total = torch.zeros(length, dtype=torch.float64)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    for i in range(0, windows, batch_size):
        rows = torch.stack([tokens[s:s + length + 1] for s in starts[i:i + batch_size].tolist()]).to(device)
        logits, _ = model(rows[:, :-1])
        losses = F.cross_entropy(logits.float().transpose(1, 2), rows[:, 1:], reduction="none")  # (batch, length)
        total += losses.double().sum(0).cpu()
    model.train(was_training)
    return total / windows
