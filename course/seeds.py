"""Results over several seeds: the mean, the spread and every value (chapter 07).

One training run is one draw: another seed (another initialisation of the new
weights, another order of the batches, other dropout masks) gives another
number. Before two numbers are compared, each should come with its spread:

* `summarize` turns the values of one setting, one per seed, into a
  `SeedSummary`: mean, sample standard deviation, smallest and largest value;
* `paired_difference` compares two settings seed by seed (run ``i`` of one with
  run ``i`` of the other, which share their seed), which removes the part of the
  noise the two runs have in common;
* `SeedSummary.format` writes ``"75.3% ± 2.3 (73.3 to 77.3, 3 seeds)"``.

With three seeds the standard deviation is itself rough: the range (smallest to
largest) is shown beside it, and a difference smaller than the spreads is not
called a difference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class SeedSummary:
    """The values of one setting over seeds, and their mean and spread."""

    values: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError("no values: run the setting with at least one seed.")
        if not all(math.isfinite(v) for v in self.values):
            raise ValueError(f"every value must be a finite number, got {self.values}.")

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return math.fsum(self.values) / self.n

    @property
    def std(self) -> float:
        """Sample standard deviation (n - 1 in the denominator); 0 for a single seed."""
        if self.n < 2:
            return 0.0
        m = self.mean
        return math.sqrt(math.fsum((v - m) ** 2 for v in self.values) / (self.n - 1))

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    def format(self, percent: bool = False, digits: int | None = None, sign: bool = False) -> str:
        """``"mean ± std (low to high, n seeds)"``; ``percent`` scales fractions by 100 and adds a %."""
        scale, unit = (100.0, "%") if percent else (1.0, "")
        d = (1 if percent else 3) if digits is None else digits
        plus = "+" if sign else ""
        mean, std, low, high = (scale * v for v in (self.mean, self.std, self.low, self.high))
        seeds = "1 seed" if self.n == 1 else f"{self.n} seeds"
        return f"{mean:{plus}.{d}f}{unit} ± {std:.{d}f} ({low:{plus}.{d}f} to {high:{plus}.{d}f}, {seeds})"

    def __str__(self) -> str:
        return self.format()


def summarize(values: Sequence[float]) -> SeedSummary:
    """A `SeedSummary` of one setting's results, one value per seed."""
    return SeedSummary(tuple(float(v) for v in values))


def paired_difference(a: Sequence[float], b: Sequence[float]) -> SeedSummary:
    """``a[i] - b[i]`` for each seed ``i``: the difference of two settings run with the same seeds."""
    if len(a) != len(b):
        raise ValueError(f"paired results need one value per seed on both sides, got {len(a)} and {len(b)}.")
    return summarize([x - y for x, y in zip(a, b)])


__all__ = ["SeedSummary", "paired_difference", "summarize"]
