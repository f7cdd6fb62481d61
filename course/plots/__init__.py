"""Figure helpers, one module per topic (``course.plots.<topic>``).

Every helper returns a `matplotlib.figure.Figure` and never calls `plt.show()`:
a notebook displays the returned figure, a test inspects it, the book renders it.
This module holds what the topics share.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

#: Colours used across the course (colour-blind friendly, from the Okabe-Ito palette).
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]


def new_figure(width: float = 6.4, height: float = 4.0, nrows: int = 1, ncols: int = 1, **kwargs) -> tuple[Figure, object]:
    """A figure and its axes, with the course's defaults (constrained layout)."""
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), layout="constrained", **kwargs)
    return fig, axes


def _outcome_label(s: str) -> str:
    """A tick label that shows whitespace and control characters: ``'\\n'``, ``' '``; other text as it is."""
    return s if s.isprintable() and s.strip() == s and s else repr(s)


def bar_distribution(
    labels: Sequence[str], probs: Sequence[float], title: str = "", *, top_k: int = 10, min_share: float = 0.01, ax=None
) -> Figure:
    """A bar chart of a probability distribution over labelled outcomes (tokens, characters).

    The outcomes are sorted by probability, the most likely first (ties keep their
    input order). At most ``top_k`` of them get a bar of their own, and only those
    whose probability is at least ``min_share`` of the largest one: a smaller bar
    would be invisible. The rest with a nonzero probability are pooled into one last
bar, ``other (n)``, or, if
    even their total is below that threshold, named in the x-axis label with their
    total. Every bar carries its value. Whitespace and control characters are
    labelled by their ``repr`` (``'\\n'``, ``' '``). Pass the whole distribution:
    the pooled mass is what the arrays given hold beyond the bars shown.
    """
    if len(labels) != len(probs):
        raise ValueError(f"got {len(labels)} labels but {len(probs)} probabilities")
    if len(labels) == 0:
        raise ValueError("got an empty distribution: nothing to draw")
    p = np.asarray(probs, dtype=float)
    if not np.isfinite(p).all() or (p < 0).any():
        raise ValueError("probabilities must be finite and non-negative")
    if p.max() <= 0:
        raise ValueError("all probabilities are zero: nothing to draw")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be an int >= 1, got {top_k!r}")
    if not 0 <= min_share < 1:
        raise ValueError(f"min_share must be in [0, 1), got {min_share!r}")
    order = np.argsort(-p, kind="stable")
    threshold = min_share * p[order[0]]
    keep = [int(i) for i in order[:top_k] if p[i] > 0 and p[i] >= threshold]
    kept = set(keep)
    rest = [int(i) for i in order if int(i) not in kept and p[i] > 0]
    rest_mass = float(p[rest].sum())
    names = [_outcome_label(str(labels[i])) for i in keep]
    heights = [float(p[i]) for i in keep]
    note = ""
    if rest and rest_mass >= threshold:
        names.append(f"other ({len(rest)})")
        heights.append(rest_mass)
    elif rest:
        note = f"{len(rest)} more outcome{'s' if len(rest) > 1 else ''}, {rest_mass:.2g} in all, not drawn"
    if ax is None:
        fig, ax = new_figure(6.4, 3.2)
    else:
        fig = ax.figure
    colors = [PALETTE[0]] * len(keep) + ["#999999"] * (len(heights) - len(keep))  # the pooled rest in grey
    bars = ax.bar(range(len(heights)), heights, color=colors)
    ax.bar_label(bars, fmt="%.3g", fontsize=8)
    ax.set_xticks(range(len(heights)), names)
    ax.set_ylabel("probability")
    ax.set_ylim(0, max(heights) * 1.15)
    if note:
        ax.set_xlabel(note)
    if title:
        ax.set_title(title)
    return fig
