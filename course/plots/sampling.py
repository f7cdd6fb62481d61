"""Figures of chapter 06 (sampling, decoding and the KV cache).

Every helper returns a `matplotlib.figure.Figure` and never calls ``plt.show()``.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from . import PALETTE


def _np(x: object) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().double().numpy()  # type: ignore[union-attr]
    return np.asarray(x, dtype=np.float64)


def _shown(labels: Sequence[str]) -> list[str]:
    """Characters as tick labels: whitespace made visible."""
    return [repr(s)[1:-1] if s.strip() else repr(s) for s in labels]


def before_after(labels: Sequence[str], before: object, after: object, title: str = "", *, ax=None) -> Figure:
    """Bars of one distribution before (grey) and after (colour) a logit processor, for the same tokens."""
    b, a = _np(before), _np(after)
    if not len(labels) == len(b) == len(a):
        raise ValueError(f"labels, before and after must have the same length, got {len(labels)}, {len(b)}, {len(a)}.")
    if ax is None:
        fig, ax = plt.subplots(figsize=(7.0, 3.0), layout="constrained")
    else:
        fig = ax.figure
    x = np.arange(len(labels))
    ax.bar(x - 0.2, b, width=0.4, color="#BBBBBB", label="before")
    ax.bar(x + 0.2, a, width=0.4, color=PALETTE[0], label="after")
    ax.set_xticks(x, _shown(labels))
    ax.set_ylabel("probability")
    ax.set_ylim(0, max(1e-9, float(max(b.max(), a.max()))) * 1.12)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def processor_panels(labels: Sequence[str], before: object, afters: Mapping[str, object], *, ncols: int = 3) -> Figure:
    """One `before_after` panel per processor setting: how each reshapes the same distribution."""
    if not afters:
        raise ValueError("processor_panels needs at least one processed distribution, got none.")
    n = len(afters)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 2.6 * nrows), squeeze=False, layout="constrained")
    for ax, (name, after) in zip(axes.flat, afters.items()):
        before_after(labels, before, after, name, ax=ax)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.legend(handles=[Patch(color="#BBBBBB", label="before"), Patch(color=PALETTE[0], label="after")],
               loc="outside upper right", ncols=2, fontsize=9)
    return fig


def entropy_along_text(chars: Sequence[str], entropy_bits: object, title: str = "") -> Figure:
    """The entropy of the next-character distribution after each character of a passage."""
    h = _np(entropy_bits)
    if len(chars) != len(h):
        raise ValueError(f"got {len(chars)} characters but {len(h)} entropies.")
    fig, ax = plt.subplots(figsize=(max(6.0, 0.16 * len(h)), 3.0), layout="constrained")
    ax.bar(np.arange(len(h)), h, color=PALETTE[0], width=0.8)
    visible = ["\u00b7" if c == " " else "\u21b5" if c == "\n" else c for c in chars]  # · for a space, ↵ for a newline
    ax.set_xticks(np.arange(len(h)), visible, fontsize=8, fontfamily="monospace")
    ax.set_xlim(-0.6, len(h) - 0.4)
    ax.set_xlabel("the passage (\u00b7 space, \u21b5 newline): each bar is the uncertainty about the character after this one")
    ax.set_ylabel("entropy (bits)")
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def kv_cache_diagram(steps: int = 6) -> Figure:
    """What each decoding step computes: every position without a cache, one position with it."""
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.4), layout="constrained", sharey=True)
    colours = {0: "white", 1: "#E69F00", 2: "#CFE3F2"}
    for ax, cached in zip(axes, (False, True)):
        grid = np.zeros((steps, steps), dtype=int)
        for step in range(steps):
            for pos in range(step + 1):
                grid[step, pos] = 2 if cached and pos < step else 1
        for step in range(steps):
            for pos in range(steps):
                ax.add_patch(plt.Rectangle((pos, step), 1, 1, facecolor=colours[grid[step, pos]], edgecolor="#888888"))
                if grid[step, pos] == 1:
                    ax.text(pos + 0.5, step + 0.5, "q k v", ha="center", va="center", fontsize=7)
                elif grid[step, pos] == 2:
                    ax.text(pos + 0.5, step + 0.5, "k v", ha="center", va="center", fontsize=7, color="#0072B2")
        ax.set_xlim(0, steps)
        ax.set_ylim(steps, 0)
        ax.set_aspect("equal")
        ax.set_xticks(np.arange(steps) + 0.5, [str(i) for i in range(steps)])
        ax.set_yticks(np.arange(steps) + 0.5, [str(i + 1) for i in range(steps)])
        ax.set_xlabel("position in the sequence")
        work = int((grid == 1).sum())
        ax.set_title(("with a KV cache" if cached else "without a cache") + f": {work} positions computed", fontsize=10)
    axes[0].set_ylabel("decoding step")
    fig.legend(handles=[Patch(facecolor=colours[1], edgecolor="#888888", label="computed at this step"),
                        Patch(facecolor=colours[2], edgecolor="#888888", label="read from the cache")],
               loc="outside lower center", ncols=2, fontsize=9)
    return fig


def speedup_plot(new_tokens: Sequence[int], cached_tps: Sequence[float], uncached_tps: Sequence[float], title: str = "") -> Figure:
    """Tokens per second with and without the KV cache (left) and their ratio (right), against length."""
    n, c, u = np.asarray(new_tokens), np.asarray(cached_tps, dtype=float), np.asarray(uncached_tps, dtype=float)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.2), layout="constrained")
    left.plot(n, c, "o-", color=PALETTE[0], label="KV cache")
    left.plot(n, u, "s-", color=PALETTE[5], label="recompute everything")
    left.set(xlabel="generated tokens", ylabel="tokens per second")
    left.set_ylim(0, None)
    left.legend(fontsize=9)
    right.plot(n, c / u, "o-", color=PALETTE[2])
    right.axhline(1.0, color="#888888", lw=0.8)
    right.set(xlabel="generated tokens", ylabel="speed-up (cached / uncached)")
    right.set_ylim(0, None)
    for ax in (left, right):  # lengths double: a log2 axis, labelled with the lengths themselves
        ax.set_xscale("log", base=2)
        ax.minorticks_off()
        ax.set_xticks(n, [str(int(x)) for x in n])
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
