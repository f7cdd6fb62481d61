"""Solutions to the exercises of chapter 03 (self-attention in NumPy)."""

import numpy as np


def softmax(scores):
    """Softmax over the last axis (the keys), stable for large scores, 0 for -inf entries."""
    scores = np.asarray(scores)
    z = scores - scores.max(axis=-1, keepdims=True)  # a new array: the caller's scores stay as they were
    e = np.exp(z)  # the largest entry of each row is exp(0) = 1, so nothing overflows
    return e / e.sum(axis=-1, keepdims=True)


def attention_scores(q, k):
    """Scaled dot products q kᵀ / √d_k: shape (..., queries, keys)."""
    d_k = q.shape[-1]
    return q @ np.swapaxes(k, -1, -2) / np.sqrt(d_k)


def causal_attention(q, k, v):
    """Causal self-attention: (output, weights); future keys get -inf before the softmax."""
    t = q.shape[-2]
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    future = np.triu(np.ones((t, t), dtype=bool), k=1)  # key j > query i
    scores = np.where(future, -np.inf, scores)
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights = weights / weights.sum(axis=-1, keepdims=True)
    return weights @ v, weights


def attention_backward(grad_out, q, k, v):
    """Gradients (dq, dk, dv) of out = softmax(q kᵀ / √d) v for one head, no mask."""
    scale = 1 / np.sqrt(q.shape[-1])
    s = q @ k.T * scale
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    p = p / p.sum(axis=-1, keepdims=True)
    dv = p.T @ grad_out  # out = p v
    dp = grad_out @ v.T
    ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))  # softmax Jacobian, row by row
    dq = ds @ k * scale  # s = q kᵀ · scale
    dk = ds.T @ q * scale
    return dq, dk, dv
