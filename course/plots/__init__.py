"""Figure helpers, one module per topic (``course.plots.<topic>``).

Every helper returns a `matplotlib.figure.Figure` and never calls `plt.show()`:
a notebook displays the returned figure, a test inspects it, the book renders it.
This module holds what the topics share.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

#: Colours used across the course (colour-blind friendly, from the Okabe-Ito palette).
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]


def new_figure(width: float = 6.4, height: float = 4.0, nrows: int = 1, ncols: int = 1, **kwargs) -> tuple[Figure, object]:
    """A figure and its axes, with the course's defaults (constrained layout)."""
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), layout="constrained", **kwargs)
    return fig, axes


def bar_distribution(labels: Sequence[str], probs: Sequence[float], title: str = "", *, ax=None) -> Figure:
    """A bar chart of a probability distribution over labelled outcomes (tokens, characters)."""
    if len(labels) != len(probs):
        raise ValueError(f"got {len(labels)} labels but {len(probs)} probabilities")
    if ax is None:
        fig, ax = new_figure(6.4, 3.2)
    else:
        fig = ax.figure
    shown = [repr(s)[1:-1] if s.strip() else repr(s) for s in labels]
    ax.bar(range(len(probs)), probs, color=PALETTE[0])
    ax.set_xticks(range(len(probs)), shown)
    ax.set_ylabel("probability")
    if title:
        ax.set_title(title)
    return fig
