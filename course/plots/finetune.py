"""Figures of chapter 07 (fine-tuning): adaptation vs forgetting, overfitting curves, confusion matrices, a sweep heat map."""

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


def plot_overfitting(runs: Mapping[str, Mapping[str, Sequence[float]]], best_steps: Mapping[str, int] | None = None) -> Figure:
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
    ax.set_title("Fine-tuning on a tiny set: train falls, validation turns up (★ = best)")
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


def plot_sweep(values: np.ndarray, lrs: Sequence[float], ranks: Sequence[int], what: str = "validation loss") -> Figure:
    """A heat map of ``values[i, j]`` for learning rate ``lrs[i]`` and LoRA rank ``ranks[j]``; the best cell is boxed."""
    values = np.asarray(values, dtype=float)
    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    im = ax.imshow(values, cmap="viridis_r", aspect="auto")
    for (r, c), v in np.ndenumerate(values):
        ax.text(c, r, f"{v:.2f}", ha="center", va="center", color="white" if v > np.nanmedian(values) else "black")
    best = np.unravel_index(int(np.nanargmin(values)), values.shape)
    ax.add_patch(plt.Rectangle((best[1] - 0.5, best[0] - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
    ax.set_xticks(range(len(ranks)), [str(r) for r in ranks])
    ax.set_yticks(range(len(lrs)), [f"{lr:g}" for lr in lrs])
    ax.set_xlabel("LoRA rank r")
    ax.set_ylabel("learning rate")
    ax.set_title(f"{what} (lower is better)")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    return fig
