"""The learning-rate schedule and the AdamW set-up of pretraining (chapter 05).

`lr_at` is linear warmup then cosine decay to ``min_lr`` at ``lr_decay_iters``
(default: ``max_iters``); `param_groups` puts weight decay on matrices only;
`make_optimizer` builds AdamW from a `course.train_config.TrainConfig`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .train_config import TrainConfig


def lr_at(step: int, config: TrainConfig) -> float:
    """Linear warmup from 0 to ``lr`` over ``warmup_iters`` steps, then cosine decay to ``min_lr``."""
    decay_iters = config.lr_decay_iters or config.max_iters
    if step < config.warmup_iters:
        return config.lr * (step + 1) / (config.warmup_iters + 1)
    if step >= decay_iters:
        return config.min_lr
    progress = (step - config.warmup_iters) / max(1, decay_iters - config.warmup_iters)
    return config.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (config.lr - config.min_lr)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices (linear and embedding weights), none on vectors (biases, norm gains).

    Decay pulls weights towards 0. For a matrix that is a useful prior (no single
    direction grows without bound); for a bias or a norm's gain, 0 is not a
    natural value, so decaying them only hurts.
    """
    decay, no_decay = [], []
    for p in model.parameters():  # shared (tied) tensors appear once
        if not p.requires_grad:
            continue
        (decay if p.dim() >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW over `param_groups` with the config's lr and betas (fused on CUDA)."""
    extra = {"fused": True} if device.type == "cuda" else {}
    return torch.optim.AdamW(
        param_groups(model, config.weight_decay), lr=config.lr, betas=(config.beta1, config.beta2), **extra
    )
