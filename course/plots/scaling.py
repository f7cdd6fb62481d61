"""Scaling figures (chapter 09): tokenizers compared, IsoFLOP curves, power-law fits, context use."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, NullFormatter, ScalarFormatter

from . import PALETTE, new_figure


def tokenizer_tradeoffs(rows: Sequence[Mapping[str, Any]]) -> Figure:
    """Three panels over vocabulary size: characters per token, context coverage, and rare or unused tokens.

    ``rows``: one per tokenizer with ``vocab`` (size), ``chars_per_token``,
    ``window_chars`` (characters in one context window) and ``rare_share``
    (share of the vocabulary seen fewer than 10 times in training, unused ones included).
    """
    fig, axes = new_figure(9.6, 3.0, 1, 3)
    v = [r["vocab"] for r in rows]
    for ax, key, label in zip(axes, ("chars_per_token", "window_chars", "rare_share"),
                              ("characters per token (validation)", "characters in a 256-token window",
                               "vocabulary seen < 10 times in training")):
        ax.plot(v, [r[key] for r in rows], "o-", color=PALETTE[0], lw=2)
        ax.set_xscale("log", base=2)
        ax.set_xticks(v, [str(x) for x in v])
        ax.minorticks_off()
        ax.set_xlabel("vocabulary size")
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3)
    axes[2].yaxis.set_major_formatter(lambda y, _: f"{y:.0%}")
    return fig


def vocab_sweep(panels: Mapping[str, Sequence[Mapping[str, Any]]], live: Mapping[str, float] | None = None,
                live_panel: str | None = None) -> Figure:
    """Validation bits per character for each tokenizer of a sweep: every seed, and the mean; one panel per sweep.

    ``panels``: title -> runs with ``tokenizer`` and ``val_bpc``; ``live``: tokenizer -> a value
    re-run here, drawn in the panel ``live_panel``.
    """
    fig, axes = new_figure(5.2 * len(panels), 3.6, 1, len(panels), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, (title, rows) in zip(axes, panels.items()):
        names = list(dict.fromkeys(r["tokenizer"] for r in rows))
        for i, name in enumerate(names):
            vals = [r["val_bpc"] for r in rows if r["tokenizer"] == name]
            ax.scatter([i] * len(vals), vals, color=PALETTE[0], s=25, label="stored runs (one per seed)" if i == 0 else None)
            ax.hlines(np.mean(vals), i - 0.25, i + 0.25, color=PALETTE[0], lw=2)
            if live and title == live_panel and name in live:
                ax.scatter([i + 0.1], [live[name]], facecolors="none", edgecolors=PALETTE[5], s=70, lw=1.5,
                           label="re-run in this notebook")
        ax.set_xticks(range(len(names)), names, rotation=30)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("validation bits per character")
    return fig


def isoflop_curves(by_budget: Mapping[float, Sequence[Mapping[str, Any]]], fits: Mapping[float, Any],
                   live: Sequence[Mapping[str, Any]] = ()) -> Figure:
    """Loss against model size at fixed compute: one curve per budget, its parabola fit and minimum.

    ``by_budget``: budget -> runs with ``n_params`` and ``val_bpc``; ``fits``: budget -> `IsoFLOP`
    (or None where no minimum could be fitted); ``live``: runs re-run here (hollow markers).
    """
    fig, ax = new_figure(6.4, 4.0)
    for i, (budget, runs) in enumerate(sorted(by_budget.items())):
        color = PALETTE[i % len(PALETTE)]
        n = np.array([r["n_params"] for r in runs], dtype=float)
        ax.plot(n, [r["val_bpc"] for r in runs], "o", color=color, label=f"C = {budget:.1e} FLOPs")
        fit = fits.get(budget)
        if fit is not None:
            lo, hi = fit.n_range if getattr(fit, "n_range", None) else (n.min(), n.max())
            grid = np.geomspace(lo, hi, 100)  # the parabola where it was fitted
            ax.plot(grid, fit(grid), "-", color=color, lw=1.2, alpha=0.8)
            ax.plot([fit.n_opt], [fit.loss_opt], "*", color=color, ms=14, mec="black", mew=0.6)
    if live:
        ax.plot([r["n_params"] for r in live], [r["val_bpc"] for r in live], "o", mfc="none", mec="black", ms=11,
                label="re-run in this notebook")
    ax.set_xscale("log")
    ax.set_xlabel("non-embedding parameters N")
    ax.set_ylabel("validation bits per character")
    ax.set_title("IsoFLOP curves (stars: the fitted compute-optimal size)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


def power_laws(panels: Sequence[tuple[Sequence[float], Sequence[float], Any, str, str]]) -> Figure:
    """Log-log panels of loss against a quantity, each with its fitted power law.

    ``panels``: (x, loss, fit, x label, title) per panel; ``fit`` is a `course.scaling.PowerLaw`.
    """
    fig, axes = new_figure(4.4 * len(panels), 3.6, 1, len(panels))
    axes = np.atleast_1d(axes)
    for ax, (x, y, fit, xlabel, title) in zip(axes, panels):
        x = np.asarray(x, dtype=float)
        ax.plot(x, y, "o", color=PALETTE[0], label="runs")
        grid = np.geomspace(x.min(), x.max(), 100)
        ax.plot(grid, fit(grid), "-", color=PALETTE[5],
                label=f"fit: alpha = {fit.alpha:.3f} ± {fit.alpha_stderr:.3f}" + (f", E = {fit.E:.2f}" if fit.E else ""))
        _loss_axes(ax, xlabel, title)
    return fig


def _loss_axes(ax: Any, xlabel: str, title: str) -> None:
    """Log-log axes for a loss against size or data, labelled, with a grid and the legend."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    # A loss spans less than a factor of 10: plain numbers on the y axis, and no minor labels on x.
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%.1f"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel("validation bits per character")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)


