"""course.seeds (chapter 07): mean, spread and paired differences over seeds; the three-way word split; the seed plot."""

from __future__ import annotations

import math
import statistics

import matplotlib

matplotlib.use("Agg")
import pytest

from course.plots.finetune import plot_seed_results
from course.seeds import SeedSummary, paired_difference, summarize
from course.sft import split_words_three


def test_summary_matches_statistics_module():
    values = [0.733, 0.773, 0.747]
    s = summarize(values)
    assert s.n == 3
    assert s.mean == pytest.approx(statistics.mean(values), abs=1e-15)
    assert s.std == pytest.approx(statistics.stdev(values), abs=1e-15)  # sample standard deviation (n - 1)
    assert (s.low, s.high) == (0.733, 0.773)


def test_one_seed_has_no_spread():
    s = summarize([0.5])
    assert s.std == 0.0 and s.low == s.high == 0.5
    assert s.format(percent=True) == "50.0% ± 0.0 (50.0 to 50.0, 1 seed)"


def test_format():
    s = summarize([0.7, 0.8, 0.75])
    assert s.format(percent=True) == "75.0% ± 5.0 (70.0 to 80.0, 3 seeds)"
    assert s.format(digits=2) == "0.75 ± 0.05 (0.70 to 0.80, 3 seeds)"
    assert summarize([0.02, -0.01]).format(percent=True, sign=True) == "+0.5% ± 2.1 (-1.0 to +2.0, 2 seeds)"
    assert str(s) == s.format()


def test_paired_difference_is_seed_by_seed():
    a, b = [0.9, 0.5, 0.7], [0.8, 0.4, 0.6]  # a leads by 0.1 with every seed, though both vary a lot
    d = paired_difference(a, b)
    assert d.mean == pytest.approx(0.1) and d.std == pytest.approx(0.0, abs=1e-12)
    assert summarize(a).std > 0.1  # unpaired, the spread of each would hide the lead
    with pytest.raises(ValueError, match="one value per seed"):
        paired_difference([1.0, 2.0], [1.0])


def test_bad_values():
    with pytest.raises(ValueError, match="at least one"):
        summarize([])
    with pytest.raises(ValueError, match="finite"):
        SeedSummary((1.0, math.nan))


def test_split_words_three_is_disjoint_and_complete():
    words = [f"w{i}" for i in range(1000)]
    train, val, test = split_words_three(words, val_fraction=0.15, test_fraction=0.15, seed=0)
    assert (len(train), len(val), len(test)) == (700, 150, 150)
    assert not set(train) & set(val) and not set(train) & set(test) and not set(val) & set(test)
    assert sorted(train + val + test) == sorted(words)
    assert split_words_three(words, 0.15, 0.15, seed=0) == (train, val, test)  # seeded
    assert split_words_three(words, 0.15, 0.15, seed=1) != (train, val, test)
    for bad in ((0.0, 0.2), (0.2, 1.0), (0.5, 0.5)):
        with pytest.raises(ValueError):
            split_words_three(words, *bad, seed=0)


def test_plot_seed_results():
    fig = plot_seed_results({"a": [0.7, 0.8, 0.75], "b": [0.6]}, "accuracy", percent=True)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
    assert ax.get_xlabel() == "accuracy (%)"
    dots = [line for line in ax.lines if line.get_marker() == "o"]
    assert sorted(len(line.get_xdata()) for line in dots) == [1, 3]
    assert max(max(line.get_xdata()) for line in dots) == pytest.approx(80.0)
    with pytest.raises(ValueError):
        plot_seed_results({}, "x")
    with pytest.raises(ValueError):
        plot_seed_results({"a": []}, "x")


def test_plot_lr_sweep():
    from course.plots.finetune import plot_lr_sweep

    fig = plot_lr_sweep([3e-3, 1e-2, 3e-2], [1.7, 1.0, 3.0], "t")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_title() == "t"
    chosen = [line for line in ax.lines if line.get_label() == "chosen"]
    assert len(chosen) == 1 and list(chosen[0].get_xdata()) == [1e-2]
    with pytest.raises(ValueError, match="one loss per learning rate"):
        plot_lr_sweep([1e-3, 1e-2], [1.0])
    with pytest.raises(ValueError, match="positive"):
        plot_lr_sweep([0.0, 1e-2], [1.0, 2.0])
