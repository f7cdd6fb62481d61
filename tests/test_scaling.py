"""Tests of course/scaling.py (chapter 09's foundation): bits per character, power-law and IsoFLOP fits."""

from __future__ import annotations

import math

import numpy as np
import pytest

from course.scaling import bits_per_char, fit_isoflop, fit_power_law


def test_bits_per_char_of_a_character_model_is_its_loss_in_bits():
    assert bits_per_char(1.0, 1000, 1000) == pytest.approx(1 / math.log(2))


def test_bits_per_char_is_the_same_for_the_same_code_length_whatever_the_tokens():
    # 1,000 characters coded in 1,000 nats: as 1,000 character tokens or as 250 BPE tokens
    assert bits_per_char(1.0, 1000, 1000) == pytest.approx(bits_per_char(4.0, 250, 1000))


@pytest.mark.parametrize("args, match", [((1.0, 0, 10), "positive"), ((1.0, 10, 0), "positive"),
                                         ((-0.1, 10, 10), ">= 0"), ((float("nan"), 10, 10), "finite")])
def test_bits_per_char_rejects_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        bits_per_char(*args)


def test_power_law_recovers_a_noiseless_law():
    x = np.array([1e5, 3e5, 1e6, 3e6, 1e7])
    fit = fit_power_law(x, 40.0 * x ** -0.28)
    assert fit.alpha == pytest.approx(0.28, rel=1e-12) and fit.A == pytest.approx(40.0, rel=1e-10)
    assert fit.alpha_stderr == pytest.approx(0.0, abs=1e-12) and fit.r2 == pytest.approx(1.0)
    np.testing.assert_allclose(fit(x), 40.0 * x ** -0.28, rtol=1e-12)
    assert "alpha = 0.280" in fit.describe("N")


def test_power_law_with_a_fixed_and_with_a_searched_irreducible_loss():
    x = np.geomspace(1e4, 1e8, 9)
    y = 1.2 + 30.0 * x ** -0.35
    fixed = fit_power_law(x, y, irreducible=1.2)
    assert fixed.alpha == pytest.approx(0.35, rel=1e-10) and fixed.E == 1.2
    searched = fit_power_law(x, y, irreducible=True)
    assert searched.E == pytest.approx(1.2, abs=1e-4) and searched.alpha == pytest.approx(0.35, abs=1e-3)
    pure = fit_power_law(x, y)
    assert pure.alpha < 0.35 and pure.r2 < searched.r2, "ignoring the floor flattens the fitted exponent"


def test_power_law_standard_error_agrees_with_numpy_polyfit():
    rng = np.random.default_rng(0)
    x = np.geomspace(1e5, 1e8, 12)
    y = 20.0 * x ** -0.3 * np.exp(rng.normal(0, 0.03, size=x.size))
    fit = fit_power_law(x, y)
    (slope, intercept), cov = np.polyfit(np.log(x), np.log(y), 1, cov=True)
    assert fit.alpha == pytest.approx(-slope, rel=1e-10) and fit.A == pytest.approx(math.exp(intercept), rel=1e-10)
    assert fit.alpha_stderr == pytest.approx(math.sqrt(cov[0, 0]), rel=1e-8)
    assert fit.r2 == pytest.approx(np.corrcoef(np.log(x), np.log(y))[0, 1] ** 2, rel=1e-10)
    assert abs(fit.alpha - 0.3) < 3 * fit.alpha_stderr


@pytest.mark.parametrize("x, y, kwargs, match", [
    ([1, 2], [1, 2], {}, "at least 3"),
    ([1, 2, 3], [1, 2], {}, "same length"),
    ([1, -2, 3], [1, 2, 3], {}, "> 0"),
    ([2, 2, 2], [1, 2, 3], {}, "single value"),
    ([1, 2, 3], [3, 2, 1], {"irreducible": 1.5}, r"\[0, min"),
])
def test_power_law_rejects_bad_input(x, y, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit_power_law(x, y, **kwargs)


def test_isoflop_reads_off_the_optimum_of_a_parabola_in_log_n():
    n = np.geomspace(1e5, 1e7, 7)
    n_star = 8e5
    loss = 0.15 * (np.log(n) - math.log(n_star)) ** 2 + 1.9
    fit = fit_isoflop(1e15, n, loss)
    assert fit.n_opt == pytest.approx(n_star, rel=1e-8) and fit.loss_opt == pytest.approx(1.9, abs=1e-10)
    assert fit.tokens_opt == pytest.approx(1e15 / (6 * n_star), rel=1e-8)
    assert fit.tokens_per_parameter == pytest.approx(fit.tokens_opt / n_star)
    np.testing.assert_allclose(fit(n), loss, atol=1e-10)


def test_isoflop_around_fits_only_the_neighbourhood_of_the_lowest_run():
    # A curve that is a parabola near its minimum and bends away from it far out (as real IsoFLOP
    # profiles do): the fit to every run is pulled off the minimum, the fit around it is not.
    n = np.geomspace(1e4, 1e7, 10)
    u, u_star = np.log(n), math.log(2e5)
    loss = 0.1 * (u - u_star) ** 2 + 2.0 + 0.3 * np.clip(u - u_star - 2.0, 0, None) ** 3
    everything = fit_isoflop(1e15, n, loss)
    near = fit_isoflop(1e15, n, loss, tokens=1e15 / (6 * n), around=2)
    assert abs(math.log(everything.n_opt / 2e5)) > 0.2  # the far runs pull the minimum
    assert near.n_opt == pytest.approx(2e5, rel=1e-8) and near.loss_opt == pytest.approx(2.0, abs=1e-10)
    i = int(np.argmin(loss))
    assert near.n_range == (pytest.approx(n[i - 2]), pytest.approx(n[i + 2]))
    assert everything.n_range == (pytest.approx(n[0]), pytest.approx(n[-1]))
    assert near.tokens_opt == pytest.approx(1e15 / (6 * 2e5), rel=1e-6)  # read off the fitted runs' tokens
    # the lowest run at the edge: one side only, and the optimum must still lie among the fitted sizes
    with pytest.raises(ValueError, match="outside the sizes tried"):
        fit_isoflop(1e15, n, 0.1 * (u - math.log(1e3)) ** 2 + 2, around=2)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="around"):
            fit_isoflop(1e15, n, loss, around=bad)


def test_isoflop_refuses_what_has_no_minimum_in_the_grid():
    n = np.geomspace(1e5, 1e7, 5)
    with pytest.raises(ValueError, match="opens downward"):
        fit_isoflop(1e15, n, 3.0 - 0.1 * (np.log(n) - 13) ** 2)
    with pytest.raises(ValueError, match="outside the sizes tried"):
        fit_isoflop(1e15, n, 0.1 * (np.log(n) - math.log(1e9)) ** 2 + 2)
    with pytest.raises(ValueError, match="3 different"):
        fit_isoflop(1e15, [1e5, 1e5, 1e6], [2.0, 2.1, 2.2])
    with pytest.raises(ValueError, match="positive"):
        fit_isoflop(0, n, np.ones(5))
