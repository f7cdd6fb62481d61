"""Fine-tuning through the course's one training loop (chapter 07): the hooks of `course.train.Trainer`.

The fine-tuning ideas live in one module per concept: `course.sft` (tasks, the
response-only loss, greedy evaluation), `course.classification` (a classifier
head and a baseline), `course.lora` (LoRA, PyTorch only) and
`course.early_stopping`. This module holds what runs them through the
`Trainer`: an `ExampleSampler` that draws rows of fixed example tensors, fixed
evaluation batches (`batches`), a CPU-sized `finetune_config`, `set_dropout`,
and `restrict_to_vocab` (text for a character model).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .train_config import TrainConfig


# ============================================================================ text for a character model


def restrict_to_vocab(text: str, tokenizer: Any, replacement: str = " ") -> str:
    """``text`` with every character outside the tokenizer's vocabulary replaced by ``replacement``."""
    if replacement not in tokenizer.stoi:
        raise ValueError(f"the replacement {replacement!r} is itself not in the vocabulary.")
    return "".join(c if c in tokenizer.stoi else replacement for c in text)


# ============================================================================ training through course.train


class ExampleSampler:
    """Random rows of fixed example tensors, for `course.train.Trainer`'s ``sampler`` hook.

    Like `course.token_data.BatchSampler`, each step draws the indices of the global
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


__all__ = ["ExampleSampler", "batches", "finetune_config", "restrict_to_vocab", "set_dropout"]
