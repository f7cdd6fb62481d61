"""Chapter 10's exercise checks (written ahead of the chapter): the solutions pass, blank stubs say so,
and each usual slip is named in words."""

from __future__ import annotations

import numpy as np
import pytest

from course.checks import ExerciseFailed, NotImplementedYet
from course.checks.ch10 import check_alignment_accuracy, check_attention_mask, check_lsh_bands
from course.families import attention_pattern
from course.pretraining_data import choose_bands, lsh_probability
from solutions.ch10_landscape import alignment_accuracy, attention_mask, pick_bands


def _stub(*args):
    raise NotImplementedError


def _prefix_rows_see_everything(t, prefix):
    mask = np.tril(np.ones((t, t), bool))
    mask[:prefix, :] = True  # the slip: the prefix also sees what comes after it
    return mask


@pytest.mark.parametrize("check, solution", [(check_attention_mask, attention_mask),
                                             (check_lsh_bands, pick_bands),
                                             (check_alignment_accuracy, alignment_accuracy)])
def test_the_solution_passes_and_the_stub_fails(check, solution, capsys):
    check(solution)
    assert "all checks passed" in capsys.readouterr().out
    with pytest.raises(NotImplementedYet, match="still the blank stub"):
        check(_stub)


def test_the_solutions_agree_with_the_course_package():
    for kind in ("causal", "bidirectional"):
        assert np.array_equal(attention_mask(kind, 6), attention_pattern(kind, 6).numpy())
    for prefix in range(7):
        assert np.array_equal(attention_mask("prefix", 6, prefix), attention_pattern("prefix", 6, prefix=prefix).numpy())
    # the chapter's pipeline: a miss budget of 10% at the threshold is the library's recall of 90%
    assert pick_bands(128, 0.8, 0.5, 0.1) == choose_bands(128, 0.8, recall=0.9) == (16, 8)
    for num_perm, threshold, far, max_miss in ((128, 0.8, 0.5, 0.01), (100, 0.7, 0.3, 0.05), (120, 0.9, 0.6, 0.02)):
        bands, rows = pick_bands(num_perm, threshold, far, max_miss)
        assert bands * rows == num_perm and 1 - lsh_probability(threshold, bands, rows) <= max_miss
        others = [(num_perm // r, r) for r in range(1, num_perm + 1) if num_perm % r == 0
                  and 1 - lsh_probability(threshold, num_perm // r, r) <= max_miss]
        assert lsh_probability(far, bands, rows) == min(lsh_probability(far, b, r) for b, r in others)


@pytest.mark.parametrize("fn, message", [
    (lambda kind, t, prefix=0: np.triu(np.ones((t, t), bool)) if kind == "causal" else attention_mask(kind, t, prefix),
     "future"),
    (lambda kind, t, prefix=0: np.tril(np.ones((t, t), bool), -1) if kind == "causal" else attention_mask(kind, t, prefix),
     "diagonal"),
    (lambda kind, t, prefix=0: ~attention_mask(kind, t, prefix), "inverted"),
    (lambda kind, t, prefix=0: np.eye(t, dtype=bool) if kind == "bidirectional" else attention_mask(kind, t, prefix),
     "every position"),
    (lambda kind, t, prefix=0: _prefix_rows_see_everything(t, prefix) if kind == "prefix" else attention_mask(kind, t, prefix),
     "within itself"),
])
def test_the_mask_check_names_the_slips(fn, message):
    with pytest.raises(ExerciseFailed, match=message):
        check_attention_mask(fn)


def _most_bands(num_perm, threshold, far, max_miss):
    """The slip: the first split that keeps the budget, from the most bands down (1 row each)."""
    for rows in range(1, num_perm + 1):
        if num_perm % rows == 0 and 1 - lsh_probability(threshold, num_perm // rows, rows) <= max_miss:
            return num_perm // rows, rows
    raise ValueError("none")


def _no_budget(num_perm, threshold, far, max_miss):
    """The slip: the fewest false candidates, whatever the misses (a single band of every row)."""
    return 1, num_perm


@pytest.mark.parametrize("fn, message", [
    (lambda n, t, f, m: pick_bands(n, t, f, m)[::-1], "swapped"),
    (lambda n, t, f, m: (n // 8, 9), "must equal num_perm"),
    (_most_bands, "fewest false"),
    (_no_budget, "more than max_miss"),
    (lambda n, t, f, m: pick_bands(n, t, f, 1.0), "more than max_miss|fewest false"),
    (lambda n, t, f, m: (16, 8) if n == 4 else pick_bands(n, t, f, m), "raise ValueError"),
    (lambda n, t, f, m: "16x8", "pair|whole numbers"),
])
def test_the_lsh_check_names_the_slips(fn, message):
    with pytest.raises(ExerciseFailed, match=message):
        check_lsh_bands(fn)


@pytest.mark.parametrize("fn, message", [
    (lambda w, a: float(np.sum(np.asarray(w).argmax(-1) == np.asarray(a))), "number of hits"),
    (lambda w, a: float(np.mean(np.asarray(w).argmax(0) == np.asarray(a))), "last axis"),
    (lambda w, a: 0.0, "fraction"),
])
def test_the_alignment_check_names_the_slips(fn, message):
    with pytest.raises(ExerciseFailed, match=message):
        check_alignment_accuracy(fn)
