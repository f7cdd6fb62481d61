"""Figures of chapter 11 (from a language model to an assistant): the loss mask, the grid's results by task and by
digits, the loss curves of each task, and how the new embedding rows start."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def plot_loss_mask(ids: Sequence[int], mask: Sequence[int], tokenizer: Any, width: int = 44,
                   title: str = "The loss mask: green tokens are trained, grey ones are only read") -> Figure:
    """One cell per token, ``width`` to a row: special tokens as short names, trained tokens (mask 1) in green."""
    if len(ids) != len(mask):
        raise ValueError(f"ids and mask must have the same length, got {len(ids)} and {len(mask)}.")
    names = {i: s.strip("<|>") for s, i in tokenizer.special_ids.items()}
    rows = max(1, -(-len(ids) // width))
    fig, ax = plt.subplots(figsize=(11, 0.5 + 0.42 * rows))
    for k, (token, m) in enumerate(zip(ids, mask)):
        r, c = divmod(k, width)
        special = token in names
        text = names[token][:4] if special else tokenizer.decode([token]).replace(" ", "\u2423")
        colour = "#7fc97f" if m else "#dddddd"
        ax.add_patch(plt.Rectangle((c, -r), 0.95 if not special else 0.95, 0.9, color=colour,
                                   ec="#333333" if special else "none", lw=0.8))
        ax.text(c + 0.47, -r + 0.45, text, ha="center", va="center", fontsize=5.5 if special else 8,
                family="monospace", weight="bold" if special else "normal")
    ax.set_xlim(-0.2, width + 0.2)
    ax.set_ylim(-rows + 0.8, 1.0)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def _spread(values: Sequence[float]) -> tuple[float, float, float]:
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.mean() - v.min()), float(v.max() - v.mean())


def plot_task_accuracy(groups: Mapping[str, Mapping[str, Sequence[float]]], tasks: Sequence[str],
                       title: str = "Exact match per task (validation; bars: mean over seeds, whiskers: min-max)") -> Figure:
    """Grouped bars: for each group (a way to start), each task's accuracy over its seeds (one value: no whisker)."""
    fig, ax = plt.subplots(figsize=(11, 3.8))
    width = 0.8 / max(1, len(groups))
    x = np.arange(len(tasks))
    for g, (name, per_task) in enumerate(groups.items()):
        stats = [_spread(per_task[t]) for t in tasks]
        mean = [s[0] for s in stats]
        err = np.array([[s[1] for s in stats], [s[2] for s in stats]])
        ax.bar(x + (g - (len(groups) - 1) / 2) * width, mean, width, yerr=err, capsize=2, label=name, color=f"C{g}")
    ax.set_xticks(x, tasks, rotation=30, ha="right")
    ax.set_ylabel("exact match")
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=len(groups))
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_digits(panels: Mapping[str, Mapping[str, Mapping[int, Sequence[float]]]],
                title: str = "Arithmetic by the number of digits of each operand (validation)") -> Figure:
    """One panel per model: for each line (a cell of the grid), accuracy against digits, mean and min-max over seeds."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), sharey=True, squeeze=False)
    styles = {"add": ("C0", "o-"), "subtract": ("C1", "s-"), "multiply, calculator on": ("C2", "^-"),
              "multiply, calculator off": ("C3", "v--")}
    for ax, (panel, lines) in zip(axes[0], panels.items()):
        for label, by_digits in lines.items():
            digits = sorted(by_digits)
            stats = [_spread(by_digits[d]) for d in digits]
            colour, style = styles.get(label, ("C7", "o-"))
            ax.errorbar(digits, [s[0] for s in stats], yerr=np.array([[s[1] for s in stats], [s[2] for s in stats]]),
                        fmt=style, color=colour, capsize=2, label=label)
        ax.set_title(panel, fontsize=10)
        ax.set_xlabel("digits per operand")
        ax.set_xticks(sorted({d for by in lines.values() for d in by}))
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("exact match")
    axes[0][-1].legend(fontsize=7, loc="upper right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_task_curves(curves: Mapping[str, Sequence[Mapping[str, Any]]], tasks: Sequence[str],
                     title: str = "Validation loss of each task during instruction tuning") -> Figure:
    """One panel per run (e.g. pretrained, scratch): each task's validation loss against the step."""
    fig, axes = plt.subplots(1, len(curves), figsize=(5.4 * len(curves), 3.6), sharey=True, squeeze=False)
    for ax, (name, curve) in zip(axes[0], curves.items()):
        steps = [c["step"] for c in curve]
        for i, task in enumerate(tasks):
            ax.plot(steps, [c["task_val_loss"][task] for c in curve], "-", color=plt.cm.tab20(i % 20), label=task)
        ax.plot(steps, [c["val_loss"] for c in curve], "k--", lw=2, label="the mixture")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("loss (nats per trained token)")
    axes[0][-1].legend(fontsize=7, ncol=2, loc="upper right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_grow_inits(runs: Mapping[str, Sequence[Sequence[Mapping[str, float]]]],
                    title: str = "How the new rows start: the mixture's validation loss, first steps") -> Figure:
    """Validation loss against step for each init, one thin line per seed and the mean in bold."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for i, (init, seeds) in enumerate(runs.items()):
        for curve in seeds:
            ax.plot([c["step"] for c in curve], [c["val_loss"] for c in curve], "-", color=f"C{i}", alpha=0.3, lw=1)
        steps = [c["step"] for c in seeds[0]]
        mean = np.mean([[c["val_loss"] for c in curve] for curve in seeds], axis=0)
        ax.plot(steps, mean, "o-", color=f"C{i}", lw=2, label=f"{init} ({len(seeds)} seeds)")
    ax.set_xlabel("step")
    ax.set_ylabel("validation loss (nats per trained token)")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


__all__ = ["plot_digits", "plot_grow_inits", "plot_loss_mask", "plot_task_accuracy", "plot_task_curves"]
