"""Chapter 13: FlashAttention's idea, written in plain PyTorch: the online softmax and tiled attention.

Attention as chapter 04 computes it builds the whole T x T matrix of scores, then its
softmax, then multiplies by V: memory that grows as T². FlashAttention (Dao et al. 2022;
FlashAttention-2, Dao 2023) never builds it. It walks over blocks of keys and keeps, for
each query, three running numbers:

* ``m``, the largest score seen so far (for a stable softmax, as in chapter 03);
* ``l``, the sum of ``exp(score - m)`` so far;
* ``acc``, the sum of ``exp(score - m) * v`` so far.

When a new block raises the maximum from ``m`` to ``m_new``, everything summed so far is
rescaled by ``exp(m - m_new)`` (`online_softmax_update`). After the last block,
``acc / l`` is exactly softmax(scores) @ V, and ``m + log l`` is the log-sum-exp of the
row's scores. Saving only that log-sum-exp (one number per query) is enough for the
backward pass: it recomputes each block's probabilities as ``exp(score - lse)`` instead of
storing them (`TiledAttention`).

On a GPU the blocks live in fast on-chip memory (SRAM) and the T x T matrix is never
written to the slower high-bandwidth memory (HBM): that traffic, not the arithmetic, is
what the tiling saves. On a CPU, in Python, the loop over blocks is slower than PyTorch's
fused kernel; what it shows is the algorithm, exact, and memory that grows as T, not T²
(`course.memory.saved_for_backward_bytes` measures it).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["TiledAttention", "online_softmax", "online_softmax_update", "tiled_attention"]


def online_softmax_update(m: Tensor, l: Tensor, acc: Tensor, scores: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Fold one block into the running state: ``scores`` (..., q, kb), ``v`` (..., kb, d).

    ``m`` and ``l`` have shape (..., q), ``acc`` (..., q, d). Scores of -inf (masked keys)
    add nothing; a row that has seen only -inf so far keeps m = -inf, l = 0, acc = 0.
    """
    m_new = torch.maximum(m, scores.amax(dim=-1))
    safe = torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new)  # rows with nothing seen yet
    rescale = torch.exp(m - safe)  # exp(-inf) = 0 for a row's first finite block
    p = torch.exp(scores - safe.unsqueeze(-1))
    l_new = l * rescale + p.sum(dim=-1)
    acc_new = acc * rescale.unsqueeze(-1) + p @ v
    return m_new, l_new, acc_new


def online_softmax(x: Tensor, block: int) -> Tensor:
    """softmax over the last dimension of ``x``, reading it ``block`` entries at a time (chapter 13's exercise).

    The same update as attention's, with v = the identity: one pass, running maximum and sum.
    """
    if block < 1:
        raise ValueError(f"block must be at least 1, got {block}.")
    n = x.shape[-1]
    m = torch.full(x.shape[:-1], -math.inf, dtype=x.dtype, device=x.device)
    l = torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device)
    for start in range(0, n, block):
        chunk = x[..., start:start + block]
        m_new = torch.maximum(m, chunk.amax(dim=-1))
        safe = torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new)  # nothing finite seen yet
        l = l * torch.exp(m - safe) + torch.exp(chunk - safe.unsqueeze(-1)).sum(dim=-1)
        m = m_new
    return torch.exp(x - m.unsqueeze(-1)) / l.unsqueeze(-1)


def _check(q: Tensor, k: Tensor, v: Tensor, block_q: int, block_k: int) -> None:
    if q.dim() < 2 or k.dim() != q.dim() or v.dim() != q.dim():
        raise ValueError(f"q, k and v need the same number of dimensions (..., T, d); got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}.")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2] or q.shape[:-2] != k.shape[:-2]:
        raise ValueError(f"shapes do not fit attention: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)} "
                         "(q and k share the head size, k and v the length, all three the leading dimensions).")
    if block_q < 1 or block_k < 1:
        raise ValueError(f"block sizes must be at least 1, got block_q={block_q}, block_k={block_k}.")


def _scores(q_blk: Tensor, k_blk: Tensor, scale: float, causal: bool, q0: int, k0: int, offset: int) -> Tensor:
    s = (q_blk @ k_blk.transpose(-2, -1)) * scale
    if causal:
        qi = torch.arange(q0, q0 + q_blk.shape[-2], device=s.device).unsqueeze(-1) + offset
        kj = torch.arange(k0, k0 + k_blk.shape[-2], device=s.device).unsqueeze(0)
        s = s.masked_fill(kj > qi, -math.inf)
    return s


