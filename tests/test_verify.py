"""course.verify: printed bounds that do not depend on the machine, band assertions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course import data
from course.verify import agree, largest_difference, within


def test_agree_prints_the_fixed_tolerance_not_the_difference(capsys):
    a = np.linspace(0, 1, 7)
    for noise in (0.0, 1e-16, 3e-15):  # what different CPUs might produce
        agree("x", a + noise, a, 1e-12)
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["x: agree (largest difference below 1e-12)"] * 3


def test_agree_fails_loudly_and_catches_nan():
    with pytest.raises(AssertionError, match="largest difference 0.5 is not below 1e-06"):
        agree("x", np.array([1.0, 1.5]), np.array([1.0, 1.0]), 1e-6)
    with pytest.raises(AssertionError):
        agree("x", np.array([np.nan]), np.array([0.0]), 1.0)
    with pytest.raises(ValueError, match="positive"):
        agree("x", 1.0, 1.0, 0.0)


def test_agree_relative_and_mixed_types(capsys):
    ref = torch.tensor([100.0, -200.0], dtype=torch.float64)
    agree("rel", ref.numpy() * (1 + 1e-9), ref, 1e-8, relative=True)
    assert "largest relative difference below 1e-08" in capsys.readouterr().out
    with pytest.raises(AssertionError):
        agree("abs", ref.numpy() * (1 + 1e-9), ref, 1e-8)  # 2e-7 absolute
    assert largest_difference(torch.ones(2, dtype=torch.bfloat16), np.ones(2)) == 0.0
    with pytest.raises(ValueError, match="shapes"):
        largest_difference(np.ones(2), np.ones(3))


def test_within(monkeypatch, capsys):
    monkeypatch.setattr(data, "_FALLBACK_IN_USE", False)
    monkeypatch.delenv("COURSE_QUICK", raising=False)
    assert within(1.6, 1.5, 1.7, "loss") == 1.6
    with pytest.raises(AssertionError, match=r"loss = 1.8 is outside the expected band \[1.5, 1.7\] \(band from 3 runs\)"):
        within(1.8, 1.5, 1.7, "loss", measured="3 runs")
    with pytest.raises(ValueError):
        within(1.6, 1.7, 1.5, "loss")
    monkeypatch.setattr(data, "_FALLBACK_IN_USE", True)  # bands are measured on Tiny Shakespeare
    assert within(3.0, 1.5, 1.7, "loss") == 3.0
    assert "fallback corpus" in capsys.readouterr().out


def test_within_reports_instead_of_checking_in_a_quick_pass(monkeypatch, capsys):
    """A learner's COURSE_QUICK=1 run on Tiny Shakespeare trains less than the bands were measured on."""
    monkeypatch.setattr(data, "_FALLBACK_IN_USE", False)
    monkeypatch.setenv("COURSE_QUICK", "1")
    assert within(0.0, 0.55, 0.95, "exact match") == 0.0
    assert "quick pass: exact match = 0; the band [0.55, 0.95] was measured on the full runs" in capsys.readouterr().out
    monkeypatch.setenv("COURSE_QUICK", "0")
    with pytest.raises(AssertionError, match="outside the expected band"):
        within(0.0, 0.55, 0.95, "exact match")
