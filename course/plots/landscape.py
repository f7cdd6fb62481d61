"""Figures of chapter 10 (the LLM landscape): cross-attention read as word alignments, MinHash estimates
against exact Jaccard with the LSH S-curve, and the cost of context. (The attention masks of the three
families are drawn with chapter 03's `course.plots.attention.attention_heatmaps`.)"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def alignment_maps(examples: Sequence[tuple[Sequence[str], Sequence[str], np.ndarray, Sequence[int]]]) -> Figure:
    """Cross-attention heatmaps, one per example (source words, target words, weights (target, source),
    true alignment); a ring marks each target word's true source word."""
    if not examples:
        raise ValueError("give at least one (source, target, weights, alignment) example.")
    fig, axes = plt.subplots(1, len(examples), figsize=(3.9 * len(examples), 3.8), squeeze=False)
    for ax, (src, tgt, w, align) in zip(axes[0], examples):
        w = np.asarray(w)
        if w.shape != (len(tgt), len(src)):
            raise ValueError(f"weights must be (target words, source words) = ({len(tgt)}, {len(src)}), got {w.shape}.")
        ax.imshow(w, cmap="viridis", vmin=0, vmax=1)
        ax.scatter(list(align), range(len(tgt)), s=160, facecolors="none", edgecolors="red", linewidths=1.5)
        ax.set_xticks(range(len(src)), src, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(len(tgt)), tgt, fontsize=8)
        ax.set_xlabel("source (English)", fontsize=8)
        ax.set_ylabel("target (written)", fontsize=8)
    fig.suptitle("Cross-attention, averaged over heads (red ring: the true source word)", fontsize=11)
    fig.tight_layout()
    return fig


def minhash_and_lsh(exact: Sequence[float], estimated: Sequence[float], bands: int, rows: int,
                    threshold: float) -> Figure:
    """Left: MinHash estimates against exact Jaccard similarity. Right: the LSH S-curve for (bands, rows)."""
    from ..pretraining_data import lsh_probability

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    a.plot([0, 1], [0, 1], "k--", lw=1, label="estimate = exact")
    a.scatter(exact, estimated, s=10, alpha=0.6, label="pairs of documents")
    a.set_xlabel("exact Jaccard similarity (5-word shingles)")
    a.set_ylabel(f"MinHash estimate ({bands * rows} hashes)")
    a.set_title("MinHash estimates Jaccard")
    a.legend(fontsize=8)
    a.grid(alpha=0.3)
    s = np.linspace(0, 1, 201)
    b.plot(s, lsh_probability(s, bands, rows), label=f"{bands} bands x {rows} rows")
    b.plot(s, lsh_probability(s, bands * rows, 1), ":", label=f"{bands * rows} bands x 1 row")
    b.plot(s, lsh_probability(s, 1, bands * rows), ":", label=f"1 band x {bands * rows} rows")
    b.axvline(threshold, color="gray", lw=1, ls="--")
    b.set_xlabel("Jaccard similarity of two documents")
    b.set_ylabel("P(compared: share a band)")
    b.set_title("LSH: a step near the threshold")
    b.legend(fontsize=8)
    b.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def context_cost(contexts: Sequence[int], attention_share: Sequence[float], score_bytes: Sequence[float]) -> Figure:
    """Left: the share of training FLOPs spent in attention scores against context length. Right: the
    memory of one layer's attention scores (all heads) if they were stored, against context length."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    a.semilogx(contexts, 100 * np.asarray(attention_share), "o-", base=2)
    a.set_xlabel("context length T (tokens)")
    a.set_ylabel("attention's share of FLOPs per token (%)")
    a.set_title("Linear per token, quadratic per sequence")
    a.grid(alpha=0.3)
    b.loglog(contexts, np.asarray(score_bytes) / 2**30, "o-", base=2)
    b.set_xlabel("context length T (tokens)")
    b.set_ylabel("GiB (float16 scores, one layer)")
    b.set_title("The T x T score matrix, if it were stored")
    b.grid(alpha=0.3)
    fig.tight_layout()
    return fig


__all__ = ["alignment_maps", "context_cost", "minhash_and_lsh"]
