"""Checks for the exercises of chapter 03 (self-attention in NumPy).

Each check makes its own inputs, compares with `course.attention_numpy`, and
names the classic mistake when it recognises one: softmax over the wrong axis,
an overflow, an input changed in place, a missing or wrong √d_k, a mask applied
after the softmax (or with 0 instead of -inf), a forgotten softmax-Jacobian term.
"""

from __future__ import annotations

import math

import numpy as np

from .. import attention_numpy as A
from . import ExerciseFailed, NotImplementedYet, call, exercise_check, expect, expect_close


def _arr(x: object, what: str) -> np.ndarray:
    a = np.asarray(x)
    expect(np.issubdtype(a.dtype, np.number), f"{what}: not an array of numbers (got {type(x).__name__}).")
    return a


def _pair(result: object, name: str) -> tuple[np.ndarray, np.ndarray]:
    expect(
        isinstance(result, (tuple, list)) and len(result) == 2,
        f"`{name}` must return a pair (output, weights); got {type(result).__name__}.",
    )
    return _arr(result[0], "the output"), _arr(result[1], "the weights")


# --------------------------------------------------------------------------- exercise 1


@exercise_check("stable softmax for attention scores")
def check_softmax(softmax) -> None:
    """Softmax over the last axis of batched scores, with -inf entries, large values, no side effects."""
    rng = np.random.default_rng(30)

    # 1. batched scores: every row (one query) is a distribution over the keys (last axis)
    scores = rng.normal(size=(2, 3, 4))
    out = _arr(call(softmax, scores.copy()), "softmax(scores)")
    expect(out.shape == scores.shape, f"softmax of shape {scores.shape} returned shape {out.shape}: keep the shape.")
    if (out < 0).any():
        raise ExerciseFailed("your softmax has negative entries: weights are exp(score) / sum, never negative. "
                             "Did you forget the exp?")
    rows = out.sum(axis=-1)
    if not np.allclose(rows, 1.0):
        for axis in (0, 1):
            if np.allclose(out.sum(axis=axis), 1.0):
                raise ExerciseFailed(
                    f"your output sums to 1 along axis {axis}, not along the last axis: each query's row "
                    "must be a distribution over the keys. Use axis=-1 with keepdims=True."
                )
        if np.isclose(out.sum(), 1.0):
            raise ExerciseFailed("the whole array sums to 1: you normalised over everything. Sum over axis=-1 only.")
        raise ExerciseFailed(
            f"rows of your output sum to {np.round(rows.ravel()[:3], 3).tolist()}..., not 1: "
            "divide by the sum over the last axis (keepdims=True)."
        )
    expect_close(out, A.softmax(scores), "softmax of a (2, 3, 4) batch", rtol=1e-6, atol=1e-9)

    # 2. masked entries: -inf must become exactly 0, the rest still sums to 1
    masked = np.where(A.causal_mask(4), rng.normal(size=(4, 4)), -np.inf)
    with np.errstate(all="ignore"):
        out = _arr(call(softmax, masked.copy()), "softmax of masked scores")
    expect(
        np.isfinite(out).all(),
        "softmax of scores containing -inf gave nan: exp(-inf) is 0, so -inf entries should get weight 0. "
        "Did you subtract a max that is -inf, or compute -inf - (-inf)?",
    )
    expect(
        (out[~A.causal_mask(4)] == 0).all(),
        "entries that were -inf got a non-zero weight: they must come out exactly 0.",
    )
    expect_close(out, A.softmax(masked), "softmax of causally masked scores", rtol=1e-6, atol=1e-9)

    # 3. large scores overflow exp without the max subtraction (exp(710) is inf in float64)
    big = np.array([[800.0, 810.0, 805.0], [-5.0, 0.0, 5.0]])
    with np.errstate(all="ignore"):
        out = _arr(call(softmax, big.copy()), "softmax([[800, 810, 805], ...])")
    if not np.isfinite(out).all():
        raise ExerciseFailed(
            "softmax of scores around 800 gave nan or inf: exp(800) overflows to inf and inf/inf is nan. "
            "Subtract each row's maximum before exp (keepdims=True); the result does not change."
        )
    expect_close(out, A.softmax(big), "softmax of large scores", rtol=1e-6, atol=1e-12)

    # 4. float32 stays finite too (exp overflows float32 already at 89)
    s32 = (rng.normal(size=(3, 5)) * 60).astype(np.float32)
    with np.errstate(all="ignore"):
        out = _arr(call(softmax, s32.copy()), "softmax of float32 scores")
    expect(np.isfinite(out).all(), "float32 scores of size ~100 gave nan/inf: subtract the row max before exp.")
    expect_close(out, A.softmax(s32.astype(np.float64)), "softmax of float32 scores", rtol=1e-4, atol=1e-6)

    # 5. no side effects: the caller's scores must be left alone
    x = rng.normal(size=(3, 4)) * 5
    before = x.copy()
    call(softmax, x)
    expect(
        np.array_equal(x, before),
        "your softmax changed its input in place (for example `x -= x.max(...)` or `np.exp(x, out=x)`): "
        "the caller's scores are now different. Compute `z = x - x.max(axis=-1, keepdims=True)`, a new array.",
    )


