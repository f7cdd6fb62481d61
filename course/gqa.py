"""Chapter 13: grouped-query and multi-query attention: the KV cache they save, and converting a trained model.

`GPTConfig.n_kv_head` (course.model) gives a model fewer key/value heads than query
heads; `course.attention.CausalSelfAttention` shares each key/value head among
``n_head / n_kv_head`` query heads. What it buys is the KV cache: at generation time
every layer keeps the keys and values of every past position, and that memory (and the
time to read it at every step) shrinks by ``n_head / n_kv_head`` (`course.sampling.kv_cache_bytes`).

A model trained with multi-head attention can be converted: Ainslie et al. (2023) build
each key (and value) head of a group as the mean of the group's original heads
(`pool_kv_heads`), then train a little more ("uptraining", 5% of the original steps in
their paper) to recover the quality the averaging lost.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from .model import GPT, GPTConfig

__all__ = ["pool_kv_heads"]


def pool_kv_heads(model: GPT, n_kv_head: int) -> GPT:
    """A copy of ``model`` with ``n_kv_head`` key/value heads, each the mean of its group of the original heads.

    Queries, projections, MLPs, norms and embeddings are copied unchanged. ``model`` must
    have multi-head attention (one key/value head per query head).
    """
    c = model.config
    if c.n_kv_head not in (None, c.n_head):
        raise ValueError(f"the model already has n_kv_head={c.n_kv_head}: pool from a multi-head model.")
    if n_kv_head < 1 or c.n_head % n_kv_head:
        raise ValueError(f"n_kv_head={n_kv_head} must divide n_head={c.n_head}.")
    group, hd, d = c.n_head // n_kv_head, c.head_dim, c.n_embd
    pooled = GPT(replace(c, n_kv_head=n_kv_head))
    state = {k: v.clone() for k, v in model.state_dict().items()}

    def pool(t: torch.Tensor) -> torch.Tensor:  # (n_head * hd, ...) -> (n_kv_head * hd, ...)
        rest = t.shape[1:]
        return t.reshape(n_kv_head, group, hd, *rest).mean(dim=1).reshape(n_kv_head * hd, *rest)

    for i in range(c.n_layer):
        for name in ("weight", "bias"):
            key = f"blocks.{i}.attn.qkv.{name}"
            if key not in state:
                continue
            q, k, v = state[key].split(d, dim=0)
            state[key] = torch.cat([q, pool(k), pool(v)], dim=0)
    pooled.load_state_dict(state)
    return pooled.train(model.training)
