"""Figures of chapter 12 (preferences and reinforcement learning): the reward model's calibration, best-of-N's
proxy and gold rewards against N and KL, the DPO beta sweep and the RL curves. Each series over seeds is drawn as
its mean with a band (or whiskers) from the lowest to the highest seed."""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from . import PALETTE


def _stats(rows: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, min and max over seeds of equally long series (rows: seeds)."""
    a = np.asarray(rows, dtype=float)
    if a.ndim == 1:
        a = a[None]
    return a.mean(0), a.min(0), a.max(0)


def plot_calibration(bins_by_seed: Mapping[str, Sequence[Mapping[str, float]]],
                     title: str = "Reward model calibration (validation pairs)") -> Figure:
    """Observed against predicted win probability, one line per seed, points sized by their pair count."""
    if not bins_by_seed:
        raise ValueError("bins_by_seed is empty: give at least one seed's calibration bins.")
    fig, ax = plt.subplots(figsize=(4.6, 4.2), layout="constrained")
    ax.plot([0, 1], [0, 1], color="#999999", lw=1, ls="--", label="calibrated")
    for k, (seed, bins) in enumerate(bins_by_seed.items()):
        x = [b["predicted"] for b in bins]
        y = [b["observed"] for b in bins]
        size = [8 + 60 * b["n"] / max(c["n"] for c in bins) for b in bins]
        ax.plot(x, y, color=PALETTE[k % len(PALETTE)], lw=1, alpha=0.8)
        ax.scatter(x, y, s=size, color=PALETTE[k % len(PALETTE)], label=f"seed {seed}", zorder=3)
    ax.set_xlabel("predicted P(A preferred) = sigmoid(r_A - r_B)")
    ax.set_ylabel("share of pairs where A was preferred")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    return fig


def plot_best_of_n(ns: Sequence[int], gold: Sequence[Sequence[float]], proxy: Sequence[Sequence[float]],
                   oracle: Sequence[float], kl: Sequence[float], exact: Sequence[Sequence[float]] | None = None,
                   title: str = "Best-of-N with a learned reward model (validation prompts)") -> Figure:
    """Left: the gold reward of the pick against N (reward model's pick, the gold reward's own pick = the ceiling);
    right: the reward model's score of its pick against the KL bound, the gold reward on a second axis."""
    if not (len(ns) == len(oracle) == len(kl)) or any(len(r) != len(ns) for r in [*gold, *proxy]):
        raise ValueError("every series needs one value per N.")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    g_mean, g_lo, g_hi = _stats(gold)
    left.plot(ns, oracle, "o--", color=PALETTE[2], label="picked by the gold reward (ceiling)")
    left.plot(ns, g_mean, "o-", color=PALETTE[0], label="picked by the reward model (mean of seeds)")
    left.fill_between(ns, g_lo, g_hi, color=PALETTE[0], alpha=0.2, lw=0)
    if exact is not None:
        e_mean, e_lo, e_hi = _stats(exact)
        left.plot(ns, e_mean, "s:", color=PALETTE[5], label="exact match of the reward model's pick")
        left.fill_between(ns, e_lo, e_hi, color=PALETTE[5], alpha=0.15, lw=0)
    left.set_xscale("log", base=2)
    left.set_xticks(ns, [str(n) for n in ns])
    left.set_xlabel("N (replies drawn per prompt)")
    left.set_ylabel("mean over prompts")
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    p_mean, p_lo, p_hi = _stats(proxy)
    right.plot(kl, p_mean, "o-", color=PALETTE[3], label="reward model's score of its pick")
    right.fill_between(kl, p_lo, p_hi, color=PALETTE[3], alpha=0.2, lw=0)
    right.set_xlabel("KL bound log N - (N-1)/N (nats)")
    right.set_ylabel("reward-model score (proxy)", color=PALETTE[3])
    twin = right.twinx()
    twin.plot(kl, g_mean, "o-", color=PALETTE[0], label="gold reward of its pick")
    twin.fill_between(kl, g_lo, g_hi, color=PALETTE[0], alpha=0.2, lw=0)
    twin.set_ylabel("gold reward", color=PALETTE[0])
    right.grid(alpha=0.3)
    lines = right.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    right.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="lower right")
    fig.suptitle(title, fontsize=10)
    return fig


def plot_beta_sweep(betas: Sequence[float], measures: Mapping[str, Sequence[Sequence[float]]],
                    references: Mapping[str, float] | None = None,
                    title: str = "DPO: a sweep of beta (three seeds; validation)") -> Figure:
    """One panel per measure: mean over seeds against beta (log scale) with min-max whiskers; a dashed line for the
    starting model's value where ``references`` has one. ``measures[name]`` holds one row per beta, one value per
    seed."""
    names = list(measures)
    fig, axes = plt.subplots(1, len(names), figsize=(3.3 * len(names), 3.4), layout="constrained", squeeze=False)
    for ax, name in zip(axes[0], names):
        rows = np.asarray(measures[name], dtype=float)
        if rows.shape[0] != len(betas):
            raise ValueError(f"{name}: one row per beta ({len(betas)}), got {rows.shape[0]}.")
        mean, lo, hi = rows.mean(1), rows.min(1), rows.max(1)
        ax.errorbar(betas, mean, yerr=[mean - lo, hi - mean], fmt="o-", capsize=3, color=PALETTE[0])
        if references and name in references:
            ax.axhline(references[name], color="#777777", ls="--", lw=1, label="before DPO")
            ax.legend(fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel("beta")
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    return fig


def plot_rl_curves(curves: Mapping[str, Mapping[str, Sequence[Sequence[float]]]], steps: Sequence[int],
                   title: str = "RL with verifiable rewards (validation; mean of seeds, band: min-max)") -> Figure:
    """One panel per measure (keys of each variant's dict), one line per variant (keys of ``curves``).

    ``curves[variant][measure]`` holds one series per seed, each with one value per entry of ``steps``.
    """
    variants = list(curves)
    if not variants:
        raise ValueError("curves is empty.")
    measures = list(curves[variants[0]])
    cols = min(3, len(measures))
    rows = -(-len(measures) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.8 * cols, 3.0 * rows), layout="constrained", squeeze=False)
    for k, name in enumerate(measures):
        ax = axes[k // cols][k % cols]
        for v, variant in enumerate(variants):
            series = curves[variant][name]
            xs = steps if len(series[0]) == len(steps) else np.arange(1, len(series[0]) + 1)
            mean, lo, hi = _stats(series)
            ax.plot(xs, mean, color=PALETTE[v % len(PALETTE)], label=variant, lw=1.5)
            ax.fill_between(xs, lo, hi, color=PALETTE[v % len(PALETTE)], alpha=0.2, lw=0)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for k in range(len(measures), rows * cols):
        axes[k // cols][k % cols].axis("off")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig


__all__ = ["plot_beta_sweep", "plot_best_of_n", "plot_calibration", "plot_rl_curves"]