# --------------------------------------------------------------------------- exercise 2


@exercise_check("scaled attention scores")
def check_attention_scores(attention_scores) -> None:
    """``q kᵀ / √d_k`` for batched inputs with different numbers of queries and keys."""
    rng = np.random.default_rng(31)
    d_k = 16
    q, k = rng.normal(size=(2, 3, d_k)), rng.normal(size=(2, 5, d_k))
    expected = (q @ np.swapaxes(k, -1, -2)) / math.sqrt(d_k)
    try:
        out = _arr(call(attention_scores, q.copy(), k.copy()), "attention_scores(q, k)")
    except NotImplementedYet:
        raise
    except ExerciseFailed as err:
        raise ExerciseFailed(
            f"{err} This was a batch: q of shape {q.shape}, k of shape {k.shape}. Transpose only the last "
            "two axes of k (np.swapaxes(k, -1, -2)); k.T reverses all axes, which breaks batched inputs."
        ) from None
    if out.shape == (2, 5, 3):
        raise ExerciseFailed(
            "your scores have shape (batch, keys, queries) = (2, 5, 3); expected (batch, queries, keys) = (2, 3, 5). "
            "Compute q @ kᵀ (one row per query), not k @ qᵀ."
        )
    expect(
        out.shape == expected.shape,
        f"for q of shape {q.shape} and k of shape {k.shape} the scores must have shape {expected.shape} "
        f"(batch, queries, keys); yours have {out.shape}. Transpose only the last two axes of k "
        "(np.swapaxes(k, -1, -2) or k.transpose(0, 2, 1)); k.T reverses all axes.",
    )
    for factor, diagnosis in (
        (math.sqrt(d_k), "you forgot to divide by √d_k"),
        (1 / math.sqrt(d_k), "you divided by d_k instead of √d_k: the square root is missing"),
        (d_k, "you multiplied by √d_k instead of dividing by it"),
        (math.sqrt(d_k) / math.sqrt(q.shape[0]), "you divided by √(batch size), q.shape[0], instead of √d_k"),
        (math.sqrt(d_k) / math.sqrt(q.shape[-2]), "you divided by √(number of queries) instead of √d_k"),
        (math.sqrt(d_k) / math.sqrt(k.shape[-2]), "you divided by √(number of keys) instead of √d_k"),
    ):
        if np.allclose(out, expected * factor, rtol=1e-6):
            raise ExerciseFailed(
                f"your scores are {factor:.3g} times the expected ones: {diagnosis}. "
                "d_k is the last axis of q and k (here 16): divide by its square root."
            )
    expect_close(out, expected, "your scores", rtol=1e-6, atol=1e-9)
    # also a single, unbatched sequence
    q2, k2 = rng.normal(size=(4, 8)), rng.normal(size=(4, 8))
    out2 = _arr(call(attention_scores, q2, k2), "attention_scores on 2-D input")
    expect_close(out2, q2 @ k2.T / math.sqrt(8), "scores for 2-D q and k of shape (4, 8)", rtol=1e-6, atol=1e-9)


# --------------------------------------------------------------------------- exercise 3


