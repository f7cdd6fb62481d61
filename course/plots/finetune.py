"""Figures of chapter 07 (fine-tuning): adaptation vs forgetting, overfitting curves, confusion matrices, a learning-rate sweep, results over seeds."""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def plot_adaptation(steps: Sequence[int], new_domain: Sequence[float], old_domain: Sequence[float],
                    new_name: str = "new domain", old_name: str = "Shakespeare") -> Figure:
    """Validation loss on the new domain (adaptation) and on the old one (forgetting) against fine-tuning steps."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    ax.plot(steps, new_domain, "o-", label=f"{new_name} (adaptation)")
    ax.plot(steps, old_domain, "s-", label=f"{old_name} (forgetting)")
    ax.set_xlabel("fine-tuning step")
    ax.set_ylabel("validation loss (nats/char)")
    ax.set_title("Continued pretraining: one loss falls, the other rises")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_overfitting(runs: Mapping[str, Mapping[str, Sequence[float]]], best_steps: Mapping[str, int] | None = None,
                     title: str = "Fine-tuning on a tiny set: train falls, validation turns up (★ = best)") -> Figure:
    """Train (dashed) and validation (solid) loss of several runs; each run a dict with eval_step, train_loss, val_loss."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for i, (name, h) in enumerate(runs.items()):
        color = f"C{i}"
        ax.plot(h["eval_step"], h["val_loss"], "-", color=color, label=f"{name}: validation")
        ax.plot(h["eval_step"], h["train_loss"], "--", color=color, alpha=0.7, label=f"{name}: train")
        if best_steps and name in best_steps:
            k = list(h["eval_step"]).index(best_steps[name])
            ax.plot([best_steps[name]], [h["val_loss"][k]], "*", color=color, markersize=12)
    ax.set_xlabel("step")
    ax.set_ylabel("loss on the response tokens")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def plot_confusion(matrices: Mapping[str, np.ndarray], labels: Sequence[str]) -> Figure:
    """Confusion matrices side by side (rows: true class, columns: predicted), with counts written in."""
    fig, axes = plt.subplots(1, len(matrices), figsize=(3.2 * len(matrices), 3.2), squeeze=False)
    for ax, (name, m) in zip(axes[0], matrices.items()):
        m = np.asarray(m)
        ax.imshow(m, cmap="Blues", vmin=0, vmax=max(1, m.sum(1).max()))
        for (r, c), v in np.ndenumerate(m):
            ax.text(c, r, str(int(v)), ha="center", va="center", color="white" if v > m.sum(1).max() / 2 else "black")
        ax.set_xticks(range(len(labels)), labels, fontsize=8)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_title(name, fontsize=9)
    axes[0][0].set_ylabel("true speaker")
    fig.tight_layout()
    return fig


def plot_lr_sweep(lrs: Sequence[float], losses: Sequence[float], title: str = "",
                  what: str = "validation loss") -> Figure:
    """``losses[i]`` against learning rate ``lrs[i]`` on a log axis; the best point is circled."""
    lrs, losses = np.asarray(lrs, dtype=float), np.asarray(losses, dtype=float)
    if lrs.ndim != 1 or lrs.shape != losses.shape or lrs.size == 0:
        raise ValueError(f"need one loss per learning rate, got {lrs.shape} learning rates and {losses.shape} losses.")
    if np.any(lrs <= 0):
        raise ValueError("learning rates must be positive (they are drawn on a log axis).")
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    ax.semilogx(lrs, losses, "o-")
    best = int(np.nanargmin(losses))
    ax.plot([lrs[best]], [losses[best]], "o", markersize=16, markerfacecolor="none", markeredgecolor="red",
            markeredgewidth=2, label="chosen")
    ax.set_xticks(lrs, [f"{lr:g}" for lr in lrs])
    ax.minorticks_off()
    ax.set_xlabel("learning rate")
    ax.set_ylabel(f"{what} (lower is better)")
    ax.set_title(title or f"{what} per learning rate")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_seed_results(results: Mapping[str, Sequence[float]], xlabel: str, title: str = "",
                      percent: bool = False) -> Figure:
    """One row per setting: each seed's result as a dot, the mean as a bar across them."""
    if not results:
        raise ValueError("no results to plot.")
    scale = 100.0 if percent else 1.0
    names = list(results)
    fig, ax = plt.subplots(figsize=(7, 0.55 * len(names) + 1.4))
    for row, name in enumerate(names):
        values = np.asarray(results[name], dtype=float) * scale
        if values.size == 0:
            raise ValueError(f"{name!r} has no results.")
        ax.plot(values, np.full(values.shape, row), "o", color=f"C{row}", alpha=0.8, markersize=7)
        ax.plot([values.mean()] * 2, [row - 0.3, row + 0.3], "-", color="black", linewidth=2)
    ax.set_yticks(range(len(names)), names)
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_xlabel(xlabel + (" (%)" if percent else ""))
    ax.set_title(title or "one dot per seed, the bar is the mean")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig
