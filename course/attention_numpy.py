"""Self-attention in NumPy, forward and backward (chapter 03).

Everything here is plain NumPy, written to be read next to the chapter:

* `softmax(x)`: a numerically stable softmax over the last axis (it subtracts
  each row's maximum, so ``exp`` never overflows; ``-inf`` entries get weight 0).
* `causal_mask(t)`: the boolean mask of a decoder, ``True`` where a query may
  look at a key (the key is not in the query's future).
* `scaled_dot_product_attention(q, k, v, mask=None)`:
  ``softmax(q kᵀ / √d_k) v``, returning ``(output, weights)``, and
  `scaled_dot_product_attention_backward`, its gradients by hand.
* `multi_head_attention(x, params, n_heads)`: project, split into heads, attend,
  concatenate, project; it returns ``(output, cache)`` and
  `multi_head_attention_backward(grad_out, cache)` returns a dict with the
  gradient of every input and parameter.
* `numerical_gradient` and `relative_error`: the central-difference gradient
  check the chapter uses to prove the hand-written backward pass right.

Conventions (chapter 04 ports this to PyTorch and compares against it):

* Shapes. ``x`` is ``(batch, time, d_model)``. Heads are split as
  ``(batch, heads, time, head_dim)`` with ``head_dim = d_model // n_heads``;
  head ``h`` owns columns ``h*head_dim : (h+1)*head_dim`` of the projections.
  Attention weights are ``(batch, heads, time_q, time_k)``; each row (one query)
  sums to 1 over the keys.
* Linear layers compute ``y = x @ W + b`` with ``W`` of shape ``(d_in, d_out)``.
  PyTorch's ``nn.Linear`` stores the transpose: ``linear.weight == W.T``.
* Masks are boolean, ``True`` = "may attend" (the same meaning as a boolean
  ``attn_mask`` in ``torch.nn.functional.scaled_dot_product_attention``). Masked
  scores become ``-inf`` *before* the softmax, so their weights are exactly 0 and
  the other weights of the row still sum to 1.
* dtypes. float32 stays float32, float64 stays float64; integer input is
  computed in float64.
* Bad input is an error that says what to do. The checks sit at the end of the
  module (``_check_*``, built on `course.validate`), one call at the top of each
  function, so each function's body is the math alone.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import numpy as np

from .validate import as_float_array as _as_float
from .validate import positive_int

__all__ = [
    "PARAM_NAMES",
    "causal_mask",
    "init_attention_params",
    "merge_heads",
    "multi_head_attention",
    "multi_head_attention_backward",
    "numerical_gradient",
    "relative_error",
    "scaled_dot_product_attention",
    "scaled_dot_product_attention_backward",
    "softmax",
    "softmax_backward",
    "split_heads",
]

#: The parameters of a multi-head attention layer, in the order chapter 04 uses.
PARAM_NAMES = ("Wq", "bq", "Wk", "bk", "Wv", "bv", "Wo", "bo")


# --------------------------------------------------------------------------- softmax


def softmax(x: Any, axis: int = -1) -> np.ndarray:
    """A numerically stable softmax along ``axis`` (default: the last one).

    ``softmax(x) = exp(x - max) / sum(exp(x - max))``: subtracting the row's
    maximum does not change the result (it cancels in the ratio) but makes the
    largest exponent ``exp(0) = 1``, so nothing overflows. Entries equal to
    ``-inf`` (masked) get weight exactly 0. A row made only of ``-inf`` has no
    distribution and raises `ValueError`. The input is never modified.
    """
    a = _check_softmax_input(_as_float(x, "x"), axis)
    row_max = a.max(axis=axis, keepdims=True)
    e = np.exp(a - row_max)  # a new array: the caller's x is left alone
    return e / e.sum(axis=axis, keepdims=True)


def softmax_backward(weights: Any, grad_weights: Any, axis: int = -1) -> np.ndarray:
    """Gradient through a softmax: ``dS = P * (dP - sum(dP * P))`` along ``axis``.

    This is the Jacobian-vector product of ``J = diag(p) - p pᵀ`` for every row
    ``p`` of ``weights``, written without building ``J``.
    """
    p = _as_float(weights, "weights")
    dp = _as_float(grad_weights, "grad_weights")
    _check_same_shape(dp, p.shape, "`grad_weights`", "the shape of `weights`")
    return p * (dp - (dp * p).sum(axis=axis, keepdims=True))


# --------------------------------------------------------------------------- masks


def causal_mask(t_q: int, t_k: int | None = None) -> np.ndarray:
    """Boolean causal mask of shape ``(t_q, t_k)``, ``True`` where a query may attend.

    With ``t_k == t_q`` (the default) query ``i`` sees keys ``0..i``: the lower
    triangle with its diagonal. When there are more keys than queries (the
    queries are the *last* ``t_q`` positions, as with a KV cache) query ``i``
    sees keys ``0..i + (t_k - t_q)``.
    """
    t_k = t_q if t_k is None else t_k
    _check_mask_sizes(t_q, t_k)
    return np.tril(np.ones((t_q, t_k), dtype=bool), k=t_k - t_q)


# --------------------------------------------------------------------------- one head


def _default_scale(d_k: int, scale: float | None) -> float:
    return 1.0 / math.sqrt(d_k) if scale is None else float(scale)


def scaled_dot_product_attention(
    q: Any, k: Any, v: Any, mask: Any = None, *, scale: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``softmax(q kᵀ · scale) v`` with ``scale = 1/√d_k`` unless given; returns ``(output, weights)``.

    Shapes: ``q`` is ``(..., time_q, d_k)``, ``k`` is ``(..., time_k, d_k)``,
    ``v`` is ``(..., time_k, d_v)``, with the same leading axes (none, batch, or
    batch and heads). The output is ``(..., time_q, d_v)``; the weights are
    ``(..., time_q, time_k)`` and each row sums to 1 over the keys. ``mask``
    (boolean, ``True`` = may attend) broadcasts to the weights' shape; masked
    weights are exactly 0.
    """
    q, k, v = _as_float(q, "q"), _as_float(k, "k"), _as_float(v, "v")
    _check_qkv(q, k, v)
    dtype = np.result_type(q, k, v)
    q, k, v = q.astype(dtype, copy=False), k.astype(dtype, copy=False), v.astype(dtype, copy=False)
    scores = (q @ np.swapaxes(k, -1, -2)) * dtype.type(_default_scale(q.shape[-1], scale))
    if mask is not None:
        m = _check_mask(mask, scores.shape)
        scores = np.where(m, scores, dtype.type(-np.inf))
    weights = softmax(scores)
    return weights @ v, weights


