"""Figures of chapter 04: attention cost against sequence length, gradient norms per layer, parameter shares.

* `attention_cost_figure(rows)`: time and peak memory of naive attention vs fused
  SDPA against the sequence length, from the rows of
  ``benchmarks/results/attention.json`` (one panel pair per device found).
* `grad_norms_figure(norms)`: the gradient norm of every layer's parameters at
  initialisation, one line per variant (pre-norm, post-norm).
* `parameter_shares_figure(breakdown)`: where a model's parameters are, as bars.

Every helper returns a `matplotlib.figure.Figure` and never calls ``plt.show()``.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from . import PALETTE, new_figure

_STYLE = {"naive": (PALETTE[5], "naive: softmax(QKᵀ/√d)·V, T x T materialised"),
          "sdpa": (PALETTE[0], "F.scaled_dot_product_attention (fused)")}


def attention_cost_figure(rows: Sequence[Mapping[str, Any]]) -> Figure:
    """Two log-log panels per device: time (ms) and peak memory (MiB) against the sequence length T.

    Each row needs ``device``, ``method`` (``"naive"`` or ``"sdpa"``), ``seq_len``,
    ``time_ms``, ``peak_bytes`` and ``weights_bytes`` (the size of one (B, H, T, T)
    matrix, drawn as a dotted reference line).
    """
    if not rows:
        raise ValueError("attention_cost_figure needs at least one benchmark row; got none.")
    required = {"device", "method", "seq_len", "time_ms", "peak_bytes", "weights_bytes"}
    for i, row in enumerate(rows):
        missing = required - set(row)
        if missing:
            raise ValueError(f"row {i} lacks {sorted(missing)}; rows come from benchmarks/results/attention.json.")
    devices = list(dict.fromkeys(r["device"] for r in rows))
    fig, axes = new_figure(11.0, 3.8 * len(devices), nrows=len(devices), ncols=2, squeeze=False)
    for (time_ax, mem_ax), device in zip(axes, devices):
        mine = [r for r in rows if r["device"] == device]
        for method in dict.fromkeys(r["method"] for r in mine):
            pts = sorted((r for r in mine if r["method"] == method), key=lambda r: r["seq_len"])
            t = np.array([r["seq_len"] for r in pts])
            color, label = _STYLE.get(method, (PALETTE[2], method))
            time_ax.loglog(t, [r["time_ms"] for r in pts], "o-", color=color, label=label)
            mem_ax.loglog(t, [r["peak_bytes"] / 2**20 for r in pts], "o-", color=color, label=label)
        ref = sorted({(r["seq_len"], r["weights_bytes"]) for r in mine})
        mem_ax.loglog([a for a, _ in ref], [b / 2**20 for _, b in ref], ":", color="grey",
                      label="one (B, H, T, T) matrix")
        lengths = sorted({r["seq_len"] for r in mine})
        for ax in (time_ax, mem_ax):
            ax.set_xticks(lengths, [str(n) for n in lengths])
            ax.minorticks_off()
            ax.set_xlabel("sequence length T")
        time_ax.set_ylabel("time per call (ms)")
        mem_ax.set_ylabel("peak memory (MiB)")
        time_ax.set_title(f"{device}: time")
        mem_ax.set_title(f"{device}: peak memory (4x per doubling = O(T²))")
        mem_ax.legend(fontsize=8)
        time_ax.legend(fontsize=8)
    return fig


def grad_norms_figure(norms: Mapping[str, Sequence[float]], *, title: str = "") -> Figure:
    """Gradient norm of each layer's parameters (layer 0 = nearest the input), one line per variant."""
    if not norms:
        raise ValueError("grad_norms_figure needs at least one variant, e.g. {'pre-norm': [...], 'post-norm': [...]}.")
    fig, ax = new_figure(7.0, 3.8)
    for i, (name, values) in enumerate(norms.items()):
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 1 or values.size == 0:
            raise ValueError(f"norms[{name!r}] must be a non-empty list of numbers, one per layer; got shape {values.shape}.")
        ax.semilogy(np.arange(values.size), values, "o-", color=PALETTE[i % len(PALETTE)], label=name)
    ax.set_xlabel("layer (0 = next to the embeddings)")
    ax.set_ylabel("gradient norm of the layer's parameters")
    ax.set_title(title or "gradient norms per layer at initialisation")
    ax.legend()
    return fig


def parameter_shares_figure(breakdown: Mapping[str, int], *, title: str = "") -> Figure:
    """Horizontal bars: parameters per component, with their share of the total."""
    if not breakdown:
        raise ValueError("parameter_shares_figure needs a non-empty {component: count} mapping.")
    names, counts = list(breakdown), np.array(list(breakdown.values()), dtype=np.float64)
    if (counts < 0).any():
        raise ValueError("parameter counts cannot be negative.")
    total = counts.sum()
    fig, ax = new_figure(7.5, 0.5 * len(names) + 1.2)
    y = np.arange(len(names))[::-1]
    ax.barh(y, counts / 1e6, color=PALETTE[0])
    for yi, c in zip(y, counts):
        ax.text(c / 1e6, yi, f" {c / 1e6:.2f}M ({c / total:.0%})", va="center", fontsize=8)
    ax.set_yticks(y, names)
    ax.set_xlabel("parameters (millions)")
    ax.set_xlim(0, counts.max() / 1e6 * 1.35)
    ax.set_title(title or f"{total / 1e6:.1f}M parameters")
    return fig


__all__ = ["attention_cost_figure", "grad_norms_figure", "parameter_shares_figure"]
