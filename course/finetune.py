"""Fine-tuning a pretrained GPT (chapter 07): training hooks, and one import for the whole chapter.

The chapter's concepts live in their own modules; this one re-exports them, so
``from course.finetune import ...`` keeps working for every name:

* `course.sft`: tasks (`word_task_examples`, `corpus_words`, `split_words`, `split_words_three`), the
  response-only loss (`encode_sft`, `response_targets`, `IGNORE`), `greedy_complete`
  and `exact_match`;
* `course.classification`: `speaker_examples`, `GPTClassifier`, the
  logistic-regression baseline (`bag_of_chars`, `fit_logistic_regression`),
  `accuracy`, `confusion_matrix`;
* `course.lora`: `LoRALinear`, `apply_lora`, `merge_lora`, `remove_lora`
  (self-contained: PyTorch only);
* `course.early_stopping`: `EarlyStopping`.

What stays here is how fine-tuning runs through `course.train.Trainer` (the
course's one training loop), through its hooks: an `ExampleSampler` that draws
rows of fixed example tensors, fixed evaluation batches (`batches`), a
CPU-sized `finetune_config`, `set_dropout`, and `restrict_to_vocab` (text for a
character model).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .classification import (
    GPTClassifier,
    accuracy,
    bag_of_chars,
    classification_loss,
    confusion_matrix,
    fit_logistic_regression,
    predict_classes,
    speaker_examples,
)
from .early_stopping import EarlyStopping
from .lora import LoRALinear, apply_lora, count_parameters, linear_layer_names, merge_lora, remove_lora
from .memory import optimizer_state_bytes  # one definition (chapter 08's); AdamW state has no shared storage, so the same number
from .sft import (
    IGNORE,
    WORD_TASKS,
    apply_word_task,
    corpus_words,
    encode_sft,
    exact_match,
    greedy_complete,
    response_targets,
    split_words,
    split_words_three,
    word_task_examples,
)
from .train import TrainConfig


# ============================================================================ text for a character model


def restrict_to_vocab(text: str, tokenizer: Any, replacement: str = " ") -> str:
    """``text`` with every character outside the tokenizer's vocabulary replaced by ``replacement``."""
    if replacement not in tokenizer.stoi:
        raise ValueError(f"the replacement {replacement!r} is itself not in the vocabulary.")
    return "".join(c if c in tokenizer.stoi else replacement for c in text)


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


__all__ = [
    "IGNORE", "WORD_TASKS", "EarlyStopping", "ExampleSampler", "GPTClassifier", "LoRALinear", "accuracy",
    "apply_lora", "apply_word_task", "bag_of_chars", "batches", "classification_loss", "confusion_matrix",
    "corpus_words", "count_parameters", "encode_sft", "exact_match", "finetune_config", "fit_logistic_regression",
    "greedy_complete", "linear_layer_names", "merge_lora", "optimizer_state_bytes", "predict_classes",
    "remove_lora", "response_targets", "restrict_to_vocab", "set_dropout", "speaker_examples", "split_words", "split_words_three",
    "word_task_examples",
]
