"""Causal self-attention in PyTorch (chapter 04; the KV cache is used in chapter 06).

* `attention_weights(q, k, causal)` and `naive_attention(q, k, v, causal)`: the
  formula softmax(QKᵀ/√d_k)·V written out, materialising the (T x T) weights.
  Chapter 04 checks it against chapter 03's NumPy version and against
  `torch.nn.functional.scaled_dot_product_attention` (SDPA).
* `CausalSelfAttention`: the multi-head layer of the GPT model. One linear layer
  makes queries, keys and values; heads are split, optionally rotated by RoPE,
  attended with SDPA (fused kernels; FlashAttention on GPUs), merged and
  projected. With ``return_weights=True`` it takes the slow, explicit path and
  also returns the attention weights for plotting.
* `KVCache`: keys and values of earlier positions, kept per layer so that
  generating one more token costs one query against the cache instead of a
  recomputation of the whole sequence. The cache holds keys and values, not
  positions: with RoPE, keys are cached already rotated, so a caller that gives
  explicit positions (``positions=``) keeps giving them for every new chunk.
  `SlidingWindowKVCache(n_layer, W)` keeps only the last W positions of each
  layer (sliding-window attention, chapter 13): its memory stops growing at W.

Two options of chapter 13 change which keys a query sees and how: ``alibi=True``
adds ALiBi's distance penalty -slope·(i - j) to the scores (`course.positional`),
``window=W`` lets query i see keys i - W + 1 .. i only (`position_mask`).

Shapes: x is (batch, time, d_model); heads are (batch, heads, time, head_dim).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .positional import RoPE, alibi_slopes


def causal_mask(t_q: int, t_k: int | None = None, device: torch.device | str | None = None) -> Tensor:
    """Boolean (t_q, t_k) mask, True where attention is allowed.

    The queries are the *last* t_q positions of the t_k keys (as with a KV cache),
    so query i may see keys 0 .. (t_k - t_q + i).
    """
    t_k = t_q if t_k is None else t_k
    if t_k < t_q:
        raise ValueError(f"more queries ({t_q}) than keys ({t_k}): queries must be the last positions of the keys.")
    return torch.ones(t_q, t_k, dtype=torch.bool, device=device).tril(diagonal=t_k - t_q)


def position_mask(q_pos: Tensor, k_pos: Tensor, window: int | None = None) -> Tensor:
    """Boolean (t_q, t_k), True where the query at position q_pos[i] may see the key at k_pos[j]:
    k <= q (causal) and, with a ``window``, q - k < window (the window counts the query itself)."""
    distance = q_pos[:, None] - k_pos[None, :]
    allowed = distance >= 0
    if window is not None:
        allowed = allowed & (distance < window)
    return allowed


def _check_heads(q: Tensor, k: Tensor, v: Tensor) -> None:
    if q.dim() < 2 or k.dim() != q.dim() or v.dim() != q.dim():
        raise ValueError(
            f"q, k, v must have the same number of dimensions (..., time, head_dim); got shapes "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}."
        )
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must share head_dim (last axis): {q.shape[-1]} vs {k.shape[-1]}.")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v must have the same number of positions: {k.shape[-2]} vs {v.shape[-2]}.")


def attention_weights(q: Tensor, k: Tensor, causal: bool = True) -> Tensor:
    """softmax(QKᵀ/√d_k) over the keys, with future keys masked to exactly 0 when ``causal``."""
    _check_heads(q, k, k)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if causal:
        mask = causal_mask(q.shape[-2], k.shape[-2], device=q.device)
        scores = scores.masked_fill(~mask, float("-inf"))  # -inf before the softmax, never 0 after it
    return torch.softmax(scores, dim=-1)


def naive_attention(q: Tensor, k: Tensor, v: Tensor, causal: bool = True) -> tuple[Tensor, Tensor]:
    """The explicit formula: returns (output, weights). Memory grows as T² per head."""
    _check_heads(q, k, v)
    weights = attention_weights(q, k, causal)
    return weights @ v, weights


class KVCache:
    """Keys and values of the positions seen so far, one (k, v) pair per layer.

    Each tensor has shape (batch, heads, positions, head_dim). `length` is the
    number of cached positions: the position of the next token.
    """

    def __init__(self, n_layer: int) -> None:
        self.layers: list[tuple[Tensor, Tensor] | None] = [None] * n_layer

    @property
    def length(self) -> int:
        """Positions cached so far (by the first layer: during a forward pass, later layers lag behind)."""
        return self.layer_length(0)

    def layer_length(self, layer: int) -> int:
        kv = self.layers[layer]
        return 0 if kv is None else kv[0].shape[-2]

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append new keys/values for ``layer``; return all keys/values so far."""
        past = self.layers[layer]
        if past is not None:
            k = torch.cat((past[0], k), dim=-2)
            v = torch.cat((past[1], v), dim=-2)
        self.layers[layer] = (k, v)
        return k, v

    def nbytes(self) -> int:
        """Memory held by the cache, in bytes."""
        return sum(t.numel() * t.element_size() for kv in self.layers if kv is not None for t in kv)

    def crop(self, length: int) -> None:
        """Keep only the first ``length`` positions (used to slide or rewind)."""
        self.layers = [None if kv is None else (kv[0][..., :length, :], kv[1][..., :length, :]) for kv in self.layers]