@exercise_check("causal attention")
def check_causal_attention(causal_attention) -> None:
    """Causal self-attention ``(output, weights)``: mask with -inf before the softmax."""
    rng = np.random.default_rng(32)
    t, d = 5, 4
    q, k, v = rng.normal(size=(2, t, d)), rng.normal(size=(2, t, d)), rng.normal(size=(2, t, 3))
    ref_out, ref_w = A.scaled_dot_product_attention(q, k, v, A.causal_mask(t))
    with np.errstate(all="ignore"):
        out, w = _pair(call(causal_attention, q.copy(), k.copy(), v.copy()), "causal_attention")
    if out.shape == ref_w.shape and w.shape == ref_out.shape:
        raise ExerciseFailed("you returned (weights, output): return (output, weights), the output first.")
    expect(w.shape == ref_w.shape, f"the weights must have shape (batch, time, time) = {ref_w.shape}; got {w.shape}.")
    expect(out.shape == ref_out.shape, f"the output must have shape (batch, time, d_v) = {ref_out.shape}; got {out.shape}.")
    seen = np.abs(np.nan_to_num(w)) > 1e-12  # nan (a row with nothing visible) counts as nothing seen
    strictly_past = np.tril(np.ones((t, t), dtype=bool), k=-1)
    if not seen[:, strictly_past].any() and seen[:, np.triu(np.ones((t, t), dtype=bool), k=1)].any():
        raise ExerciseFailed(
            "your mask is the wrong triangle, inverted: it hides the past and shows the future (query i sees keys "
            "j >= i instead of j <= i). Keep np.tril(ones), or hide np.triu(ones, k=1), not the other way round."
        )
    self_weight = np.nan_to_num(np.diagonal(w, axis1=-2, axis2=-1))  # w[:, i, i]: how much query i attends to itself
    if np.abs(self_weight[:, 1:]).max() < 1e-12:
        raise ExerciseFailed(
            "you masked the diagonal as well: query i gives weight 0 to key i, itself. Causal attention hides only "
            "the future, keys j > i; key i is the query's own token and stays visible (query 0 sees only itself, "
            "otherwise its row has nothing left to attend to). Hide np.triu(..., k=1), or keep np.tril(...) with "
            "the default k=0, not k=-1."
        )
    expect(np.isfinite(w).all(), "your weights contain nan or inf: is a whole row masked, or did exp overflow?")
    future = ~A.causal_mask(t)
    past = A.causal_mask(t)
    if np.abs(w[:, future]).max() > 0:
        if np.abs(w[:, strictly_past]).max() == 0:
            raise ExerciseFailed(
                "your mask is the wrong triangle: query i must see keys 0..i (the lower triangle, diagonal "
                "included), so query 0 sees only itself. Use np.tril, or hide the keys j > i."
            )
        raise ExerciseFailed(
            "a query gives non-zero weight to a key in its future (weights above the diagonal are not 0). "
            "Set those scores to -inf before the softmax; a score of 0 is not enough, since exp(0) = 1."
        )
    rows = w.sum(axis=-1)
    if not np.allclose(rows, 1.0):
        if np.allclose(w.sum(axis=-2), 1.0):
            raise ExerciseFailed("your columns sum to 1, not your rows: apply the softmax over the keys (axis=-1).")
        raise ExerciseFailed(
            f"the weights of each query sum to {np.round(rows[0], 3).tolist()}, not 1: you zeroed the future "
            "after the softmax, so the future still took part in the normalisation. Put -inf in the scores "
            "before the softmax instead."
        )
    if not np.allclose(w, ref_w, rtol=1e-6):
        for scale, diagnosis in (
            (1.0, "your weights match softmax(q kᵀ) without the scale: divide the scores by √d_k."),
            (1 / d, "your scores were divided by d_k, not by √d_k: the square root is missing."),
            (math.sqrt(d), "your scores were multiplied by √d_k: divide by it instead."),
        ):
            if np.allclose(w, A.scaled_dot_product_attention(q, k, v, A.causal_mask(t), scale=scale)[1], rtol=1e-6):
                raise ExerciseFailed(diagnosis)
    expect_close(w, ref_w, "your attention weights", rtol=1e-6, atol=1e-9)
    expect(w[:, past].min() > 0, "a visible key got weight exactly 0: only the future should be masked.")
    expect_close(out, ref_out, "your output (weights @ v)", rtol=1e-6, atol=1e-9)


# --------------------------------------------------------------------------- exercise 4


