"""Early stopping (chapter 07): keep the weights of the best validation loss.

`EarlyStopping` is an ``on_eval`` callback of `course.train.Trainer`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn


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
