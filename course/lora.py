"""LoRA, low-rank adaptation of a frozen model (chapter 07).

`LoRALinear` adds ``(alpha / r) · B A`` to a frozen ``nn.Linear``, with ``B = 0``
at the start, so the wrapped model starts exactly as the pretrained one. Only A
and B train: ``r · (in + out)`` numbers instead of ``in · out``.

* `apply_lora` freezes a model and wraps the linear layers named in ``targets``;
* `merge_lora` folds ``B A`` into the weights (same outputs, no extra cost at
  inference); `remove_lora` drops the adapters and restores the original layers;
* `linear_layer_names` and `count_parameters` say what there is to wrap and train.

Self-contained: this module needs only PyTorch (no other part of ``course``),
so it can be copied into another project and used on any ``nn.Module``.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn


def _check_rank(rank: object) -> int:
    if isinstance(rank, bool) or not isinstance(rank, int) or rank <= 0:
        raise ValueError(f"rank must be a positive int, got {rank!r}.")
    return rank


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
        _check_rank(rank)
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
    _check_rank(rank)
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


__all__ = ["LoRALinear", "apply_lora", "count_parameters", "linear_layer_names", "merge_lora", "remove_lora"]