def scaled_dot_product_attention_backward(
    grad_out: Any, q: Any, k: Any, v: Any, weights: Any, *, scale: float | None = None
) -> dict[str, np.ndarray]:
    """Gradients of `scaled_dot_product_attention` given ``dL/d(output)``.

    ``weights`` are the forward pass's weights (masked entries 0, so no gradient
    flows into masked scores). With ``S = scale · Q Kᵀ``, ``P = softmax(S)`` and
    ``O = P V``::

        dV = Pᵀ dO        dP = dO Vᵀ        dS = P ⊙ (dP − rowsum(dP ⊙ P))
        dQ = scale · dS K                   dK = scale · dSᵀ Q

    Returns a dict with keys ``"q"``, ``"k"``, ``"v"`` (shaped like the inputs)
    and the intermediates ``"weights"`` (dP) and ``"scores"`` (dS).
    """
    q, k, v = _as_float(q, "q"), _as_float(k, "k"), _as_float(v, "v")
    _check_qkv(q, k, v)
    p = _as_float(weights, "weights")
    d_out = _as_float(grad_out, "grad_out")
    _check_same_shape(p, q.shape[:-1] + (k.shape[-2],), "`weights`", "shape (..., time_q, time_k) =")
    _check_same_shape(d_out, q.shape[:-1] + (v.shape[-1],), "`grad_out`", "the output's shape (..., time_q, d_v) =")
    s = _default_scale(q.shape[-1], scale)
    d_v = np.swapaxes(p, -1, -2) @ d_out
    d_p = d_out @ np.swapaxes(v, -1, -2)
    d_s = softmax_backward(p, d_p)
    d_q = (d_s @ k) * s
    d_k = (np.swapaxes(d_s, -1, -2) @ q) * s
    return {"q": d_q, "k": d_k, "v": d_v, "weights": d_p, "scores": d_s}


# --------------------------------------------------------------------------- heads


