"""Tests of course.evals (chapter 11): pass@k against enumeration of every k-subset and against its definition as an
unbiased estimator, the Wilson interval against textbook values and against its definition (inverting the score
test), and the seeded bootstrap."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

import course.assistant_tasks as assistant_tasks
from course.assistant_tasks import exact_match, normalize
from course.evals import (
    Accuracy,
    accuracy,
    bootstrap_interval,
    mean_pass_at_k,
    pass_at_k,
    pass_at_k_enumerate,
    wilson_interval,
    z_value,
)


def _exact_pass_at_k(n: int, c: int, k: int) -> Fraction:
    """1 - C(n-c, k)/C(n, k) in exact rational arithmetic (math.comb is 0 when k > n-c)."""
    return 1 - Fraction(math.comb(n - c, k), math.comb(n, k))


# ------------------------------------------------------------------ pass@k
def test_pass_at_k_matches_enumeration_of_every_subset() -> None:
    checked = 0
    for n in range(1, 11):
        for c in range(n + 1):
            for k in range(1, n + 1):
                brute = pass_at_k_enumerate(n, c, k)
                assert brute == _exact_pass_at_k(n, c, k)
                assert abs(pass_at_k(n, c, k) - float(brute)) < 1e-12, (n, c, k)
                checked += 1
    assert checked == 440


def test_enumeration_counts_subsets_by_hand() -> None:
    # 4 samples, 1 correct, pairs: 3 of the 6 pairs hold the correct one
    assert pass_at_k_enumerate(4, 1, 2) == Fraction(1, 2)
    pairs = list(itertools.combinations(range(4), 2))
    assert sum(0 in p for p in pairs) / len(pairs) == 0.5


def test_pass_at_k_is_stable_for_large_n() -> None:
    for n, c, k in [(200, 13, 10), (1000, 3, 100), (10_000, 9_000, 50), (5000, 1, 1)]:
        assert abs(pass_at_k(n, c, k) - float(_exact_pass_at_k(n, c, k))) < 1e-12


def test_pass_at_k_special_cases() -> None:
    assert pass_at_k(10, 0, 5) == 0.0
    assert pass_at_k(10, 10, 1) == 1.0
    assert pass_at_k(10, 6, 5) == 1.0  # only 4 wrong samples: every 5-subset holds a correct one
    for c in range(11):
        assert abs(pass_at_k(10, c, 1) - c / 10) < 1e-15  # pass@1 is the fraction correct


def test_pass_at_k_is_unbiased_and_the_naive_estimate_is_not() -> None:
    """With c ~ Binomial(n, p), the expectation of pass_at_k(n, c, k) is exactly 1 - (1-p)^k."""
    p, n, k = Fraction(3, 10), 12, 4
    pmf = [math.comb(n, c) * p**c * (1 - p) ** (n - c) for c in range(n + 1)]
    truth = 1 - (1 - p) ** k
    assert sum(w * _exact_pass_at_k(n, c, k) for c, w in enumerate(pmf)) == truth
    assert abs(sum(float(w) * pass_at_k(n, c, k) for c, w in enumerate(pmf)) - float(truth)) < 1e-12
    naive = sum(w * (1 - (1 - Fraction(c, n)) ** k) for c, w in enumerate(pmf))
    assert naive < truth  # 1 - (1 - c/n)^k underestimates


def test_mean_pass_at_k() -> None:
    assert mean_pass_at_k([(10, 0), (10, 10)], 3) == 0.5
    with pytest.raises(ValueError, match="empty"):
        mean_pass_at_k([], 1)


@pytest.mark.parametrize("n, c, k, pattern", [
    (5, 6, 1, "cannot exceed"),
    (5, 2, 0, "k must be between 1 and n"),
    (5, 2, 6, "k must be between 1 and n"),
    (-1, 0, 1, "n must be a non-negative int"),
    (5, 2.0, 1, "c must be a non-negative int"),
    (5, True, 1, "c must be a non-negative int"),
])
def test_pass_at_k_errors(n, c, k, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        pass_at_k(n, c, k)


def test_enumeration_refuses_huge_cases() -> None:
    with pytest.raises(ValueError, match="too many to enumerate"):
        pass_at_k_enumerate(100, 10, 50)


# ------------------------------------------------------------------ the Wilson interval
@pytest.mark.parametrize("x, n, low, high", [
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion: comparison of seven methods",
    # Statistics in Medicine 17:857-872, Table II, method 3 (score interval without continuity correction)
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0000, 0.1611),
    (1, 29, 0.0061, 0.1718),
    (29, 29, 0.8830, 1.0000),
])
def test_wilson_textbook_values(x: int, n: int, low: float, high: float) -> None:
    lo, hi = wilson_interval(x, n)
    assert round(lo, 4) == low and round(hi, 4) == high


def _score_test_bound(x: int, n: int, z: float, upper: bool) -> float:
    """The definition: the p where |x/n - p| = z·sqrt(p(1-p)/n), found by bisection on the side of x/n asked for."""
    phat = x / n

    def rejects(p: float) -> bool:
        return abs(phat - p) > z * math.sqrt(p * (1 - p) / n)

    inside, outside = phat, (1.0 if upper else 0.0)
    if not rejects(outside):
        return outside
    for _ in range(200):
        mid = (inside + outside) / 2
        if rejects(mid):
            outside = mid
        else:
            inside = mid
    return (inside + outside) / 2


def test_wilson_inverts_the_score_test() -> None:
    for confidence in (0.8, 0.95, 0.99):
        z = z_value(confidence)
        for n in (1, 2, 7, 30, 100, 1000):
            for x in sorted({0, 1, n // 3, n // 2, n - 1, n}):
                lo, hi = wilson_interval(x, n, confidence)
                assert abs(lo - _score_test_bound(x, n, z, upper=False)) < 1e-9, (x, n, confidence)
                assert abs(hi - _score_test_bound(x, n, z, upper=True)) < 1e-9, (x, n, confidence)


def test_wilson_properties() -> None:
    assert abs(z_value(0.95) - 1.959963984540054) < 1e-12
    for n in (1, 10, 57):
        for x in range(n + 1):
            lo, hi = wilson_interval(x, n)
            assert 0.0 <= lo <= x / n <= hi <= 1.0
            mirror = wilson_interval(n - x, n)
            assert abs(lo - (1 - mirror[1])) < 1e-12 and abs(hi - (1 - mirror[0])) < 1e-12
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    narrow, wide = wilson_interval(30, 100, 0.9), wilson_interval(30, 100, 0.99)
    assert wide[0] < narrow[0] and narrow[1] < wide[1]
    assert wilson_interval(300, 1000)[1] - wilson_interval(300, 1000)[0] < narrow[1] - narrow[0]


@pytest.mark.parametrize("args, pattern", [
    ((0, 0), "trials is 0"),
    ((5, 3), "cannot exceed"),
    ((-1, 3), "non-negative"),
    ((1, 3, 1.0), "confidence must be in"),
    ((1, 3, 95), "confidence must be in"),
])
def test_wilson_errors(args, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        wilson_interval(*args)


# ------------------------------------------------------------------ the bootstrap
def test_bootstrap_is_seeded_and_close_to_wilson() -> None:
    outcomes = np.array([1] * 240 + [0] * 160)  # 60% of 400
    a = bootstrap_interval(outcomes, seed=3)
    assert a == bootstrap_interval(outcomes, seed=3)
    assert a != bootstrap_interval(outcomes, seed=4)
    lo, hi = wilson_interval(240, 400)
    assert abs(a[0] - lo) < 0.01 and abs(a[1] - hi) < 0.01
    assert a[0] < 0.6 < a[1]


def test_bootstrap_with_another_statistic() -> None:
    values = np.arange(101, dtype=float)
    lo, hi = bootstrap_interval(values, np.median, n_resamples=300, seed=0)
    assert lo < 50 < hi
    diff = bootstrap_interval([1, 1, 1, 1], seed=0)
    assert diff == (1.0, 1.0)


@pytest.mark.parametrize("kwargs, pattern", [
    ({"values": []}, "non-empty"),
    ({"values": [[1, 0]]}, "1-D"),
    ({"values": [1, 0], "n_resamples": 0}, "positive int"),
    ({"values": [1, 0], "confidence": 2}, "confidence"),
])
def test_bootstrap_errors(kwargs, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        bootstrap_interval(**kwargs)


# ------------------------------------------------------------------ accuracy and exact match
def test_accuracy_reports_its_interval() -> None:
    acc = accuracy([True] * 125 + [False] * 75)
    assert isinstance(acc, Accuracy) and acc.correct == 125 and acc.total == 200 and acc.value == 0.625
    assert (acc.low, acc.high) == wilson_interval(125, 200)
    assert str(acc) == "62.5% (95% CI 55.6%-68.9%, n=200)"
    assert accuracy([1, 0, 0, 0], confidence=0.9).confidence == 0.9
    with pytest.raises(ValueError, match="booleans"):
        accuracy(["yes"])
    with pytest.raises(ValueError, match="at least one question"):
        accuracy([])


def test_exact_match_is_the_tasks_one() -> None:
    assert exact_match is assistant_tasks.exact_match and normalize is assistant_tasks.normalize
    assert exact_match(" 46. ", "46") and not exact_match("CROWN", "crown", case_sensitive=True)