def _forward(q: Tensor, k: Tensor, v: Tensor, causal: bool, block_q: int, block_k: int, scale: float
             ) -> tuple[Tensor, Tensor]:
    tq, tk = q.shape[-2], k.shape[-2]
    offset = tk - tq  # with a cache, the queries are the last tq positions
    out = torch.empty(*q.shape[:-1], v.shape[-1], dtype=q.dtype, device=q.device)
    lse = torch.empty(q.shape[:-1], dtype=q.dtype, device=q.device)
    for q0 in range(0, tq, block_q):
        q_blk = q[..., q0:q0 + block_q, :]
        rows = q_blk.shape[-2]
        m = torch.full((*q.shape[:-2], rows), -math.inf, dtype=q.dtype, device=q.device)
        l = torch.zeros((*q.shape[:-2], rows), dtype=q.dtype, device=q.device)
        acc = torch.zeros((*q.shape[:-2], rows, v.shape[-1]), dtype=q.dtype, device=q.device)
        last_key = min(tk, q0 + rows + offset) if causal else tk  # later blocks are all masked: skip them
        for k0 in range(0, last_key, block_k):
            s = _scores(q_blk, k[..., k0:k0 + block_k, :], scale, causal, q0, k0, offset)
            m, l, acc = online_softmax_update(m, l, acc, s, v[..., k0:k0 + block_k, :])
        out[..., q0:q0 + rows, :] = acc / l.unsqueeze(-1)
        lse[..., q0:q0 + rows] = m + torch.log(l)
    return out, lse


class TiledAttention(torch.autograd.Function):
    """softmax(q kᵀ · scale) v by blocks; saves q, k, v, the output and one log-sum-exp per query.

    The backward pass is FlashAttention-2's: with D = rowsum(dO ∘ O), each block's
    probabilities P = exp(S - lse) are recomputed, then dV += Pᵀ dO, dP = dO Vᵀ,
    dS = P ∘ (dP - D), dQ += dS K · scale, dK += dSᵀ Q · scale.
    """

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, causal: bool = False, block_q: int = 64,  # type: ignore[override]
                block_k: int = 64, scale: float | None = None) -> Tensor:
        _check(q, k, v, block_q, block_k)
        scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
        out, lse = _forward(q, k, v, causal, block_q, block_k, scale)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.settings = (causal, block_q, block_k, scale)
        return out

    @staticmethod
    def backward(ctx, d_out: Tensor):  # type: ignore[override]
        q, k, v, out, lse = ctx.saved_tensors
        causal, block_q, block_k, scale = ctx.settings
        tq, tk = q.shape[-2], k.shape[-2]
        offset = tk - tq
        dq, dk, dv = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
        d_rows = (d_out * out).sum(dim=-1)  # D: one number per query
        for q0 in range(0, tq, block_q):
            q_blk = q[..., q0:q0 + block_q, :]
            rows = q_blk.shape[-2]
            do_blk = d_out[..., q0:q0 + rows, :]
            lse_blk = lse[..., q0:q0 + rows].unsqueeze(-1)
            d_blk = d_rows[..., q0:q0 + rows].unsqueeze(-1)
            last_key = min(tk, q0 + rows + offset) if causal else tk
            for k0 in range(0, last_key, block_k):
                k_blk, v_blk = k[..., k0:k0 + block_k, :], v[..., k0:k0 + block_k, :]
                p = torch.exp(_scores(q_blk, k_blk, scale, causal, q0, k0, offset) - lse_blk)
                dv[..., k0:k0 + block_k, :] += p.transpose(-2, -1) @ do_blk
                dp = do_blk @ v_blk.transpose(-2, -1)
                ds = p * (dp - d_blk)
                dq[..., q0:q0 + rows, :] += (ds @ k_blk) * scale
                dk[..., k0:k0 + block_k, :] += (ds.transpose(-2, -1) @ q_blk) * scale
        return dq, dk, dv, None, None, None, None


def tiled_attention(q: Tensor, k: Tensor, v: Tensor, *, causal: bool = False, block_q: int = 64, block_k: int = 64,
                    scale: float | None = None) -> Tensor:
    """Attention by blocks of ``block_q`` queries and ``block_k`` keys; equal to
    ``F.scaled_dot_product_attention(q, k, v, is_causal=causal)`` up to rounding, gradients included.

    With ``causal`` and fewer queries than keys (decoding with a KV cache), the queries are
    the *last* positions, as in the course's cache; SDPA's ``is_causal`` aligns them with the
    first ones instead, so the two agree when T_q = T_k. Shapes: (..., T_q, d), (..., T_k, d),
    (..., T_k, d_v).
    """
    return TiledAttention.apply(q, k, v, causal, block_q, block_k, scale)

