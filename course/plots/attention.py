"""Figures of attention (chapter 03; chapters 04 and 05 reuse them for PyTorch models).

* `attention_heatmap(weights, tokens)`: one map, queries down the side, keys along
  the top, tokens on both axes.
* `attention_heatmaps(maps, tokens)`: several maps side by side (heads, masks, scales).
* `scaling_experiment_figure(...)`: dot-product variance and softmax entropy against d_k.

Every helper accepts any 2-D array-like (NumPy arrays, lists, PyTorch tensors on
any device) and returns a `matplotlib.figure.Figure`; none calls ``plt.show()``.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from . import PALETTE, new_figure


def _as_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor (any device or dtype), without importing torch here
        x = x.detach().cpu().float().numpy()
    return np.asarray(x, dtype=np.float64)


def _labels(tokens: Sequence[str]) -> list[str]:
    """Visible tick labels: whitespace tokens are shown as their repr ('\\n', ' ')."""
    return [str(t) if str(t).strip() else repr(str(t)) for t in tokens]


def _tick_fontsize(panel_inches: float, n_tokens: int) -> float:
    """A tick-label size (points) that lets ``n_tokens`` labels sit side by side on a panel of that width."""
    return float(np.clip(0.8 * 72.0 * panel_inches / max(n_tokens, 1), 5.0, 10.0))


def _draw(ax: Any, w: np.ndarray, q_tokens: Sequence[str] | None, k_tokens: Sequence[str] | None,
          title: str, annotate: bool, vmax: float | None, tick_fontsize: float | None = None) -> Any:
    image = ax.imshow(w, cmap="Blues", vmin=0.0, vmax=vmax if vmax is not None else max(float(w.max()), 1e-12),
                      aspect="equal", interpolation="nearest")
    t_q, t_k = w.shape
    if k_tokens is not None:
        ax.set_xticks(range(t_k), _labels(k_tokens), rotation=90 if t_k > 16 else 60, ha="right",
                      rotation_mode="anchor", fontsize=tick_fontsize)
    if q_tokens is not None:
        ax.set_yticks(range(t_q), _labels(q_tokens), fontsize=tick_fontsize)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    ax.tick_params(length=0)
    if title:
        ax.set_title(title)
    if annotate:
        threshold = 0.6 * (vmax if vmax is not None else float(w.max()))
        for i in range(t_q):
            for j in range(t_k):
                if w[i, j] > 0:
                    ax.text(j, i, f"{w[i, j]:.2f}".lstrip("0"), ha="center", va="center", fontsize=7,
                            color="white" if w[i, j] > threshold else "black")
    return image


def _check_map(w: np.ndarray, tokens: Sequence[str] | None, key_tokens: Sequence[str] | None, name: str) -> None:
    if w.ndim != 2:
        raise ValueError(f"{name} must be 2-D (queries, keys); got shape {w.shape}.")
    if tokens is not None and len(tokens) != w.shape[0]:
        raise ValueError(f"{name} has {w.shape[0]} query rows but {len(tokens)} tokens were given for them.")
    if key_tokens is not None and len(key_tokens) != w.shape[1]:
        raise ValueError(f"{name} has {w.shape[1]} key columns but {len(key_tokens)} key tokens were given.")


def attention_heatmap(
    weights: Any,
    tokens: Sequence[str] | None = None,
    key_tokens: Sequence[str] | None = None,
    *,
    title: str = "",
    annotate: bool | None = None,
    vmax: float | None = 1.0,
    ax: Any = None,
) -> Figure:
    """A heat map of one attention matrix: row i = query token i, column j = key token j.

    ``key_tokens`` default to ``tokens`` (self-attention). ``annotate`` writes the
    weights into the cells (default: when both sides have at most 12 tokens).
    ``vmax=None`` scales the colours to the largest weight instead of 1.
    """
    w = _as_numpy(weights)
    key_tokens = tokens if key_tokens is None else key_tokens
    _check_map(w, tokens, key_tokens, "weights")
    if annotate is None:
        annotate = max(w.shape) <= 12
    if ax is None:
        side = 0.42 * max(w.shape) + 1.8
        fig, ax = new_figure(min(side + 1.0, 12.0), min(side, 11.0))
    else:
        fig = ax.figure
    image = _draw(ax, w, tokens, key_tokens, title, annotate, vmax)
    fig.colorbar(image, ax=ax, shrink=0.8, label="attention weight")
    return fig


def attention_heatmaps(
    maps: Mapping[str, Any] | Sequence[Any] | Any,
    tokens: Sequence[str] | None = None,
    key_tokens: Sequence[str] | None = None,
    *,
    titles: Sequence[str] | None = None,
    ncols: int = 4,
    annotate: bool = False,
    vmax: float | None = 1.0,
    suptitle: str = "",
    panel_size: float = 3.2,
) -> Figure:
    """Several attention maps in a grid, sharing one colour scale.

    ``maps`` is a mapping ``title -> 2-D weights``, a sequence of 2-D weights, or
    one array of shape ``(n, queries, keys)`` (for example the heads of one layer).
    """
    if isinstance(maps, Mapping):
        titles = list(maps.keys()) if titles is None else list(titles)
        arrays = [_as_numpy(m) for m in maps.values()]
    else:
        stacked = _as_numpy(maps) if hasattr(maps, "shape") else None
        if stacked is not None:
            if stacked.ndim != 3:
                raise ValueError(f"an array of maps must have shape (n, queries, keys); got shape {stacked.shape}.")
            arrays = list(stacked)
        else:
            arrays = [_as_numpy(m) for m in maps]
        titles = [f"head {i}" for i in range(len(arrays))] if titles is None else list(titles)
    if not arrays:
        raise ValueError("attention_heatmaps needs at least one map; got none.")
    if len(titles) != len(arrays):
        raise ValueError(f"got {len(arrays)} maps but {len(titles)} titles.")
    key_tokens = tokens if key_tokens is None else key_tokens
    for i, w in enumerate(arrays):
        _check_map(w, tokens, key_tokens, f"map {i} ({titles[i]!r})")
    ncols = max(1, min(ncols, len(arrays)))
    nrows = math.ceil(len(arrays) / ncols)
    fig, axes = new_figure(panel_size * ncols + 1.0, (panel_size + 0.8) * nrows + (0.4 if suptitle else 0.0),
                           nrows=nrows, ncols=ncols, squeeze=False)
    image = None
    tick_fontsize = _tick_fontsize(panel_size, max(max(a.shape) for a in arrays))
    for idx, ax in enumerate(axes.ravel()):
        if idx >= len(arrays):
            ax.axis("off")
            continue
        image = _draw(ax, arrays[idx], tokens, key_tokens, titles[idx], annotate, vmax, tick_fontsize)
        if idx % ncols:
            ax.set_ylabel("")
        if idx < len(arrays) - ncols:
            ax.set_xlabel("")
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="attention weight")
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def scaling_experiment_figure(
    d_ks: Sequence[int],
    variance_unscaled: Sequence[float],
    variance_scaled: Sequence[float],
    entropy_unscaled: Sequence[float],
    entropy_scaled: Sequence[float],
    max_entropy: float,
) -> Figure:
    """Why divide by √d_k: left, the variance of q·k against d_k; right, the entropy of softmax rows."""
    d = np.asarray(d_ks, dtype=np.float64)
    fig, (left, right) = new_figure(11.0, 4.0, ncols=2)
    left.loglog(d, variance_unscaled, "o-", color=PALETTE[5], label="q·k (unscaled)")
    left.loglog(d, variance_scaled, "o-", color=PALETTE[0], label="q·k / √d_k")
    left.loglog(d, d, ":", color="grey", label="d_k (theory, unscaled)")
    left.set_xlabel("d_k")
    left.set_ylabel("variance of the scores")
    left.set_title("variance of dot products of random q, k")
    left.legend()
    right.semilogx(d, entropy_unscaled, "o-", color=PALETTE[5], label="softmax(q·k)")
    right.semilogx(d, entropy_scaled, "o-", color=PALETTE[0], label="softmax(q·k / √d_k)")
    right.axhline(max_entropy, ls=":", color="grey", label="uniform (maximum)")
    right.set_ylim(bottom=0)
    right.set_xlabel("d_k")
    right.set_ylabel("entropy of a row of weights (nats)")
    right.set_title("how spread out each query's attention is")
    right.legend()
    for ax in (left, right):
        ax.set_xticks(d, [str(int(v)) for v in d])
        ax.minorticks_off()
    return fig


__all__ = ["attention_heatmap", "attention_heatmaps", "scaling_experiment_figure"]