def fit_uncertainty(x: Sequence[float], loss: Sequence[float], fit: Any, refits: Sequence[Any], xlabel: str,
                    title: str, shown: int = 40) -> Figure:
    """What a fitted exponent's standard error means, in three panels.

    Left: the points, the fitted power law and ``shown`` of the ``refits`` (fits to points drawn
    around the line with the residuals' scatter, `course.scaling.simulated_refits`). Middle: the
    refitted exponents, with the fit's exponent ± 1 and 2 standard errors. Right: the residuals
    ln L - ln fit: independent noise scatters around zero; a curve the line cannot follow makes a pattern.
    """
    fig, axes = new_figure(12.6, 3.5, 1, 3)
    a, b, c = axes
    x = np.asarray(x, dtype=float)
    y = np.asarray(loss, dtype=float)
    grid = np.geomspace(x.min(), x.max(), 60)
    for i, r in enumerate(refits[:shown]):
        a.plot(grid, r(grid), "-", color=PALETTE[0], lw=0.6, alpha=0.25,
               label="refits on simulated points" if i == 0 else None)
    a.plot(grid, fit(grid), "-", color=PALETTE[5], lw=2, label=f"fit: alpha = {fit.alpha:.3f}")
    a.plot(x, y, "o", color="black", ms=5, label="runs")
    _loss_axes(a, xlabel, title)
    alphas = np.array([r.alpha for r in refits])
    b.hist(alphas, bins=30, color=PALETTE[0], alpha=0.7)
    for k, style in ((1, "--"), (2, ":")):
        for sign in (-1, 1):
            b.axvline(fit.alpha + sign * k * fit.alpha_stderr, color=PALETTE[5], ls=style, lw=1.2,
                      label=f"alpha ± {k} SE" if sign > 0 else None)
    b.axvline(fit.alpha, color="black", lw=1.5, label="fitted alpha")
    b.set_xlabel("exponent alpha of each refit")
    b.set_ylabel("refits")
    b.set_title(f"{len(refits)} refits: their spread is the standard error", fontsize=10)
    b.legend(fontsize=8)
    b.grid(alpha=0.3)
    residuals = np.log(y - fit.E) - np.log(fit(x) - fit.E)
    c.axhline(0, color="gray", lw=1)
    c.plot(x, residuals, "o-", color=PALETTE[5])
    c.set_xscale("log")
    c.xaxis.set_minor_formatter(NullFormatter())
    c.set_xlabel(xlabel)
    c.set_ylabel("residual: ln L - ln fit")
    c.set_title(f"residuals (R² = {fit.r2:.3f})", fontsize=10)
    c.grid(alpha=0.3, which="both")
    return fig


def context_use(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], xmax: float | None = None) -> Figure:
    """Bits per character against how many characters of context a prediction had, one curve per model."""
    fig, ax = new_figure(6.4, 3.6)
    for i, (name, (x, y)) in enumerate(curves.items()):
        ax.plot(x, y, "-", color=PALETTE[[0, 5, 2, 3][i % 4]], lw=2, label=name)
    ax.set_xscale("symlog", linthresh=4)
    if xmax:
        ax.set_xlim(0, xmax)
    ax.set_xlabel("characters of context before the prediction (within its window)")
    ax.set_ylabel("bits per character")
    ax.set_title("what a longer context is worth", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


def rarity_cost(labels: Sequence[str], bpc: Sequence[float], share: Sequence[float]) -> Figure:
    """Bits per character of validation tokens grouped by how often the token occurred in training."""
    fig, ax = new_figure(6.4, 3.4)
    x = np.arange(len(labels))
    ax.bar(x, bpc, color=PALETTE[0])
    for i, (b, s) in enumerate(zip(bpc, share)):
        ax.text(i, b, f"{s:.1%} of the text", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, labels)
    ax.set_xlabel("how often the token occurs in the training split")
    ax.set_ylabel("bits per character")
    ax.set_title("rare tokens cost more", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    return fig


__all__ = ["context_use", "fit_uncertainty", "isoflop_curves", "power_laws", "rarity_cost", "tokenizer_tradeoffs", "vocab_sweep"]