@exercise_check("attention backward")
def check_attention_backward(attention_backward) -> None:
    """``(dq, dk, dv)`` of ``out = softmax(q kᵀ/√d) v`` for one 2-D head without a mask."""
    rng = np.random.default_rng(33)
    q, k, v = rng.normal(size=(3, 4)), rng.normal(size=(5, 4)), rng.normal(size=(5, 2))
    _, p = A.scaled_dot_product_attention(q, k, v)
    g_out = rng.normal(size=(3, 2))
    ref = A.scaled_dot_product_attention_backward(g_out, q, k, v, p)
    result = call(attention_backward, g_out.copy(), q.copy(), k.copy(), v.copy())
    expect(
        isinstance(result, (tuple, list)) and len(result) == 3,
        f"`attention_backward` must return (dq, dk, dv); got {type(result).__name__}.",
    )
    dq, dk, dv = (_arr(r, name) for r, name in zip(result, ("dq", "dk", "dv")))
    if dq.shape == k.shape and dk.shape == q.shape:
        raise ExerciseFailed(f"dq has the shape of k {k.shape} and dk the shape of q {q.shape}: did you return "
                             "(dk, dq, dv)? Return (dq, dk, dv), in that order.")
    for name, got, want in (("dq", dq, q), ("dk", dk, k), ("dv", dv, v)):
        expect(
            got.shape == want.shape,
            f"{name} must have the shape of {name[1]} {want.shape} (a gradient is shaped like what it "
            f"differentiates); yours has {got.shape}.",
        )

    # dv
    if not np.allclose(dv, ref["v"], rtol=1e-6, atol=1e-9):
        raise ExerciseFailed(
            "dv is wrong. out = P @ v, so dv = Pᵀ @ dout (the weights transposed, times the gradient of the output)."
        )

    # dq and dk: recognise the classic slips
    scale = 1 / math.sqrt(q.shape[-1])
    d_p = g_out @ v.T
    no_jacobian_term = p * d_p  # forgot "- rowsum(dP * P)"
    column_sum = p * (d_p - (d_p * p).sum(axis=0, keepdims=True))  # the row sum taken down the columns
    unweighted = p * (d_p - d_p.sum(axis=-1, keepdims=True))  # forgot the P inside the sum
    slips = {
        "the softmax Jacobian is missing its second term: dS = P * (dP - (dP * P).sum(axis=-1, keepdims=True)), "
        "not just P * dP": (no_jacobian_term @ k * scale, no_jacobian_term.T @ q * scale),
        "the softmax Jacobian's sum runs over the wrong axis: (dP * P).sum(axis=-1, keepdims=True), one sum per "
        "query row, not axis=0": (column_sum @ k * scale, column_sum.T @ q * scale),
        "the softmax Jacobian's second term is the sum of dP * P (weighted by P), not of dP alone: "
        "dS = P * (dP - (dP * P).sum(axis=-1, keepdims=True))": (unweighted @ k * scale, unweighted.T @ q * scale),
        "it carries 1/d_k instead of 1/√d_k, the scale applied twice; S = q kᵀ/√d_k gives one factor 1/√d_k":
            (ref["q"] * scale, ref["k"] * scale),
        "the 1/√d_k factor is missing: the scores were scaled in the forward pass, so dq and dk carry it too":
            (ref["q"] / scale, ref["k"] / scale),
    }
    for message, (slip_q, slip_k) in slips.items():
        if np.allclose(dq, slip_q, rtol=1e-6) and not np.allclose(dq, ref["q"], rtol=1e-6):
            raise ExerciseFailed(f"dq is wrong: {message}.")
        if np.allclose(dk, slip_k, rtol=1e-6) and not np.allclose(dk, ref["k"], rtol=1e-6):
            raise ExerciseFailed(f"dk is wrong: {message}.")
    if not np.allclose(dq, ref["q"], rtol=1e-6, atol=1e-9):
        raise ExerciseFailed("dq is wrong. With S = q kᵀ/√d_k: dq = dS @ k / √d_k, where dS is the gradient of the scores.")
    if not np.allclose(dk, ref["k"], rtol=1e-6, atol=1e-9):
        raise ExerciseFailed("dk is wrong. With S = q kᵀ/√d_k: dk = dSᵀ @ q / √d_k (note the transpose of dS).")

    # finally: central differences agree with the learner's gradient (it is a real gradient)
    def loss() -> float:
        return float((A.scaled_dot_product_attention(q, k, v)[0] * g_out).sum())

    for name, got, arr in (("dq", dq, q), ("dk", dk, k), ("dv", dv, v)):
        err = A.relative_error(got, A.numerical_gradient(loss, arr))
        expect(err < 1e-6, f"{name} disagrees with central finite differences (relative error {err:.2g}).")
