"""Magnitude pruning (chapter 08): set the smallest weights to zero and keep them there.

`magnitude_masks(model, sparsity, scope)` chooses which weights of the linear
layers to drop (embeddings, norms and biases are left alone):

* ``scope="layer"``: every layer loses the same fraction, its own smallest |w|;
* ``scope="global"``: one threshold over all layers together, so layers with
  many small weights lose more and sensitive layers with large weights lose less.

`apply_masks` zeroes the pruned weights. `MaskKeeper` keeps them at zero through
further training (fine-tuning after pruning recovers much of the loss): it
zeroes their gradients and re-applies the masks after every optimizer step, since
AdamW's momentum could otherwise move a pruned weight away from zero.

Unstructured sparsity saves nothing by itself: a dense matrix multiply does the
same work whether a weight is 0 or not. It pays off only with sparse storage and
kernels (at high sparsity), or with structured patterns the hardware supports
(whole rows, heads, or 2:4 sparsity on recent GPUs).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def prunable_weights(model: nn.Module) -> dict[str, nn.Parameter]:
    """The weights pruning applies to: every `nn.Linear` weight not shared with an embedding (a tied head)."""
    embedding_ptrs = {m.weight.data_ptr() for m in model.modules() if isinstance(m, nn.Embedding)}
    return {
        f"{name}.weight": m.weight
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear) and m.weight.data_ptr() not in embedding_ptrs
    }


def magnitude_masks(model: nn.Module, sparsity: float, scope: str = "global") -> dict[str, Tensor]:
    """Boolean keep-masks (True = keep) that drop the fraction ``sparsity`` of smallest-magnitude weights."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), a fraction of weights to remove, got {sparsity!r}.")
    if scope not in ("global", "layer"):
        raise ValueError(f"scope must be 'global' or 'layer', got {scope!r}.")
    weights = prunable_weights(model)
    if not weights:
        raise ValueError("the model has no nn.Linear weights to prune.")

    def keep_above(w: Tensor, k: int) -> Tensor:
        # drop exactly the k smallest |w| (ties broken by position), keep the rest
        flat = w.detach().abs().flatten()
        mask = torch.ones_like(flat, dtype=torch.bool)
        if k > 0:
            mask[torch.argsort(flat, stable=True)[:k]] = False
        return mask.view_as(w)

    if scope == "layer":
        return {name: keep_above(w, int(round(sparsity * w.numel()))) for name, w in weights.items()}
    flat = torch.cat([w.detach().flatten() for w in weights.values()])
    mask = keep_above(flat, int(round(sparsity * flat.numel())))
    masks, start = {}, 0
    for name, w in weights.items():
        masks[name] = mask[start:start + w.numel()].view_as(w)
        start += w.numel()
    return masks


@torch.no_grad()
def apply_masks(model: nn.Module, masks: dict[str, Tensor]) -> None:
    """Zero the pruned weights in place."""
    weights = prunable_weights(model)
    for name, mask in masks.items():
        if name not in weights:
            raise KeyError(f"mask {name!r} names no prunable weight of this model; it has {sorted(weights)[:4]}...")
        if mask.shape != weights[name].shape:
            raise ValueError(f"mask {name!r} has shape {tuple(mask.shape)}, the weight has {tuple(weights[name].shape)}.")
        weights[name].mul_(mask.to(weights[name].dtype))


def sparsity_report(model: nn.Module) -> dict[str, float]:
    """Fraction of exact zeros in each prunable weight, and ``"total"`` over all of them."""
    weights = prunable_weights(model)
    report = {name: float((w == 0).float().mean()) for name, w in weights.items()}
    zeros = sum(int((w == 0).sum()) for w in weights.values())
    report["total"] = zeros / sum(w.numel() for w in weights.values())
    return report


class MaskKeeper:
    """Keeps pruned weights at exactly zero while training continues.

    ``keeper = MaskKeeper(model, masks).attach(optimizer)``: gradient hooks zero
    the pruned entries' gradients (so they do not count in gradient clipping), and
    an optimizer post-step hook re-applies the masks. ``keeper.remove()`` undoes both.
    """

    def __init__(self, model: nn.Module, masks: dict[str, Tensor]) -> None:
        self.model, self.masks = model, masks
        apply_masks(model, masks)
        weights = prunable_weights(model)
        self._handles = [
            weights[name].register_hook(lambda g, m=mask: g * m.to(g.dtype)) for name, mask in masks.items()
        ]

    def attach(self, optimizer: torch.optim.Optimizer) -> "MaskKeeper":
        self._handles.append(optimizer.register_step_post_hook(lambda opt, args, kwargs: apply_masks(self.model, self.masks)))
        return self

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