class SlidingWindowKVCache(KVCache):
    """A KV cache for sliding-window attention (chapter 13): each layer stores only its last ``window`` positions.

    `length` is still the number of positions seen (the next token's position, which RoPE needs);
    `stored_length` is what each layer holds, at most ``window``: the cache's memory stops growing.
    """

    def __init__(self, n_layer: int, window: int) -> None:
        if not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be a positive number of positions, got {window!r}.")
        super().__init__(n_layer)
        self.window = window
        self.seen = [0] * n_layer

    def layer_length(self, layer: int) -> int:
        return self.seen[layer]

    def stored_length(self, layer: int = 0) -> int:
        return super().layer_length(layer)

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append; return the stored keys/values followed by the new ones; then keep only the last ``window``."""
        self.seen[layer] += k.shape[-2]
        k, v = super().update(layer, k, v)
        if k.shape[-2] > self.window:
            self.layers[layer] = (k[..., -self.window:, :], v[..., -self.window:, :])
        return k, v

    def crop(self, length: int) -> None:
        """Rewind to ``length`` positions, as far back as the oldest stored one."""
        for i, kv in enumerate(self.layers):
            if kv is None:
                continue
            first = self.seen[i] - kv[0].shape[-2]  # the position of the oldest stored key
            if length < first:
                raise ValueError(f"cannot rewind to {length} positions: this sliding-window cache no longer holds "
                                 f"positions before {first}. Start a new cache and re-read the prompt.")
            keep = min(length, self.seen[i]) - first
            self.layers[i] = (kv[0][..., :keep, :], kv[1][..., :keep, :])
            self.seen[i] = min(length, self.seen[i])


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention, as in GPT-2 (optionally with RoPE on queries and keys).

    ``n_kv_head`` below ``n_head`` makes it grouped-query attention (Ainslie et al. 2023;
    1 = multi-query attention, Shazeer 2019): the queries keep ``n_head`` heads, keys and
    values have ``n_kv_head``, each shared by ``n_head / n_kv_head`` query heads. The KV
    cache stores only the ``n_kv_head`` heads: that is the memory it saves.
    """

    def __init__(
        self,
        d_model: int,
        n_head: int,
        *,
        bias: bool = True,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        rope: RoPE | None = None,
        layer_index: int = 0,
        n_kv_head: int | None = None,
        alibi: bool = False,
        window: int | None = None,
    ) -> None:
        super().__init__()
        if d_model % n_head != 0:
            raise ValueError(f"d_model={d_model} must be divisible by n_head={n_head} (each head gets d_model / n_head).")
        n_kv_head = n_head if n_kv_head is None else n_kv_head
        if n_kv_head < 1 or n_head % n_kv_head:
            raise ValueError(f"n_kv_head={n_kv_head} must divide n_head={n_head} (each key/value head serves "
                             "n_head / n_kv_head query heads).")
        self.d_model, self.n_head, self.head_dim = d_model, n_head, d_model // n_head
        self.n_kv_head = n_kv_head
        self.kv_dim = n_kv_head * self.head_dim
        self.qkv = nn.Linear(d_model, d_model + 2 * self.kv_dim, bias=bias)  # queries, keys and values in one matmul
        self.proj = nn.Linear(d_model, d_model, bias=bias)
        self.attn_dropout = attn_dropout  # on the attention weights (slow on CPU: SDPA leaves its fused path)
        self.resid_dropout = nn.Dropout(dropout)  # on the layer's output
        self.rope = rope
        self.layer_index = layer_index
        if window is not None and (not isinstance(window, int) or window < 1):
            raise ValueError(f"window must be a positive number of positions or None, got {window!r}.")
        self.window = window
        # ALiBi's slopes, one per query head (a buffer: they move with the model, and are not trained)
        self.register_buffer("alibi", alibi_slopes(n_head) if alibi else None, persistent=False)

    def _split(self, x: Tensor) -> Tensor:  # (B, T, heads * hd) -> (B, heads, T, hd)
        b, t, width = x.shape
        return x.view(b, t, width // self.head_dim, self.head_dim).transpose(1, 2)

    def forward(
        self,
        x: Tensor,
        *,
        cache: KVCache | None = None,
        return_weights: bool = False,
        positions: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Attend over ``x`` (batch, time, d_model); returns (output, weights or None).

        ``positions`` (shape (time,) or (batch, time)) are the tokens' positions for
        RoPE; by default they follow the cached ones (0.. without a cache). Layers
        without RoPE ignore them: their positions were added to the embeddings.
        """
        b, t, d = x.shape
        if d != self.d_model:
            raise ValueError(f"expected x of shape (batch, time, {self.d_model}), got {tuple(x.shape)}.")
        q, k, v = (self._split(z) for z in self.qkv(x).split((self.d_model, self.kv_dim, self.kv_dim), dim=2))
        offset = cache.layer_length(self.layer_index) if cache is not None else 0
        if self.rope is not None and positions is not None:
            q, k = self.rope(q, positions=positions), self.rope(k, positions=positions)
        elif self.rope is not None:
            q, k = self.rope(q, offset=offset), self.rope(k, offset=offset)
        if cache is not None:
            k, v = cache.update(self.layer_index, k, v)  # the cache keeps n_kv_head heads
        if self.n_kv_head != self.n_head:  # each key/value head serves a group of query heads
            k = k.repeat_interleave(self.n_head // self.n_kv_head, dim=1)
            v = v.repeat_interleave(self.n_head // self.n_kv_head, dim=1)
        weights = None
        drop = self.attn_dropout if self.training else 0.0
        if self.alibi is not None or self.window is not None:  # chapter 13: a bias or a window on the scores
            if positions is not None:
                raise ValueError("explicit positions are not supported with ALiBi or a sliding window: their scores "
                                 "depend on the distance between stored keys and queries; leave positions out.")
            mask = self._position_bias(offset, t, k.shape[-2], q.dtype, x.device)
            if return_weights:
                scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)
                scores = scores + mask if mask.dtype != torch.bool else scores.masked_fill(~mask, float("-inf"))
                weights = torch.softmax(scores, dim=-1)
                y = (F.dropout(weights, drop) if drop else weights) @ v
            else:
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)
        elif return_weights:
            y, weights = naive_attention(q, k, v, causal=True)
            if self.training and self.attn_dropout > 0:
                y = F.dropout(weights, self.attn_dropout) @ v
        else:
            if k.shape[-2] == t:  # no cache, or an empty one: the usual causal mask
                y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, is_causal=True)
            elif t == 1:  # one new token sees every cached position
                y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)
            else:  # several new tokens after a cache: the mask is offset
                mask = causal_mask(t, k.shape[-2], device=x.device)
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)
        y = y.transpose(1, 2).contiguous().view(b, t, d)
        return self.resid_dropout(self.proj(y)), weights

    def _position_bias(self, offset: int, t: int, t_k: int, dtype: torch.dtype, device: torch.device) -> Tensor:
        """The mask (boolean, (t, t_k)) or ALiBi bias (float, (n_head, t, t_k), -inf where masked) for queries at
        positions offset .. offset + t - 1 and the t_k keys before and at them (the last t_k positions)."""
        q_pos = torch.arange(offset, offset + t, device=device)
        k_pos = torch.arange(offset + t - t_k, offset + t, device=device)
        allowed = position_mask(q_pos, k_pos, self.window)
        if self.alibi is None:
            return allowed
        distance = (q_pos[:, None] - k_pos[None, :]).to(torch.float32)
        bias = (0.0 - self.alibi[:, None, None] * distance).masked_fill(~allowed, float("-inf"))
        return bias.to(dtype)
