"""Figures of chapter 01 (tokenization).

Every helper returns a `matplotlib.figure.Figure` and never calls ``plt.show()``.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

from . import PALETTE


def compression_curve(
    vocab_sizes: Sequence[int],
    bytes_per_token: Sequence[float],
    *,
    references: Mapping[str, tuple[int, float]] | None = None,
    title: str = "",
) -> Figure:
    """Bytes per token against vocabulary size (log scale), with optional labelled reference points."""
    if len(vocab_sizes) != len(bytes_per_token) or not vocab_sizes:
        raise ValueError(f"got {len(vocab_sizes)} vocabulary sizes and {len(bytes_per_token)} compression values; "
                         "they must be equally long and not empty.")
    fig, ax = plt.subplots(figsize=(6.4, 3.8), layout="constrained")
    ax.plot(vocab_sizes, bytes_per_token, "o-", color=PALETTE[0], label="BPE trained here")
    for k, (label, (v, c)) in enumerate((references or {}).items()):
        ax.plot([v], [c], "s", color=PALETTE[(k + 1) % len(PALETTE)], label=label)
    ax.set_xscale("log", base=2)
    ax.set(xlabel="vocabulary size (log scale)", ylabel="bytes per token (higher = shorter sequences)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    if title:
        ax.set_title(title)
    return fig


def token_length_histogram(lengths: Mapping[str, Sequence[int]], *, title: str = "") -> Figure:
    """Side-by-side normalised histograms of token lengths in bytes, one series per entry."""
    if not lengths:
        raise ValueError("token_length_histogram needs at least one series of lengths.")
    fig, ax = plt.subplots(figsize=(6.4, 3.6), layout="constrained")
    longest = max(max(v) for v in lengths.values() if len(v))
    bins = np.arange(1, longest + 2)
    width = 0.8 / len(lengths)
    for k, (label, values) in enumerate(lengths.items()):
        counts, _ = np.histogram(np.asarray(values), bins=bins)
        share = counts / max(counts.sum(), 1)
        ax.bar(bins[:-1] + (k - (len(lengths) - 1) / 2) * width, share, width=width, color=PALETTE[k % len(PALETTE)], label=label)
    ax.set(xlabel="token length (bytes)", ylabel="share")
    ax.set_xticks(bins[:-1:max(1, len(bins) // 16)])
    ax.legend()
    if title:
        ax.set_title(title)
    return fig


def _visible(piece: str) -> str:
    return piece.replace(" ", "\u2423").replace("\n", "\u21b5").replace("\t", "\u2192")


def token_rendering(pieces: Sequence[str], *, per_row: int = 64, title: str = "", fontsize: float = 12) -> Figure:
    """Each token as a coloured box holding its text (spaces shown as ␣, newlines as ↵), wrapped into rows.

    Uses the default monospace font: characters it lacks (Chinese, emoji) would
    render as empty boxes, so pass text in Latin script or show such text as a list.
    """
    if not pieces:
        raise ValueError("token_rendering needs at least one token.")
    shown = [_visible(p) for p in pieces]
    rows: list[list[tuple[int, str]]] = [[]]
    col = 0
    for k, s in enumerate(shown):
        if col and col + len(s) > per_row:
            rows.append([])
            col = 0
        rows[-1].append((k, s))
        col += len(s) + 1
    char_w, row_h = 0.6, 1.6
    inch_per_char = 0.6 * fontsize / 72 * 1.1  # a monospace character is about 0.6 em wide
    fig, ax = plt.subplots(
        figsize=(per_row * inch_per_char + 0.4, 0.42 * fontsize / 12 * row_h * len(rows) + (0.5 if title else 0.2)),
        layout="constrained",
    )
    for r, row in enumerate(rows):
        x = 0.0
        for k, s in row:
            w = max(len(s), 1) * char_w
            ax.add_patch(FancyBboxPatch((x, -r * row_h), w, 1.0, boxstyle="round,pad=0.08",
                                        facecolor=PALETTE[k % 6], alpha=0.35, edgecolor="none"))
            ax.text(x + w / 2, -r * row_h + 0.5, s, ha="center", va="center", family="monospace", fontsize=fontsize)
            x += w + char_w
    ax.set_xlim(-0.3, per_row * char_w + 0.3)
    ax.set_ylim(-(len(rows) - 1) * row_h - 0.4, 1.4)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=10)
    return fig
