"""Finding attention heads with a recognisable job (chapter 05).

Each score is the average attention weight a head puts on one particular key
for every query: the previous token, the most recent newline (the start of the
current line), or the query itself. A head that scores near 1 on one of these
does that job almost always; a uniform head over t keys scores about 1/t.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _check(weights: Tensor) -> None:
    if weights.dim() != 3 or weights.shape[-1] != weights.shape[-2]:
        raise ValueError(f"weights must have shape (heads, time, time), got {tuple(weights.shape)}.")


def previous_token_score(weights: Tensor) -> Tensor:
    """Per head: mean weight from each query t >= 1 on key t - 1. Shape (heads,)."""
    _check(weights)
    return torch.diagonal(weights, offset=-1, dim1=-2, dim2=-1).mean(-1)


def self_score(weights: Tensor) -> Tensor:
    """Per head: mean weight from each query on itself."""
    _check(weights)
    return torch.diagonal(weights, dim1=-2, dim2=-1).mean(-1)


def line_start_score(weights: Tensor, ids: Tensor, newline_id: int) -> Tensor:
    """Per head: mean weight on the most recent newline before each query (queries after the first newline)."""
    _check(weights)
    if ids.dim() != 1 or ids.shape[0] != weights.shape[-1]:
        raise ValueError(f"ids must have shape (time,) = ({weights.shape[-1]},), got {tuple(ids.shape)}.")
    last_newline = torch.full_like(ids, -1)
    seen = -1
    for t, token in enumerate(ids.tolist()):
        if token == newline_id:
            seen = t
        last_newline[t] = seen
    queries = torch.nonzero((last_newline >= 0) & (last_newline < torch.arange(len(ids)))).squeeze(-1)
    if len(queries) == 0:
        raise ValueError("no query has a newline before it: use a text with several lines.")
    return weights[:, queries, last_newline[queries]].mean(-1)


def head_scores(all_weights: list[Tensor], ids: Tensor, newline_id: int) -> dict[str, Tensor]:
    """Scores of every head of every layer: each value has shape (layers, heads). Takes batch element 0."""
    layers = [w[0] for w in all_weights]
    return {
        "previous token": torch.stack([previous_token_score(w) for w in layers]),
        "start of line": torch.stack([line_start_score(w, ids, newline_id) for w in layers]),
        "itself": torch.stack([self_score(w) for w in layers]),
    }
