"""Figures of chapter 13 (inside a modern LLM): variants compared over seeds, the experts' load over training,
memory kept for backward against sequence length, speculative decoding against draft length, and the loss at
each position past the trained context. Values over seeds are drawn as each seed's point (or a band from the
lowest to the highest seed) and their mean."""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from . import PALETTE


def plot_variants(labels: Sequence[str], values: Sequence[Sequence[float]], *, ylabel: str = "validation bits per character",
                  title: str = "", reference: float | None = None) -> Figure:
    """One column per variant: each seed's value as a dot, the mean as a bar; an optional dashed reference line."""
    if len(labels) != len(values) or not labels:
        raise ValueError("give one list of seed values per label (and at least one label).")
    fig, ax = plt.subplots(figsize=(max(5.0, 1.25 * len(labels) + 1.5), 3.8), layout="constrained")
    x = np.arange(len(labels))
    means = [float(np.mean(v)) for v in values]
    lo = min(min(v) for v in values)
    hi = max(max(v) for v in values)
    pad = 0.25 * (hi - lo) if hi > lo else 0.05
    ax.bar(x, [m - (lo - pad) for m in means], bottom=lo - pad, color=PALETTE[4], alpha=0.45, width=0.6, label="mean")
    for i, v in enumerate(values):
        ax.scatter(np.full(len(v), x[i]) + np.linspace(-0.12, 0.12, len(v)), v, color=PALETTE[0], zorder=3, s=18,
                   label="one seed" if i == 0 else None)
    if reference is not None:
        ax.axhline(reference, color="#777777", ls="--", lw=1)
    ax.set_xticks(x, labels, rotation=15, ha="right", fontsize=9)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def plot_expert_load(series: Mapping[str, Sequence[tuple[Sequence[int], Sequence[float]]]], n_experts: int,
                     title: str = "The busiest expert's share of the assignments") -> Figure:
    """For each variant, the busiest expert's share (mean over layers) against the training step, one line per
    seed; the balanced share 1/n_experts dashed."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8), layout="constrained")
    for k, (name, runs) in enumerate(series.items()):
        for j, (steps, share) in enumerate(runs):
            ax.plot(steps, share, color=PALETTE[k % len(PALETTE)], lw=1.4, alpha=0.85, label=name if j == 0 else None)
    ax.axhline(1 / n_experts, color="#777777", ls="--", lw=1, label=f"balanced (1/{n_experts})")
    ax.set_xlabel("training step")
    ax.set_ylabel("busiest expert's share")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    return fig


def plot_saved_memory(lengths: Sequence[int], saved: Mapping[str, Sequence[float]],
                      title: str = "Memory kept for the backward pass (one layer, 4 heads of 64)") -> Figure:
    """Bytes kept for backward against sequence length, log-log, one line per implementation."""
    fig, ax = plt.subplots(figsize=(5.6, 3.8), layout="constrained")
    markers = "os^"
    for k, (name, values) in enumerate(saved.items()):
        ax.loglog(lengths, np.asarray(values) / 2**20, marker=markers[k % 3], color=PALETTE[k], label=name)
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("MiB")
    ax.set_xticks(lengths, [str(t) for t in lengths])
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    return fig


def plot_speculative(gammas: Sequence[int], rows: Mapping[str, Mapping[str, Sequence[float]]],
                     title: str = "Speculative decoding: the shipped model as target") -> Figure:
    """Left: tokens per target call against the draft length; right: the measured speed-up. ``rows`` maps a label
    (draft, temperature) to {"tokens_per_call": [...], "speedup": [...]}, one value per gamma."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    for k, (name, r) in enumerate(rows.items()):
        style = "-" if "greedy" in name else "--"
        left.plot(gammas, r["tokens_per_call"], "o" + style, color=PALETTE[k // 2 % len(PALETTE)], label=name)
        right.plot(gammas, r["speedup"], "o" + style, color=PALETTE[k // 2 % len(PALETTE)], label=name)
    left.plot(gammas, [g + 1 for g in gammas], ":", color="#777777", label="every draft accepted (gamma + 1)")
    left.set_ylabel("tokens per call of the target")
    right.axhline(1, color="#777777", ls=":", lw=1)
    right.set_ylabel("speed-up over the target alone")
    for ax in (left, right):
        ax.set_xlabel("draft length gamma")
        ax.set_xticks(list(gammas))
    left.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return fig


def plot_loss_by_position(curves: Mapping[str, Sequence[Sequence[float]]], trained: int, *, smooth: int = 8,
                          title: str = "Loss at each position, past the trained context") -> Figure:
    """Mean over seeds of each method's loss at each position (a moving average of ``smooth`` positions), with a
    band from the lowest to the highest seed; the trained length as a vertical line."""
    fig, ax = plt.subplots(figsize=(7.2, 4.0), layout="constrained")
    kernel = np.ones(smooth) / smooth
    for k, (name, runs) in enumerate(curves.items()):
        a = np.asarray(runs, dtype=float)
        sm = np.stack([np.convolve(r, kernel, mode="valid") for r in a])
        x = np.arange(sm.shape[1]) + smooth - 1
        ax.plot(x, sm.mean(0), color=PALETTE[k % len(PALETTE)], lw=1.5, label=name)
        ax.fill_between(x, sm.min(0), sm.max(0), color=PALETTE[k % len(PALETTE)], alpha=0.18, lw=0)
    ax.axvline(trained, color="#777777", ls="--", lw=1)
    ax.text(trained, ax.get_ylim()[1], " trained context", va="top", fontsize=8, color="#555555")
    ax.set_xlabel("position in the window")
    ax.set_ylabel("cross-entropy (nats)")
    ax.legend(fontsize=8, ncols=2)
    ax.set_title(title, fontsize=10)
    return fig


__all__ = ["plot_expert_load", "plot_loss_by_position", "plot_saved_memory", "plot_speculative", "plot_variants"]
