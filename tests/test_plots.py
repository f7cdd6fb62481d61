"""course.plots.bar_distribution: the bars drawn are the most likely outcomes, tallest first, every one visible."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from course.plots import bar_distribution


def drawn(fig):
    """(tick labels, bar heights, x-axis label) of the figure's one axes."""
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    heights = [p.get_height() for p in ax.patches]
    return labels, heights, ax.get_xlabel()


def test_a_peaked_distribution_shows_its_peak_and_pools_the_invisible_rest():
    # the chapter-00 case: one likely outcome, 64 tiny equal ones (add-one smoothing), in alphabetical order
    labels = [chr(ord("A") + i) for i in range(65)]
    probs = np.full(65, 1 / 625)
    probs[20] = 1 - 64 / 625
    fig = bar_distribution(labels, probs, "peaked")
    names, heights, xlabel = drawn(fig)
    assert names == ["U", "other (64)"]
    assert heights == pytest.approx([probs[20], 64 / 625])
    assert abs(sum(heights) - 1) < 1e-12 and xlabel == ""
    plt.close(fig)


def test_bars_are_sorted_descending_and_all_visible():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(30, 0.3))
    labels = [f"t{i}" for i in range(30)]
    fig = bar_distribution(labels, probs, top_k=8, min_share=0.02)
    names, heights, _ = drawn(fig)
    own = [h for n, h in zip(names, heights) if not n.startswith("other")]
    assert own == sorted(own, reverse=True) and own[0] == probs.max()
    assert len(own) <= 8 and min(heights) >= 0.02 * probs.max()
    assert [labels[i] for i in np.argsort(-probs, kind="stable")[: len(own)]] == names[: len(own)]
    if names[-1].startswith("other"):
        assert heights[-1] == pytest.approx(1 - sum(own))
    plt.close(fig)


def test_whitespace_labels_are_readable_and_ties_keep_input_order():
    fig = bar_distribution(["\n", " ", "a", "\t"], [0.25, 0.25, 0.25, 0.25])
    names, heights, _ = drawn(fig)
    assert names == ["'\\n'", "' '", "a", "'\\t'"] and heights == [0.25] * 4
    plt.close(fig)


def test_a_rest_too_small_to_see_is_named_not_drawn_and_zeros_are_dropped():
    fig = bar_distribution(list("abcd"), [0.6, 0.39995, 5e-5, 0.0])
    names, heights, xlabel = drawn(fig)
    assert names == ["a", "b"] and all(h > 0 for h in heights)
    assert xlabel == "1 more outcome, 5e-05 in all, not drawn"
    plt.close(fig)


@pytest.mark.parametrize(
    "labels, probs, kwargs, match",
    [
        (["a"], [0.5, 0.5], {}, "labels"),
        ([], [], {}, "empty"),
        (["a", "b"], [0.5, -0.1], {}, "non-negative"),
        (["a", "b"], [0.0, 0.0], {}, "zero"),
        (["a", "b"], [0.5, 0.5], {"top_k": 0}, "top_k"),
        (["a", "b"], [0.5, 0.5], {"min_share": 1.0}, "min_share"),
    ],
)
def test_bad_input_is_rejected(labels, probs, kwargs, match):
    with pytest.raises(ValueError, match=match):
        bar_distribution(labels, probs, **kwargs)
