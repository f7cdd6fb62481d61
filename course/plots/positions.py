"""Figures of chapter 02 (embeddings and positions).

Every helper returns a `matplotlib.figure.Figure` and never calls ``plt.show()``.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def _as_numpy(x: object) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().float().numpy()  # type: ignore[union-attr]
    return np.asarray(x, dtype=np.float64)


def pe_heatmaps(tables: Mapping[str, object], *, width: float = 5.5, height: float = 3.6) -> Figure:
    """One heat map per position table (rows = positions, columns = dimensions), side by side."""
    if not tables:
        raise ValueError("pe_heatmaps needs at least one table, got none.")
    fig, axes = plt.subplots(1, len(tables), figsize=(width * len(tables), height), squeeze=False, layout="constrained")
    for ax, (title, table) in zip(axes[0], tables.items()):
        t = _as_numpy(table)
        if t.ndim != 2:
            raise ValueError(f"table {title!r} must be 2-D (positions, dimensions), got shape {t.shape}.")
        lim = max(float(np.abs(t).max()), 1e-12)
        im = ax.imshow(t, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
        ax.set(title=title, xlabel="dimension", ylabel="position")
        fig.colorbar(im, ax=ax, shrink=0.85)
    return fig


def pe_heatmap(table: object, title: str = "sinusoidal position encoding") -> Figure:
    """The heat map of one position table."""
    return pe_heatmaps({title: table}, width=7.0, height=4.2)


def similarity_vs_offset(
    offsets: Sequence[int] | np.ndarray, curves: Mapping[str, object], *, title: str = "", xlabel: str = "offset k (positions)"
) -> Figure:
    """Line plots of a similarity (e.g. a dot product) against the offset between two positions."""
    fig, axes = plt.subplots(1, len(curves), figsize=(5.2 * len(curves), 3.4), squeeze=False, layout="constrained")
    x = np.asarray(offsets)
    for ax, (label, values) in zip(axes[0], curves.items()):
        y = _as_numpy(values)
        if y.shape != x.shape:
            raise ValueError(f"curve {label!r} has shape {y.shape}; the offsets have shape {x.shape}.")
        ax.plot(x, y, lw=1.5)
        ax.axhline(0.0, color="0.7", lw=0.8)
        ax.set(title=label, xlabel=xlabel, ylabel="dot product")
    if title:
        fig.suptitle(title)
    return fig


def rope_arrows(vector: Sequence[float], theta: float, positions: Sequence[int], *, title: str = "") -> Figure:
    """A 2-D vector rotated by position·theta for each position, drawn as arrows from the origin."""
    v = _as_numpy(vector)
    if v.shape != (2,):
        raise ValueError(f"vector must have 2 coordinates (one RoPE pair), got shape {v.shape}.")
    fig, ax = plt.subplots(figsize=(4.6, 4.6), layout="constrained")
    colors = plt.cm.viridis(np.linspace(0.0, 0.9, len(positions)))
    r = float(np.hypot(*v))
    for color, m in zip(colors, positions):
        c, s = math.cos(m * theta), math.sin(m * theta)
        x, y = c * v[0] - s * v[1], s * v[0] + c * v[1]
        ax.annotate("", xy=(x, y), xytext=(0.0, 0.0), arrowprops=dict(arrowstyle="-|>", color=color, lw=1.8))
        ax.text(1.12 * x, 1.12 * y, f"m={m}", color=color, ha="center", va="center", fontsize=9)
    ax.add_patch(plt.Circle((0.0, 0.0), r, fill=False, ls=":", color="0.6"))
    lim = 1.35 * r
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", xlabel="coordinate 2i", ylabel="coordinate 2i+1")
    ax.set_title(title or f"one pair rotated by m·θ, θ = {theta:.3g} rad")
    return fig


def positions_explorer(table: object, offsets: np.ndarray, similarity: object, wavelengths: object, *, title: str = "") -> Figure:
    """The widget's figure: the table, the dot product PE[0]·PE[k] against k, and the wavelengths."""
    fig, (a0, a1, a2) = plt.subplots(1, 3, figsize=(14.0, 3.6), layout="constrained")
    t = _as_numpy(table)
    im = a0.imshow(t, aspect="auto", cmap="RdBu_r", vmin=-1.0, vmax=1.0, interpolation="nearest")
    a0.set(title="PE table", xlabel="dimension", ylabel="position")
    fig.colorbar(im, ax=a0, shrink=0.85)
    a1.plot(offsets, _as_numpy(similarity), lw=1.5)
    a1.axhline(0.0, color="0.7", lw=0.8)
    a1.set(title="PE[0]·PE[k] / (dim/2)", xlabel="offset k", ylim=(-1.05, 1.05))
    w = _as_numpy(wavelengths)
    a2.semilogy(np.arange(len(w)), w, "o-", ms=3)
    a2.set(title="wavelength of pair i", xlabel="pair i", ylabel="positions (log scale)")
    if title:
        fig.suptitle(title)
    return fig


__all__ = ["pe_heatmap", "pe_heatmaps", "positions_explorer", "rope_arrows", "similarity_vs_offset"]
