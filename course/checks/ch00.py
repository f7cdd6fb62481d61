"""Checks for the exercises of chapter 00 (introduction)."""

from __future__ import annotations

import numpy as np

from . import ExerciseFailed, call, exercise_check, expect, expect_close


def _reference_softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@exercise_check("softmax")
def check_softmax(softmax) -> None:
    """Check a softmax over the last axis: values, normalisation, stability, no side effects."""
    # 1. A small vector with a known answer.
    x = np.array([1.0, 2.0, 3.0])
    out = np.asarray(call(softmax, x.copy()))
    expect(out.shape == x.shape, f"softmax of a vector of shape {x.shape} returned shape {out.shape}: it must keep the shape.")
    expect(np.all(out >= 0), "softmax returned negative numbers: probabilities are never negative (did you forget exp?).")
    total = float(out.sum())
    expect(abs(total - 1.0) < 1e-6, f"the outputs sum to {total:.4g}, not 1: divide by the sum of the exponentials.")
    if np.allclose(out, x / x.sum()):
        raise ExerciseFailed("softmax([1, 2, 3]) gave [1, 2, 3] / 6: you divided the raw values by their sum. "
                             "Take exp first: exp(x) / exp(x).sum().")
    expect_close(out, _reference_softmax(x), "softmax([1, 2, 3])")

    # 2. A batch: every row is its own distribution.
    rng = np.random.default_rng(0)
    batch = rng.normal(size=(4, 5))
    try:
        out = np.asarray(call(softmax, batch.copy()))
    except ExerciseFailed as failure:
        if isinstance(failure.__cause__, ValueError) and "broadcast" in str(failure.__cause__):
            raise ExerciseFailed(
                f"{str(failure).rstrip()} On a (4, 5) batch a max or sum over the last axis has shape (4,), which does not "
                "broadcast against (4, 5): pass keepdims=True so it stays (4, 1)."
            ) from failure.__cause__
        raise
    expect(out.shape == batch.shape, f"softmax of shape {batch.shape} returned shape {out.shape}.")
    rows, cols = out.sum(axis=-1), out.sum(axis=0)
    if not np.allclose(rows, 1.0) and np.allclose(cols, 1.0):
        raise ExerciseFailed(
            "each column of your output sums to 1 but the rows do not: you normalised over axis 0. "
            "Use axis=-1 (the last axis) with keepdims=True."
        )
    if np.isclose(out.sum(), 1.0):
        raise ExerciseFailed("the whole (4, 5) batch sums to 1, not each row: you divided by the sum of everything. "
                             "Sum over the last axis only: e.sum(axis=-1, keepdims=True).")
    expect(np.allclose(rows, 1.0), f"rows of your output sum to {np.round(rows, 3).tolist()}, not 1: "
           "sum over the last axis with keepdims=True so the division broadcasts per row.")
    expect_close(out, _reference_softmax(batch), "softmax of a 4x5 batch")

    # 3. Large logits: the naive formula overflows (exp(1000) is inf in float64).
    big = np.array([1000.0, 1001.0, 1002.0])
    out = np.asarray(call(softmax, big.copy()))
    if not np.all(np.isfinite(out)):
        raise ExerciseFailed(
            "softmax([1000, 1001, 1002]) gave nan or inf: exp(1000) overflows. "
            "Subtract the maximum of each row before exp; it does not change the result."
        )
    expect_close(out, _reference_softmax(big), "softmax([1000, 1001, 1002])")

    # 4. Shift invariance and no side effects on the input.
    x = rng.normal(size=(3, 4))
    before = x.copy()
    out1 = np.asarray(call(softmax, x))
    expect(np.array_equal(x, before), "your softmax changed its input array in place: compute on a copy (x - max is a new array; x -= max is not).")
    out2 = np.asarray(call(softmax, x + 50.0))
    expect_close(out2, out1, "softmax(x + 50) compared with softmax(x)", rtol=1e-5, atol=1e-8)
