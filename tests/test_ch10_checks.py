"""Chapter 10's exercise checks (written ahead of the chapter): the solutions pass, blank stubs say so,
and each usual slip is named in words."""

from __future__ import annotations

import numpy as np
import pytest

from course.checks import ExerciseFailed, NotImplementedYet
from course.checks.ch10 import check_alignment_accuracy, check_attention_mask, check_lsh_probability
from course.families import attention_pattern
from course.pretraining_data import lsh_probability as library_lsh_probability
from solutions.ch10_landscape import alignment_accuracy, attention_mask, lsh_probability


def _stub(*args):
    raise NotImplementedError


def _prefix_rows_see_everything(t, prefix):
    mask = np.tril(np.ones((t, t), bool))
    mask[:prefix, :] = True  # the slip: the prefix also sees what comes after it
    return mask


@pytest.mark.parametrize("check, solution", [(check_attention_mask, attention_mask),
                                             (check_lsh_probability, lsh_probability),
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
    for s in (0.1, 0.5, 0.8, 0.95):
        assert lsh_probability(s, 16, 8) == pytest.approx(library_lsh_probability(s, 16, 8), abs=1e-15)


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


@pytest.mark.parametrize("fn, message", [
    (lambda s, b, r: 1 - (1 - s ** b) ** r, "swapped"),
    (lambda s, b, r: (1 - s ** r) ** b, "no. band|\\*no\\* band"),
    (lambda s, b, r: s ** r, "one given band"),
    (lambda s, b, r: s ** (r * b), "every row"),
    (lambda s, b, r: 0.5, "expected"),
])
def test_the_lsh_check_names_the_slips(fn, message):
    with pytest.raises(ExerciseFailed, match=message):
        check_lsh_probability(fn)


@pytest.mark.parametrize("fn, message", [
    (lambda w, a: float(np.sum(np.asarray(w).argmax(-1) == np.asarray(a))), "number of hits"),
    (lambda w, a: float(np.mean(np.asarray(w).argmax(0) == np.asarray(a))), "last axis"),
    (lambda w, a: 0.0, "fraction"),
])
def test_the_alignment_check_names_the_slips(fn, message):
    with pytest.raises(ExerciseFailed, match=message):
        check_alignment_accuracy(fn)
