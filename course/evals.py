"""Evaluating an assistant (chapter 11): exact match, pass@k, and intervals on every accuracy.

* **Exact match**: `exact_match` and `normalize` are those of
  `course.assistant_tasks` (one stated rule: strip, collapse whitespace, drop one
  final ".", fold case unless the task is case sensitive); import them from there.
* **pass@k** (Chen et al. 2021, "Evaluating Large Language Models Trained on
  Code"): draw n ≥ k answers to a problem, count the c correct ones; the chance
  that at least one of k answers drawn without replacement from those n is
  correct is ``1 - C(n-c, k) / C(n, k)``, an *unbiased* estimate of pass@k.
  (``1 - (1 - c/n)**k`` is biased low.) `pass_at_k` computes it as the product
  ``1 - Π_{i=n-c+1}^{n} (1 - k/i)``, which never forms the huge binomials;
  `pass_at_k_enumerate` counts every k-subset (the definition, for small n).
* **Confidence intervals**: an accuracy measured on n questions is a binomial
  proportion. `wilson_interval` is the Wilson score interval: the proportions p
  that a score test would not reject, ``|p̂ - p| ≤ z·sqrt(p(1-p)/n)``; unlike
  the textbook ``p̂ ± z·sqrt(p̂(1-p̂)/n)`` it stays inside [0, 1] and does not
  collapse to a point at 0 or n correct. `bootstrap_interval` resamples any
  statistic (seeded: the same interval every run). `accuracy` reports
  ``correct / total`` with its Wilson interval, ready to print.

Report with every number how it was measured (greedy or the sampling
temperature, how many samples): an accuracy means nothing without it.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from fractions import Fraction
from statistics import NormalDist
from typing import Callable, Sequence

import numpy as np


__all__ = [
    "Accuracy", "accuracy", "bootstrap_interval", "mean_pass_at_k", "pass_at_k",
    "pass_at_k_enumerate", "wilson_interval", "z_value",
]


def _count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}.")
    return int(value)


def _check_nck(n: object, c: object, k: object) -> tuple[int, int, int]:
    n, c, k = _count(n, "n"), _count(c, "c"), _count(k, "k")
    if c > n:
        raise ValueError(f"c (correct samples) cannot exceed n (samples): c={c}, n={n}.")
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and n={n} (draw at least k samples per problem), got k={k}.")
    return n, c, k


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples of which ``c`` are correct: 1 - C(n-c, k)/C(n, k), as a stable product."""
    n, c, k = _check_nck(n, c, k)
    if n - c < k:  # every k-subset holds a correct sample
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def pass_at_k_enumerate(n: int, c: int, k: int) -> Fraction:
    """pass@k by its definition: the fraction of all k-subsets of the n samples with a correct one (small n only)."""
    n, c, k = _check_nck(n, c, k)
    if math.comb(n, k) > 1_000_000:
        raise ValueError(f"C({n}, {k}) = {math.comb(n, k):,} subsets is too many to enumerate: use pass_at_k.")
    correct = [i < c for i in range(n)]
    subsets = list(itertools.combinations(range(n), k))
    return Fraction(sum(any(correct[i] for i in s) for s in subsets), len(subsets))


def mean_pass_at_k(counts: Sequence[tuple[int, int]], k: int) -> float:
    """pass@k of a benchmark: the mean over problems of `pass_at_k`, from one (n, c) pair per problem."""
    if not counts:
        raise ValueError("counts is empty: give one (n, c) pair per problem.")
    return float(np.mean([pass_at_k(n, c, k) for n, c in counts]))


def z_value(confidence: float) -> float:
    """The two-sided normal quantile of ``confidence`` (1.959964 for 0.95)."""
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), e.g. 0.95, got {confidence!r}.")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``successes / trials``.

    centre = (p̂ + z²/2n) / (1 + z²/n), half-width = z/(1 + z²/n) · sqrt(p̂(1-p̂)/n + z²/4n²).
    """
    x, n = _count(successes, "successes"), _count(trials, "trials")
    if n == 0:
        raise ValueError("trials is 0: an accuracy needs at least one question.")
    if x > n:
        raise ValueError(f"successes ({x}) cannot exceed trials ({n}).")
    z = z_value(confidence)
    p = x / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low = 0.0 if x == 0 else max(0.0, centre - half)  # exactly 0 and 1 at the ends (analytically; not by rounding)
    high = 1.0 if x == n else min(1.0, centre + half)
    return low, high


def bootstrap_interval(
    values: Sequence[float] | np.ndarray,
    statistic: Callable[[np.ndarray], float] | None = None,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` (the mean by default) over ``values``; seeded.

    Draws ``n_resamples`` resamples of the values with replacement, computes the
    statistic on each, and returns the (1-confidence)/2 and (1+confidence)/2
    quantiles. For 0/1 outcomes and the mean it is close to `wilson_interval`
    away from 0% and 100%; it is meant for statistics without a formula
    (a difference of accuracies on the same questions, a median...).
    """
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"values must be a non-empty 1-D sequence, got shape {a.shape}.")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive int, got {n_resamples!r}.")
    z_value(confidence)  # checks the range
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, a.size, size=(n_resamples, a.size))
    if statistic is None:
        stats = a[idx].mean(axis=1)
    else:
        stats = np.array([float(statistic(a[row])) for row in idx])
    low, high = np.quantile(stats, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


@dataclass(frozen=True)
class Accuracy:
    """An accuracy with its Wilson interval. ``str()`` gives "62.5% (95% CI 55.6%-68.9%, n=200)"."""

    correct: int
    total: int
    low: float
    high: float
    confidence: float = 0.95

    @property
    def value(self) -> float:
        return self.correct / self.total

    def __str__(self) -> str:
        return (f"{100 * self.value:.1f}% ({100 * self.confidence:g}% CI {100 * self.low:.1f}%-{100 * self.high:.1f}%, "
                f"n={self.total})")


def accuracy(outcomes: Sequence[bool], confidence: float = 0.95) -> Accuracy:
    """The accuracy of a list of right/wrong outcomes, with its Wilson interval."""
    outcomes = list(outcomes)
    if not all(isinstance(o, (bool, np.bool_)) or o in (0, 1) for o in outcomes):
        raise ValueError("outcomes must be booleans (or 0/1), one per question.")
    correct = int(sum(bool(o) for o in outcomes))
    low, high = wilson_interval(correct, len(outcomes), confidence)
    return Accuracy(correct, len(outcomes), low, high, confidence)
