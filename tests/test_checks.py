"""The exercise-check machinery and chapter 00's check diagnose mistakes in words."""

from __future__ import annotations

import numpy as np
import pytest

from course.checks import ExerciseFailed, NotImplementedYet, call, expect_close
from course.checks.ch00 import check_softmax
from solutions.ch00_introduction import softmax


def test_solution_passes(capsys):
    check_softmax(softmax)
    assert "softmax: all checks passed" in capsys.readouterr().out


def _stub(x):
    raise NotImplementedError


def _naive(x):
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


def _wrong_axis(x):
    x = np.asarray(x, dtype=float)
    e = np.exp(x - x.max())
    return e / e.sum(axis=0, keepdims=True)


def _in_place(x):
    x -= x.max(axis=-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


def _no_keepdims(x):
    x = np.asarray(x, dtype=float)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1)


@pytest.mark.parametrize(
    "fn, message",
    [
        (_stub, "still the blank stub"),
        (_naive, "exp\\(1000\\) overflows"),
        (_wrong_axis, "normalised over axis 0"),
        (_in_place, "changed its input array in place"),
        (_no_keepdims, "raised ValueError|sum to"),
        (lambda x: np.ones_like(x), "sum to 3"),
    ],
    ids=["stub", "overflow", "wrong-axis", "in-place", "no-keepdims", "not-normalised"],
)
def test_softmax_check_names_the_mistake(fn, message):
    with pytest.raises(ExerciseFailed, match=message), np.errstate(all="ignore"):
        check_softmax(fn)


def test_stub_failure_is_its_own_type():
    with pytest.raises(NotImplementedYet):
        call(_stub, 1)


def test_expect_close_reports_where():
    with pytest.raises(ExerciseFailed, match=r"at index \(1, 0\)"):
        expect_close(np.array([[1.0, 2.0], [3.5, 4.0]]), np.array([[1.0, 2.0], [3.0, 4.0]]), "matrix")
    with pytest.raises(ExerciseFailed, match="shape"):
        expect_close(np.zeros(3), np.zeros(4), "vector")


def test_failure_renders_without_traceback():
    assert ExerciseFailed("rows sum to 2")._render_traceback_() == ["\u274c Not yet: rows sum to 2"]