def split_heads(x: Any, n_heads: int) -> np.ndarray:
    """``(batch, time, d_model)`` to ``(batch, heads, time, head_dim)``; head h gets columns h*head_dim..."""
    a = _check_ndim(np.asarray(x), 3, "(batch, time, d_model)")
    _check_n_heads(n_heads, a.shape[-1])
    b, t, d = a.shape
    return a.reshape(b, t, n_heads, d // n_heads).transpose(0, 2, 1, 3)


def merge_heads(x: Any) -> np.ndarray:
    """``(batch, heads, time, head_dim)`` back to ``(batch, time, heads * head_dim)`` (the concatenation)."""
    a = _check_ndim(np.asarray(x), 4, "(batch, heads, time, head_dim)")
    b, h, t, hd = a.shape
    return a.transpose(0, 2, 1, 3).reshape(b, t, h * hd)


# --------------------------------------------------------------------------- multi-head


def init_attention_params(
    d_model: int,
    rng: np.random.Generator | int | None = 0,
    *,
    bias: bool = True,
    dtype: Any = np.float64,
) -> dict[str, np.ndarray]:
    """Random parameters of a multi-head attention layer: ``Wq, Wk, Wv, Wo`` of shape
    ``(d_model, d_model)`` drawn from N(0, 1/d_model), and (with ``bias``) small random
    biases ``bq, bk, bv, bo`` of shape ``(d_model,)`` (random, not zero, so a gradient
    check exercises them)."""
    positive_int(d_model, "`d_model`", numpy_ints=True, sep=";")
    rng = np.random.default_rng(rng)
    std = 1.0 / math.sqrt(d_model)
    params: dict[str, np.ndarray] = {}
    for name in ("q", "k", "v", "o"):
        params["W" + name] = (rng.standard_normal((d_model, d_model)) * std).astype(dtype)
        if bias:
            params["b" + name] = (rng.standard_normal(d_model) * 0.1).astype(dtype)
    return params


def _linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    y = x @ w
    return y if b is None else y + b


def multi_head_attention(
    x: Any,
    params: Mapping[str, Any],
    n_heads: int,
    *,
    mask: Any = None,
    causal: bool = False,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Multi-head self-attention: project, split, attend, concatenate, project.

    ``x``: ``(batch, time, d_model)``. ``params``: ``Wq, Wk, Wv, Wo`` of shape
    ``(d_model, d_model)`` and optionally biases ``bq, bk, bv, bo`` of shape
    ``(d_model,)`` (see `init_attention_params`). ``causal=True`` applies
    `causal_mask`; ``mask`` (boolean, ``True`` = may attend) broadcasts to
    ``(batch, heads, time, time)``; with both, a key must pass both.

    Returns ``(output, cache)``: output ``(batch, time, d_model)``; ``cache``
    holds what the backward pass needs, including ``cache["weights"]`` of shape
    ``(batch, heads, time, time)``.
    """
    x = _check_ndim(_as_float(x, "x"), 3, "(batch, time, d_model)")
    b, t, d = x.shape
    p = _check_params(params, d)
    _check_n_heads(n_heads, d)
    dtype = np.result_type(x, *p.values())
    x = x.astype(dtype, copy=False)
    p = {name: a.astype(dtype, copy=False) for name, a in p.items()}

    full_mask = None
    if causal:
        full_mask = causal_mask(t)
    if mask is not None:
        m = _check_boolean_mask(mask)
        full_mask = m if full_mask is None else (full_mask & m)

    q = split_heads(_linear(x, p["Wq"], p.get("bq")), n_heads)  # (B, H, T, hd)
    k = split_heads(_linear(x, p["Wk"], p.get("bk")), n_heads)
    v = split_heads(_linear(x, p["Wv"], p.get("bv")), n_heads)
    heads, weights = scaled_dot_product_attention(q, k, v, full_mask)  # (B, H, T, hd), (B, H, T, T)
    concat = merge_heads(heads)  # (B, T, D)
    out = _linear(concat, p["Wo"], p.get("bo"))
    cache = {
        "x": x, "params": p, "n_heads": n_heads, "mask": full_mask,
        "q": q, "k": k, "v": v, "weights": weights, "concat": concat,
    }
    return out, cache


def multi_head_attention_backward(grad_out: Any, cache: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Every gradient of `multi_head_attention`, given ``dL/d(output)`` and the forward ``cache``.

    Returns a dict with ``"x"`` ``(batch, time, d_model)``, ``"Wq"``, ``"Wk"``,
    ``"Wv"``, ``"Wo"`` ``(d_model, d_model)`` and, if the layer has biases,
    ``"bq"``, ``"bk"``, ``"bv"``, ``"bo"`` ``(d_model,)``. The weight gradients
    sum over batch and time (the same weights are used at every position).
    """
    x, p, n_heads = cache["x"], cache["params"], cache["n_heads"]
    d_out = _as_float(grad_out, "grad_out")
    _check_same_shape(d_out, x.shape, "`grad_out`", "the output's shape (batch, time, d_model) =")
    d = x.shape[-1]
    x2 = x.reshape(-1, d)
    grads: dict[str, np.ndarray] = {}

    # out = concat @ Wo + bo
    grads["Wo"] = cache["concat"].reshape(-1, d).T @ d_out.reshape(-1, d)
    if "bo" in p:
        grads["bo"] = d_out.sum(axis=(0, 1))
    d_concat = d_out @ p["Wo"].T

    # concat = merge_heads(heads); heads = attention(q, k, v)
    g = scaled_dot_product_attention_backward(
        split_heads(d_concat, n_heads), cache["q"], cache["k"], cache["v"], cache["weights"]
    )

    # q = split_heads(x @ Wq + bq), and the same for k and v
    d_x = np.zeros_like(x)
    for name in ("q", "k", "v"):
        d_proj = merge_heads(g[name])  # (B, T, D)
        grads["W" + name] = x2.T @ d_proj.reshape(-1, d)
        if "b" + name in p:
            grads["b" + name] = d_proj.sum(axis=(0, 1))
        d_x += d_proj @ p["W" + name].T
    grads["x"] = d_x
    return {name: grads[name] for name in ("x", *PARAM_NAMES) if name in grads}


# --------------------------------------------------------------------------- gradient check


def numerical_gradient(f: Callable[[], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences ``(f(x + eps) - f(x - eps)) / (2 eps)`` for every entry of ``x``.

    ``f`` takes no arguments and reads ``x``, which is perturbed *in place* one entry
    at a time and restored afterwards. Use float64: in float32 the rounding error of
    ``f`` divided by ``2 eps`` swamps the result.
    """
    _check_perturbable(x)
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        plus = float(f())
        flat[i] = old - eps
        minus = float(f())
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * eps)
    return grad


def relative_error(a: Any, b: Any) -> float:
    """``‖a − b‖ / (‖a‖ + ‖b‖)``: 0 when equal, about 1e-10 for a good float64 gradient check."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"cannot compare arrays of shapes {a.shape} and {b.shape}.")
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    return 0.0 if denom == 0 else float(np.linalg.norm(a - b) / denom)


# --------------------------------------------------------------------------- input checks
#
# Everything below only checks arguments and explains what is wrong; the math is above.


def _check_softmax_input(a: np.ndarray, axis: int) -> np.ndarray:
    if a.ndim == 0:
        raise ValueError("softmax needs at least one axis to normalise over; got a scalar.")
    if np.isnan(a).any():
        raise ValueError("softmax input contains nan; the scores were already broken before the softmax.")
    if np.isposinf(a).any():
        raise ValueError("softmax input contains +inf; scores must be finite or -inf (masked).")
    if np.isneginf(a).all(axis=axis).any():
        raise ValueError(
            "a row of the softmax input is entirely -inf: every entry is masked, so there is nothing "
            "to normalise. Check the mask: each query must be allowed to see at least one key."
        )
    return a


def _check_same_shape(a: np.ndarray, shape: tuple[int, ...], name: str, what: str) -> None:
    """``name`` must have ``shape``; the message reads "<name> must have <what> <shape>; got <a.shape>."."""
    if a.shape != tuple(shape):
        raise ValueError(f"{name} must have {what} {tuple(shape)}; got {a.shape}.")


def _check_ndim(a: np.ndarray, ndim: int, layout: str) -> np.ndarray:
    if a.ndim != ndim:
        hint = " For a single sequence of shape (time, d_model), pass x[None]." if ndim == 3 and a.ndim == 2 else ""
        raise ValueError(f"`x` must have shape {layout}; got shape {a.shape}.{hint}")
    return a


def _check_mask_sizes(t_q: Any, t_k: Any) -> None:
    positive_int(t_q, "`t_q`", hint="a number of positions", numpy_ints=True, sep=";")
    positive_int(t_k, "`t_k`", hint="a number of positions", numpy_ints=True, sep=";")
    if t_k < t_q:
        raise ValueError(f"a causal mask needs at least as many keys as queries; got t_q={t_q}, t_k={t_k}.")


def _check_n_heads(n_heads: Any, d_model: int) -> None:
    positive_int(n_heads, "`n_heads`", numpy_ints=True, sep=";")
    if d_model % n_heads:
        raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}: every head needs the same head_dim.")


def _check_boolean_mask(mask: Any) -> np.ndarray:
    m = np.asarray(mask)
    if m.dtype != bool:
        raise TypeError(
            f"`mask` must be boolean (True = may attend); got dtype {m.dtype}. "
            "For an additive mask of 0 and -inf, pass `mask == 0`."
        )
    return m


def _check_qkv(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> None:
    for name, a in (("q", q), ("k", k), ("v", v)):
        if a.ndim < 2:
            raise ValueError(
                f"`{name}` must have shape (..., time, dim) with at least 2 axes; got shape {a.shape}."
            )
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"`q` and `k` must have the same last dimension d_k (a dot product needs equal lengths): "
            f"q has shape {q.shape}, k has shape {k.shape}."
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"`k` and `v` must have the same number of positions (axis -2), one value per key: "
            f"k has shape {k.shape}, v has shape {v.shape}."
        )
    if not (q.shape[:-2] == k.shape[:-2] == v.shape[:-2]):
        raise ValueError(
            "`q`, `k` and `v` must have the same leading (batch, head) axes; got "
            f"q {q.shape}, k {k.shape}, v {v.shape}."
        )


def _check_mask(mask: Any, scores_shape: tuple[int, ...]) -> np.ndarray:
    m = _check_boolean_mask(mask)
    try:
        m = np.broadcast_to(m, scores_shape)
    except ValueError:
        raise ValueError(
            f"`mask` of shape {m.shape} does not broadcast to the scores' shape {scores_shape} "
            "(..., time_q, time_k)."
        ) from None
    if not m.any(axis=-1).all():
        raise ValueError(
            "`mask` hides every key from at least one query (a row of the mask is all False); "
            "each query must be allowed to see at least one key, e.g. itself."
        )
    return m


def _check_params(params: Mapping[str, Any], d_model: int) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name in ("Wq", "Wk", "Wv", "Wo"):
        if name not in params:
            raise KeyError(f"`params` has no {name!r}; it needs Wq, Wk, Wv, Wo (and optionally bq, bk, bv, bo).")
        w = _as_float(params[name], f"params[{name!r}]")
        if w.shape != (d_model, d_model):
            raise ValueError(
                f"params[{name!r}] must have shape (d_model, d_model) = ({d_model}, {d_model}) "
                f"to match x's last axis; got {w.shape}."
            )
        out[name] = w
    present = [b for b in ("bq", "bk", "bv", "bo") if params.get(b) is not None]
    if present and len(present) != 4:
        missing = sorted({"bq", "bk", "bv", "bo"} - set(present))
        raise KeyError(f"`params` has some biases but not {missing}: give all four or none.")
    for name in present:
        bvec = _as_float(params[name], f"params[{name!r}]")
        if bvec.shape != (d_model,):
            raise ValueError(f"params[{name!r}] must have shape (d_model,) = ({d_model},); got {bvec.shape}.")
        out[name] = bvec
    unknown = sorted(set(params) - set(PARAM_NAMES))
    if unknown:
        raise KeyError(f"`params` has unknown entries {unknown}; expected names among {list(PARAM_NAMES)}.")
    return out


def _check_perturbable(x: Any) -> None:
    if not isinstance(x, np.ndarray) or x.dtype != np.float64:
        raise TypeError(
            "`x` must be a float64 NumPy array that `f` reads (it is perturbed in place); "
            f"got {type(x).__name__} of dtype {getattr(x, 'dtype', None)}."
        )
    if not np.shares_memory(x.reshape(-1), x):
        raise ValueError("`x` must be contiguous so it can be perturbed in place.")
