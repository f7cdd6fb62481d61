"""Tests of chapter 03: course/attention_numpy.py, its exercise checks, plots and explorer widget."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

import course.attention_numpy as A
from course.checks import ExerciseFailed, NotImplementedYet
from course.checks import ch03
from course.plots.attention import attention_heatmap, attention_heatmaps, scaling_experiment_figure
from course.widgets.attention import attention_figure, attention_maps, word_tokens
from solutions import ch03_attention_numpy as sol


def naive_attention(q, k, v, mask=None, scale=None):
    """An independent reference: loops over queries, float64, no vectorised tricks."""
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    t_q, t_k = q.shape[0], k.shape[0]
    weights = np.zeros((t_q, t_k))
    for i in range(t_q):
        allowed = [j for j in range(t_k) if mask is None or mask[i, j]]
        s = np.array([float(np.dot(q[i], k[j])) * scale for j in allowed])
        e = np.exp(s - s.max())
        weights[i, allowed] = e / e.sum()
    return weights @ v, weights


# --------------------------------------------------------------------------- softmax


def test_softmax_rows_sum_to_one_and_match_definition():
    x = np.random.default_rng(0).normal(size=(3, 4, 7))
    p = A.softmax(x)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(p, np.exp(x) / np.exp(x).sum(-1, keepdims=True), rtol=1e-12)
    # another axis
    np.testing.assert_allclose(A.softmax(x, axis=0).sum(axis=0), 1.0, atol=1e-12)


def test_softmax_is_stable_and_does_not_modify_input():
    x = np.array([[1000.0, 1001.0, 1002.0], [-1000.0, -1001.0, -1002.0]])
    before = x.copy()
    p = A.softmax(x)
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p[0], A.softmax(np.array([0.0, 1.0, 2.0])), rtol=1e-12)
    np.testing.assert_allclose(p[1], A.softmax(np.array([0.0, -1.0, -2.0])), rtol=1e-12)
    np.testing.assert_array_equal(x, before)
    # float32 overflows at exp(89) without the max subtraction
    x32 = np.array([100.0, 90.0], dtype=np.float32)
    p32 = A.softmax(x32)
    assert p32.dtype == np.float32 and np.isfinite(p32).all()


def test_softmax_minus_inf_gets_exactly_zero_and_all_masked_row_raises():
    p = A.softmax(np.array([0.5, -np.inf, 2.0]))
    assert p[1] == 0.0
    assert abs(p.sum() - 1.0) < 1e-15
    with pytest.raises(ValueError, match="entirely -inf"):
        A.softmax(np.array([[0.0, 1.0], [-np.inf, -np.inf]]))
    with pytest.raises(ValueError, match="nan"):
        A.softmax(np.array([0.0, np.nan]))


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(-50, 50, allow_nan=False), min_size=1, max_size=12),
    st.floats(-500, 500, allow_nan=False),
)
def test_softmax_shift_invariant_property(values, shift):
    x = np.array(values)
    np.testing.assert_allclose(A.softmax(x + shift), A.softmax(x), rtol=1e-9, atol=1e-15)
    assert abs(A.softmax(x).sum() - 1.0) < 1e-12


def test_softmax_backward_equals_full_jacobian():
    rng = np.random.default_rng(1)
    s = rng.normal(size=6)
    p = A.softmax(s)
    dp = rng.normal(size=6)
    jac = np.diag(p) - np.outer(p, p)  # dp_i / ds_j
    np.testing.assert_allclose(A.softmax_backward(p, dp), jac.T @ dp, rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------------- causal mask


def test_causal_mask_shape_and_triangle():
    m = A.causal_mask(4)
    assert m.dtype == bool and m.shape == (4, 4)
    for i in range(4):
        for j in range(4):
            assert m[i, j] == (j <= i)
    # more keys than queries: the queries are the last positions (KV cache)
    m2 = A.causal_mask(2, 5)
    np.testing.assert_array_equal(m2, A.causal_mask(5)[-2:])
    with pytest.raises(ValueError, match="t_q"):
        A.causal_mask(0)
    with pytest.raises(ValueError, match="at least as many keys"):
        A.causal_mask(3, 2)


# --------------------------------------------------------------------------- one head


@pytest.mark.parametrize("causal", [False, True])
def test_sdpa_matches_naive_loops(causal):
    rng = np.random.default_rng(2)
    q, k, v = rng.normal(size=(5, 4)), rng.normal(size=(5, 4)), rng.normal(size=(5, 3))
    mask = A.causal_mask(5) if causal else None
    out, w = A.scaled_dot_product_attention(q, k, v, mask)
    ref_out, ref_w = naive_attention(q, k, v, mask)
    np.testing.assert_allclose(w, ref_w, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(out, ref_out, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-12)
    if causal:
        assert (w[~mask] == 0.0).all()  # exactly zero, not just small
        assert (w[mask] > 0).all()


def test_sdpa_scale_argument_and_uniform_when_scale_zero():
    rng = np.random.default_rng(3)
    q, k, v = rng.normal(size=(3, 8)), rng.normal(size=(6, 8)), rng.normal(size=(6, 2))
    _, w0 = A.scaled_dot_product_attention(q, k, v, scale=0.0)
    np.testing.assert_allclose(w0, 1 / 6, rtol=1e-12)
    _, w = A.scaled_dot_product_attention(q, k, v, scale=0.5)
    np.testing.assert_allclose(w, naive_attention(q, k, v, scale=0.5)[1], rtol=1e-12)


@pytest.mark.parametrize("lead", [(2,), (2, 3)])
def test_sdpa_batched_3d_and_4d_match_per_slice(lead):
    rng = np.random.default_rng(4)
    q = rng.normal(size=lead + (5, 4))
    k = rng.normal(size=lead + (6, 4))
    v = rng.normal(size=lead + (6, 3))
    mask = A.causal_mask(5, 6)
    out, w = A.scaled_dot_product_attention(q, k, v, mask)
    assert out.shape == lead + (5, 3) and w.shape == lead + (5, 6)
    for idx in np.ndindex(*lead):
        ref_out, ref_w = naive_attention(q[idx], k[idx], v[idx], mask)
        np.testing.assert_allclose(out[idx], ref_out, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(w[idx], ref_w, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sdpa_keeps_dtype(dtype):
    rng = np.random.default_rng(5)
    q, k, v = (rng.normal(size=(2, 4, 8)).astype(dtype) for _ in range(3))
    out, w = A.scaled_dot_product_attention(q, k, v, A.causal_mask(4))
    assert out.dtype == dtype and w.dtype == dtype
    ref_out, _ = A.scaled_dot_product_attention(*(a.astype(np.float64) for a in (q, k, v)), A.causal_mask(4))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, ref_out, rtol=tol, atol=tol)
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=tol)


def test_sdpa_integer_input_is_computed_in_float64():
    q = np.arange(6).reshape(3, 2)
    out, w = A.scaled_dot_product_attention(q, q, q)
    assert out.dtype == np.float64
    np.testing.assert_allclose(w, naive_attention(q, q, q)[1], rtol=1e-12)


def test_sdpa_clear_errors():
    q, k, v = np.zeros((4, 8)), np.zeros((5, 8)), np.zeros((5, 3))
    with pytest.raises(ValueError, match=r"same last dimension d_k.*\(4, 8\).*\(5, 7\)"):
        A.scaled_dot_product_attention(q, np.zeros((5, 7)), v)
    with pytest.raises(ValueError, match=r"same number of positions.*\(5, 8\).*\(6, 3\)"):
        A.scaled_dot_product_attention(q, k, np.zeros((6, 3)))
    with pytest.raises(ValueError, match=r"`q` must have shape .*got shape \(8,\)"):
        A.scaled_dot_product_attention(np.zeros(8), k, v)
    with pytest.raises(ValueError, match="same leading"):
        A.scaled_dot_product_attention(np.zeros((2, 4, 8)), np.zeros((3, 5, 8)), np.zeros((3, 5, 3)))
    with pytest.raises(TypeError, match="boolean"):
        A.scaled_dot_product_attention(q, k, v, mask=np.ones((4, 5)))
    with pytest.raises(ValueError, match="does not broadcast"):
        A.scaled_dot_product_attention(q, k, v, mask=np.ones((3, 3), dtype=bool))
    bad = np.ones((4, 5), dtype=bool)
    bad[2] = False
    with pytest.raises(ValueError, match="every key"):
        A.scaled_dot_product_attention(q, k, v, mask=bad)


def test_mask_after_softmax_differs_from_mask_before():
    """Zeroing weights after the softmax is not the same: rows no longer sum to 1."""
    rng = np.random.default_rng(6)
    q, k, v = (rng.normal(size=(4, 4)) for _ in range(3))
    m = A.causal_mask(4)
    _, w_unmasked = A.scaled_dot_product_attention(q, k, v)
    _, w = A.scaled_dot_product_attention(q, k, v, m)
    zeroed_after = np.where(m, w_unmasked, 0.0)
    assert not np.allclose(zeroed_after.sum(-1), 1.0)
    np.testing.assert_allclose(zeroed_after / zeroed_after.sum(-1, keepdims=True), w, rtol=1e-12)


def _loss_and_grad_check(fn_loss, arrays, analytic, tol=1e-6):
    for name, arr in arrays.items():
        num = A.numerical_gradient(fn_loss, arr)
        err = A.relative_error(analytic[name], num)
        assert err < tol, (name, err)


@pytest.mark.parametrize("masked", [False, True])
def test_sdpa_backward_matches_finite_differences(masked):
    rng = np.random.default_rng(7)
    q, k, v = rng.normal(size=(2, 4, 3)), rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 5, 2))
    mask = A.causal_mask(4, 5) if masked else None
    g_out = rng.normal(size=(2, 4, 2))
    out, w = A.scaled_dot_product_attention(q, k, v, mask)
    grads = A.scaled_dot_product_attention_backward(g_out, q, k, v, w)

    def loss():
        return float((A.scaled_dot_product_attention(q, k, v, mask)[0] * g_out).sum())

    _loss_and_grad_check(loss, {"q": q, "k": k, "v": v}, grads)
    if masked:
        assert (grads["scores"][:, ~mask] == 0).all()


def test_sdpa_backward_shape_errors():
    q = np.zeros((3, 4))
    _, w = A.scaled_dot_product_attention(q, q, q)
    with pytest.raises(ValueError, match=r"grad_out.*\(3, 4\).*\(4, 3\)"):
        A.scaled_dot_product_attention_backward(np.zeros((4, 3)), q, q, q, w)
    with pytest.raises(ValueError, match=r"weights.*\(3, 3\).*\(3, 2\)"):
        A.scaled_dot_product_attention_backward(np.zeros((3, 4)), q, q, q, w[:, :2])


# --------------------------------------------------------------------------- heads


def test_split_and_merge_heads_round_trip_and_layout():
    x = np.arange(2 * 3 * 8).reshape(2, 3, 8)
    h = A.split_heads(x, 4)
    assert h.shape == (2, 4, 3, 2)
    np.testing.assert_array_equal(h[1, 2, 0], x[1, 0, 4:6])  # head 2 owns columns 4:6
    np.testing.assert_array_equal(A.merge_heads(h), x)
    with pytest.raises(ValueError, match="not divisible"):
        A.split_heads(x, 3)
    with pytest.raises(ValueError, match=r"\(batch, time, d_model\)"):
        A.split_heads(x[0], 2)


def _mha_by_loops(x, p, n_heads, mask):
    """Reference: each head separately with naive_attention, then concatenate and project."""
    b, t, d = x.shape
    hd = d // n_heads
    out = np.zeros_like(x)
    for bi in range(b):
        q, k, v = x[bi] @ p["Wq"] + p["bq"], x[bi] @ p["Wk"] + p["bk"], x[bi] @ p["Wv"] + p["bv"]
        heads = [naive_attention(q[:, h * hd:(h + 1) * hd], k[:, h * hd:(h + 1) * hd],
                                 v[:, h * hd:(h + 1) * hd], mask)[0] for h in range(n_heads)]
        out[bi] = np.concatenate(heads, axis=-1) @ p["Wo"] + p["bo"]
    return out


@pytest.mark.parametrize("causal", [False, True])
def test_multi_head_matches_per_head_loops(causal):
    rng = np.random.default_rng(8)
    x = rng.normal(size=(2, 5, 8))
    p = A.init_attention_params(8, rng)
    out, cache = A.multi_head_attention(x, p, 4, causal=causal)
    ref = _mha_by_loops(x, p, 4, A.causal_mask(5) if causal else None)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-13)
    assert cache["weights"].shape == (2, 4, 5, 5)
    np.testing.assert_allclose(cache["weights"].sum(-1), 1.0, atol=1e-12)
    if causal:
        assert (cache["weights"][..., ~A.causal_mask(5)] == 0).all()


def test_multi_head_causal_output_ignores_the_future():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(1, 6, 8))
    p = A.init_attention_params(8, rng)
    y = x.copy()
    y[0, 4:] = rng.normal(size=(2, 8))  # change the last two positions
    out_x, _ = A.multi_head_attention(x, p, 2, causal=True)
    out_y, _ = A.multi_head_attention(y, p, 2, causal=True)
    np.testing.assert_array_equal(out_x[0, :4], out_y[0, :4])
    assert not np.allclose(out_x[0, 4:], out_y[0, 4:])
    out_x, _ = A.multi_head_attention(x, p, 2)
    out_y, _ = A.multi_head_attention(y, p, 2)
    assert not np.allclose(out_x[0, :4], out_y[0, :4])  # without the mask the future leaks


def test_multi_head_custom_mask_combines_with_causal():
    rng = np.random.default_rng(10)
    x = rng.normal(size=(2, 4, 4))
    p = A.init_attention_params(4, rng)
    pad = np.ones((2, 1, 1, 4), dtype=bool)
    pad[1, ..., 3] = False  # the second sequence's last key is padding
    _, cache = A.multi_head_attention(x, p, 2, mask=pad, causal=True)
    w = cache["weights"]
    assert (w[1, :, :, 3] == 0).all() and (w[0, :, 3, 3] > 0).all()
    assert (w[..., ~A.causal_mask(4)] == 0).all()


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("causal", [False, True])
def test_multi_head_backward_matches_finite_differences(bias, causal):
    rng = np.random.default_rng(11)
    x = rng.normal(size=(2, 4, 6))
    p = A.init_attention_params(6, rng, bias=bias)
    out, cache = A.multi_head_attention(x, p, 3, causal=causal)
    g_out = rng.normal(size=out.shape)
    grads = A.multi_head_attention_backward(g_out, cache)
    expected = {"x", "Wq", "Wk", "Wv", "Wo"} | ({"bq", "bk", "bv", "bo"} if bias else set())
    assert set(grads) == expected

    def loss():
        return float((A.multi_head_attention(x, p, 3, causal=causal)[0] * g_out).sum())

    for name in sorted(expected):
        arr = x if name == "x" else p[name]
        assert grads[name].shape == arr.shape, name
        num = A.numerical_gradient(loss, arr)
        if name == "bk":
            # Adding b to every key adds q·b to a whole row of scores: softmax ignores it.
            assert np.abs(grads[name]).max() < 1e-12 and np.abs(num).max() < 1e-8
        else:
            assert A.relative_error(grads[name], num) < 1e-6, name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_multi_head_dtype_and_float32_gradients_close_to_float64(dtype):
    rng = np.random.default_rng(12)
    x = rng.normal(size=(2, 5, 8))
    p = A.init_attention_params(8, rng)
    g_out = rng.normal(size=x.shape)
    out64, c64 = A.multi_head_attention(x, p, 2, causal=True)
    g64 = A.multi_head_attention_backward(g_out, c64)
    out, c = A.multi_head_attention(x.astype(dtype), {n: a.astype(dtype) for n, a in p.items()}, 2, causal=True)
    g = A.multi_head_attention_backward(g_out.astype(dtype), c)
    assert out.dtype == dtype and all(a.dtype == dtype for a in g.values())
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, out64, rtol=tol, atol=tol)
    for name in g:
        if name != "bk":
            assert A.relative_error(g[name], g64[name]) < tol, name


def test_multi_head_clear_errors():
    x = np.zeros((2, 3, 8))
    p = A.init_attention_params(8)
    with pytest.raises(ValueError, match=r"x\[None\]"):
        A.multi_head_attention(x[0], p, 2)
    with pytest.raises(ValueError, match=r"params\['Wk'\].*\(8, 8\).*\(8, 4\)"):
        A.multi_head_attention(x, {**p, "Wk": np.zeros((8, 4))}, 2)
    with pytest.raises(ValueError, match="not divisible"):
        A.multi_head_attention(x, p, 3)
    with pytest.raises(KeyError, match="Wo"):
        A.multi_head_attention(x, {n: a for n, a in p.items() if n != "Wo"}, 2)
    with pytest.raises(KeyError, match="all four or none"):
        A.multi_head_attention(x, {n: a for n, a in p.items() if n != "bv"}, 2)
    out, cache = A.multi_head_attention(x, p, 2)
    with pytest.raises(ValueError, match=r"grad_out.*\(2, 3, 8\)"):
        A.multi_head_attention_backward(np.zeros((2, 3, 4)), cache)


# --------------------------------------------------------------------------- gradient check tools


def test_numerical_gradient_of_known_function_and_float64_only():
    x = np.array([0.3, -1.2, 2.0])
    num = A.numerical_gradient(lambda: float(np.sum(np.sin(x) * x)), x)
    np.testing.assert_allclose(num, np.cos(x) * x + np.sin(x), rtol=1e-8)
    np.testing.assert_array_equal(x, [0.3, -1.2, 2.0])  # restored
    with pytest.raises(TypeError, match="float64"):
        A.numerical_gradient(lambda: 0.0, x.astype(np.float32))


def test_relative_error():
    assert A.relative_error([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert A.relative_error([0.0], [0.0]) == 0.0
    assert abs(A.relative_error([1.0], [-1.0]) - 1.0) < 1e-15
    with pytest.raises(ValueError, match="shapes"):
        A.relative_error([1.0], [1.0, 2.0])


# --------------------------------------------------------------------------- exercise checks (chapter 03)


def _stub(*args):
    raise NotImplementedError


@pytest.mark.parametrize(
    "check, solution",
    [
        (ch03.check_softmax, sol.softmax),
        (ch03.check_attention_scores, sol.attention_scores),
        (ch03.check_causal_attention, sol.causal_attention),
        (ch03.check_attention_backward, sol.attention_backward),
    ],
)
def test_solutions_pass_and_stubs_fail(check, solution, capsys):
    check(solution)
    assert "all checks passed" in capsys.readouterr().out
    with pytest.raises(NotImplementedYet):
        check(_stub)


def _softmax_wrong_axis(x):
    e = np.exp(x - x.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def _softmax_naive(x):
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


def _softmax_in_place(x):
    x -= x.max(axis=-1, keepdims=True)
    np.exp(x, out=x)
    x /= x.sum(axis=-1, keepdims=True)
    return x


@pytest.mark.parametrize(
    "wrong, message",
    [
        (_softmax_wrong_axis, "along axis 0"),
        (_softmax_naive, "overflows"),
        (_softmax_in_place, "in place"),
        (lambda x: np.exp(x) / np.exp(x).sum(), "whole array"),
    ],
)
def test_softmax_check_diagnoses_classic_mistakes(wrong, message):
    with pytest.raises(ExerciseFailed, match=message):
        ch03.check_softmax(wrong)


@pytest.mark.parametrize(
    "wrong, message",
    [
        (lambda q, k: q @ np.swapaxes(k, -1, -2), "forgot to divide by √d_k"),
        (lambda q, k: q @ np.swapaxes(k, -1, -2) / q.shape[-1], "divided by d_k instead"),
        (lambda q, k: k @ np.swapaxes(q, -1, -2) / np.sqrt(q.shape[-1]), "not k @ qᵀ"),
        (lambda q, k: q @ k.T / np.sqrt(q.shape[-1]), "k.T reverses all axes"),
    ],
)
def test_scores_check_diagnoses_classic_mistakes(wrong, message):
    with pytest.raises(ExerciseFailed, match=message):
        ch03.check_attention_scores(wrong)


def _causal(q, k, v, *, how):
    t = q.shape[-2]
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    future = np.triu(np.ones((t, t), dtype=bool), k=1)
    if how == "zero-score":
        s = np.where(future, 0.0, s)
    if how == "upper":
        s = np.where(future.T, -np.inf, s)
    if how == "unscaled":
        s = np.where(future, -np.inf, s * np.sqrt(q.shape[-1]))
    if how == "columns":
        s = np.where(future, -np.inf, s)
        w = np.exp(s - s.max(axis=-2, keepdims=True))
        w = w / w.sum(axis=-2, keepdims=True)
        return w @ v, w
    w = sol.softmax(s)
    if how == "after":
        w = np.where(future, 0.0, w)
    return w @ v, w


@pytest.mark.parametrize(
    "how, message",
    [
        ("none", "future"),
        ("zero-score", "exp\\(0\\) = 1"),
        ("upper", "wrong triangle"),
        ("after", "after the softmax"),
        ("unscaled", "without the scale"),
        ("columns", "columns sum to 1"),
    ],
)
def test_causal_check_diagnoses_classic_mistakes(how, message):
    with pytest.raises(ExerciseFailed, match=message):
        ch03.check_causal_attention(lambda q, k, v: _causal(q, k, v, how=how))


def _backward(g, q, k, v, *, how):
    dq, dk, dv = sol.attention_backward(g, q, k, v)
    scale = 1 / np.sqrt(q.shape[-1])
    s = q @ k.T * scale
    p = sol.softmax(s)
    if how == "dv":
        return dq, dk, p.T @ (g * 0.5)
    if how == "jacobian":
        ds = p * (g @ v.T)
        return ds @ k * scale, ds.T @ q * scale, dv
    if how == "scale":
        return dq / scale, dk / scale, dv
    if how == "dk-transpose":
        return dq, dk * 1.5, dv
    return dq, dk, dv


@pytest.mark.parametrize(
    "how, message",
    [
        ("dv", "dv is wrong"),
        ("jacobian", "Jacobian is missing its second term"),
        ("scale", "1/√d_k factor is missing"),
        ("dk-transpose", "dk is wrong"),
    ],
)
def test_backward_check_diagnoses_classic_mistakes(how, message):
    with pytest.raises(ExerciseFailed, match=message):
        ch03.check_attention_backward(lambda g, q, k, v: _backward(g, q, k, v, how=how))


# --------------------------------------------------------------------------- plots and the explorer widget


def test_heatmap_puts_tokens_on_both_axes_and_accepts_array_likes():
    w = A.softmax(np.random.default_rng(13).normal(size=(3, 4)))
    fig = attention_heatmap(w.tolist(), ["a", "b", "c"], ["w", "x", "y", "\n"], title="t")
    try:
        assert isinstance(fig, Figure)
        ax = fig.axes[0]
        assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
        assert [t.get_text() for t in ax.get_xticklabels()] == ["w", "x", "y", "'\\n'"]
        np.testing.assert_array_equal(ax.images[0].get_array(), w)
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match="4 key columns but 3"):
        attention_heatmap(w, ["a", "b", "c"])
    with pytest.raises(ValueError, match="2-D"):
        attention_heatmap(np.zeros((2, 3, 3)))


def test_heatmap_accepts_torch_tensors():
    torch = pytest.importorskip("torch")
    w = torch.softmax(torch.randn(4, 4, requires_grad=True), dim=-1)
    fig = attention_heatmap(w, list("abcd"))
    try:
        np.testing.assert_allclose(fig.axes[0].images[0].get_array(), w.detach().numpy(), rtol=1e-6)
    finally:
        plt.close(fig)


def test_heatmaps_grid_from_array_mapping_and_sequence():
    w = A.softmax(np.random.default_rng(14).normal(size=(5, 3, 3)))
    for maps, n in ((w, 5), ({"one": w[0], "two": w[1]}, 2), ([w[0]], 1)):
        fig = attention_heatmaps(maps, ["a", "b", "c"], ncols=2)
        try:
            assert sum(1 for ax in fig.axes if ax.images) == n
        finally:
            plt.close(fig)
    with pytest.raises(ValueError, match="titles"):
        attention_heatmaps(w, titles=["x"])
    with pytest.raises(ValueError, match=r"map 1 \('head 1'\)"):
        attention_heatmaps([w[0], w[1][:2]], ["a", "b", "c"])


def test_scaling_figure_has_two_panels():
    fig = scaling_experiment_figure([2, 4], [2, 4], [1, 1], [1.0, 0.5], [1.0, 1.0], max_entropy=2.0)
    try:
        assert len(fig.axes) == 2
    finally:
        plt.close(fig)


def test_word_tokens():
    assert word_tokens("We know't, we know't.") == ["We", "know't", ",", "we", "know't", "."]
    with pytest.raises(ValueError, match="no words"):
        word_tokens("   ")


def test_explorer_maps_mask_scale_and_determinism():
    s = "Before we proceed any further, hear me speak."
    m = attention_maps(s, n_heads=4, causal=True)
    t = len(m.tokens)
    assert m.weights.shape == (4, t, t)
    np.testing.assert_allclose(m.weights.sum(-1), 1.0, atol=1e-12)
    assert (m.weights[:, ~A.causal_mask(t)] == 0).all()
    np.testing.assert_array_equal(m.weights, attention_maps(s, n_heads=4, causal=True).weights)
    # scale 0: uniform over the visible keys; larger scales: lower entropy
    u = attention_maps(s, scale=0.0, causal=True).weights
    np.testing.assert_allclose(u, np.broadcast_to(A.causal_mask(t) / np.arange(1, t + 1)[:, None], u.shape),
                               atol=1e-15)
    entropies = [attention_maps(s, scale=b).entropy for b in (0.0, 0.5, 2.0, 8.0)]
    assert all((a > b).all() for a, b in zip(entropies, entropies[1:]))
    assert (attention_maps(s, causal=False).weights[:, ~A.causal_mask(t)] > 0).all()
    with pytest.raises(ValueError, match="scale"):
        attention_maps(s, scale=-1.0)


def test_explorer_figure_and_widget_build():
    fig = attention_figure("One word, good citizens.", head=2, scale=2.0)
    try:
        assert "head 2" in fig.axes[0].get_title()
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match="head"):
        attention_figure("One word.", head=4)
    pytest.importorskip("ipywidgets")
    from course.widgets.attention import attention_explorer

    box = attention_explorer(["One word, good citizens.", "Speak, speak."])
    assert len(box.children) == 3
    plt.close("all")


def test_heatmap_tick_labels_do_not_overlap():
    """40 characters per axis (chapter 05's trained heads): the tick labels stay apart, on both axes."""
    import matplotlib

    matplotlib.use("Agg")
    tokens = list("First Citizen:\nBefore we proceed any fur")[:40]
    assert len(tokens) == 40
    fig = attention_heatmaps({"a": np.eye(40), "b": np.eye(40)}, tokens, ncols=2, panel_size=5.0)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes[:2]:
        for labels, lo, hi in ((ax.get_yticklabels(), "y0", "y1"), (ax.get_xticklabels(), "x0", "x1")):
            boxes = sorted((t.get_window_extent(renderer) for t in labels if t.get_text()), key=lambda b: getattr(b, lo))
            assert len(boxes) == 40
            for a, b in zip(boxes, boxes[1:]):
                assert getattr(a, hi) <= getattr(b, lo) + 0.5, "tick labels overlap"
