"""Evaluation helpers shared by every chapter that measures a model (chapters 05-10).

* `eval_mode`: run a block with the model in eval mode (dropout off), and give
  the model back in the mode it was in, even when the block raises. Every place
  in the course that evaluates or generates uses it, so none can forget to
  switch dropout off or leave a training model in eval mode.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from torch import nn


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``with eval_mode(model): ...``: dropout off inside the block; the model's own mode restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


__all__ = ["eval_mode"]
