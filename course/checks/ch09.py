"""Checks for the exercises of chapter 09 (scaling up: BPE tokens and scaling laws)."""

from __future__ import annotations

import math

import numpy as np

from . import ExerciseFailed, call, exercise_check, expect


def _float(value, what: str) -> float:
    if hasattr(value, "item"):
        value = value.item()
    expect(isinstance(value, (int, float)) and not isinstance(value, bool), f"{what}: return a number, got {type(value).__name__}.")
    return float(value)


@exercise_check("bits per character of a text scored token by token")
def check_bits_per_char(to_bits_per_char) -> None:
    """Check bits per character from per-token losses and characters, on cases that tell the usual slips apart.

    The cases have tokens of unequal length and tokens that complete no character (a byte token that
    ends inside a multi-byte character), where a per-token ratio divides by zero.
    """
    ln2 = math.log(2)
    cases = [
        ("a character model (one character per token)", [1.2, 0.4, 2.9, 1.5], [1, 1, 1, 1]),
        ("byte tokens inside a Chinese character (0, 0, then 1 character)", [4.0, 2.5, 0.3, 3.1, 5.2], [2, 0, 0, 1, 3]),
        ("BPE tokens of 1 to 5 characters", [6.1, 2.0, 9.3, 3.2, 0.7], [3, 1, 5, 2, 1]),
    ]
    for what, nats, chars in cases:
        nats_a, chars_a = np.array(nats), np.array(chars)
        shown = f"to_bits_per_char({nats}, {chars})"
        got = call(to_bits_per_char, nats_a.copy(), chars_a.copy())
        if hasattr(got, "item"):
            got = got.item()
        expect(isinstance(got, (int, float)) and not isinstance(got, bool), f"{shown}: return a number, got {type(got).__name__}.")
        got = float(got)
        want = nats_a.sum() / chars_a.sum() / ln2
        if math.isclose(got, want, rel_tol=1e-9):
            continue
        if not math.isfinite(got):
            raise ExerciseFailed(f"{shown} = {got} ({what}): a token that completes no character has 0 characters, so a "
                                 "ratio taken token by token divides by zero. Add up the nats of all tokens and the "
                                 "characters of all tokens first, then divide the totals.")
        with np.errstate(divide="ignore", invalid="ignore"):
            per_token = nats_a / chars_a
        slips = {
            "that is still in nats per character: divide by ln 2 (about 0.693) to get bits": nats_a.sum() / chars_a.sum(),
            "that is bits per *token*: the text's total has to be spread over its characters, not its tokens":
                nats_a.mean() / ln2,
            "that is the mean of per-token ratios (of the tokens that have characters): a ratio of sums is "
            "not a mean of ratios; it weights a 1-character token as much as a 5-character one":
                per_token[np.isfinite(per_token)].mean() / ln2,
            "the factor is upside down: the total is sum(token_nats) nats, shared by sum(token_chars) characters":
                chars_a.sum() / nats_a.sum() / ln2,
            "bits need the logarithm base 2: divide by ln 2, not by ln 10": nats_a.sum() / chars_a.sum() / math.log(10),
            "that multiplies by ln 2 instead of dividing by it": nats_a.sum() / chars_a.sum() * ln2,
            "that divides by the number of tokens that have characters; divide by the number of characters":
                nats_a.sum() / np.count_nonzero(chars_a) / ln2,
        }
        for hint, value in slips.items():
            if math.isfinite(value) and math.isclose(got, value, rel_tol=1e-9):
                raise ExerciseFailed(f"{shown} = {got:.4f} ({what}); {hint}. Expected {want:.4f}.")
        raise ExerciseFailed(f"{shown} = {got:.4f} ({what}), expected {want:.4f}: the text costs sum(token_nats) nats; "
                             "per character divide by sum(token_chars); in bits divide by ln 2.")
    uniform = math.log(65)
    got = _float(call(to_bits_per_char, [uniform] * 10, [1] * 10), "to_bits_per_char on Python lists")
    expect(math.isclose(got, math.log2(65), rel_tol=1e-9),
           f"a model that guesses uniformly among 65 characters pays log2(65) = {math.log2(65):.4f} bits per character; "
           f"you give {got:.4f} (the check passed lists here: np.sum works on lists and arrays alike).")


def _two_numbers(out, what: str, names: str) -> tuple[float, float]:
    """A pair of numbers: a tuple, a list, or a NumPy array or torch tensor of two (float32 is fine)."""
    if hasattr(out, "detach"):
        out = out.detach().cpu().numpy()
    if isinstance(out, np.ndarray):
        expect(out.size == 2, f"{what} returned an array of shape {out.shape}; return a pair {names}.")
        out = tuple(out.reshape(-1))
    expect(isinstance(out, (tuple, list)) and len(out) == 2, f"return a pair {names}.")
    return tuple(_float(v, names) for v in out)  # type: ignore[return-value]


@exercise_check("fitting a power law")
def check_fit_exponent(fit_exponent) -> None:
    """Check a power-law fit on exact and on noisy data, and that it is a straight line in log-log space."""
    x = np.array([1e4, 3e4, 1e5, 3e5, 1e6])
    exact = 50.0 * x ** -0.3
    out = call(fit_exponent, x.copy(), exact.copy())
    A, alpha = _two_numbers(out, "fit_exponent", "(A, alpha)")
    if math.isclose(alpha, -math.log(50.0), rel_tol=1e-5) or math.isclose(A, math.exp(-0.3), rel_tol=1e-5):
        raise ExerciseFailed(f"you find A = {A:.4g}, alpha = {alpha:.4g}: the slope and the intercept are swapped. "
                             "np.polyfit(u, v, 1) returns the slope first: slope, intercept = np.polyfit(...).")
    if math.isclose(alpha, 1 / 0.3, rel_tol=1e-5):
        raise ExerciseFailed(f"alpha = {alpha:.4g} = 1 / 0.3: you fitted ln x against ln loss. np.polyfit(u, v, 1) fits "
                             "v as a line in u: np.polyfit(np.log(x), np.log(loss), 1).")
    if abs(alpha) < 1e-3:
        raise ExerciseFailed(f"alpha = {alpha:.3g}, almost 0: the line was fitted against x itself, not ln x. A power "
                             "law is a straight line in log-log space: take the log of both x and the loss.")
    if math.isclose(alpha, -0.3, rel_tol=1e-6):
        raise ExerciseFailed("alpha has the wrong sign: with loss = A * x**(-alpha), alpha is minus the slope of the line, "
                             "so a loss that falls with x has alpha > 0.")
    if math.isclose(A, math.log(50.0), rel_tol=1e-6):
        raise ExerciseFailed(f"A = {A:.4g} is the intercept of the line, ln A: return exp(intercept).")
    if math.isclose(A, math.log10(50.0), rel_tol=1e-6) or math.isclose(A, 10 ** math.log(50.0), rel_tol=1e-6):
        raise ExerciseFailed(f"A = {A:.4g}: the intercept and the exponentiation use different bases; "
                             "fit ln loss on ln x and return exp(intercept) (or log10 with 10**intercept).")
    expect(math.isclose(alpha, 0.3, rel_tol=1e-6), f"on exact data 50 * x**-0.3 you find alpha = {alpha:.5g}, expected 0.3: "
           "fit a straight line to (ln x, ln loss), e.g. np.polyfit(np.log(x), np.log(loss), 1).")
    expect(math.isclose(A, 50.0, rel_tol=1e-6), f"on exact data 50 * x**-0.3 you find A = {A:.5g}, expected 50.")
    rng = np.random.default_rng(0)
    noisy = exact * np.exp(rng.normal(0, 0.02, size=x.shape))
    A2, alpha2 = _two_numbers(call(fit_exponent, x.copy(), noisy.copy()), "fit_exponent", "(A, alpha)")
    slope, intercept = np.polyfit(np.log(x), np.log(noisy), 1)
    if not (math.isclose(alpha2, -slope, rel_tol=1e-5) and math.isclose(A2, math.exp(intercept), rel_tol=1e-5)):
        ends = (np.log(noisy[-1]) - np.log(noisy[0])) / (np.log(x[-1]) - np.log(x[0]))
        hint = ("that is the line through the first and last points only: least squares uses every point."
                if math.isclose(alpha2, -ends, rel_tol=1e-5) else
                "fit the least-squares line through every point in log-log space, np.polyfit(np.log(x), np.log(loss), 1).")
        raise ExerciseFailed(f"on noisy data you find A = {A2:.4g}, alpha = {alpha2:.4g}; the least-squares line in "
                             f"log-log space gives A = {math.exp(intercept):.4g}, alpha = {-slope:.4g}: {hint}")


@exercise_check("the compute-optimal split")
def check_compute_optimal(compute_optimal_split) -> None:
    """Check N and D for a budget C = 6 N D at a given number of tokens per parameter."""
    tol = 1e-4  # N and D rounded to whole numbers (the smallest N here is 122,474.5), or float32, are fine
    for flops, r in ((1e21, 20.0), (4.5e12, 50.0), (6e18, 1.0)):
        out = call(compute_optimal_split, flops, r)
        n, d = _two_numbers(out, "compute_optimal_split", "(N, D)")
        want_n = math.sqrt(flops / (6 * r))
        want_d = r * want_n
        if math.isclose(n, want_d, rel_tol=tol) and math.isclose(d, want_n, rel_tol=tol) and r != 1:
            raise ExerciseFailed("N and D are swapped: return (parameters, tokens); D = tokens_per_param x N is the larger one.")
        if math.isclose(n, math.sqrt(flops / r), rel_tol=tol):
            raise ExerciseFailed(f"N = {n:.4g} leaves out the 6 of C = 6 N D (2 FLOPs per parameter and token forward, 4 backward).")
        if math.isclose(n, math.sqrt(flops / (2 * r)), rel_tol=tol):
            raise ExerciseFailed(f"N = {n:.4g} counts 2 N D, the forward pass only; training also runs the backward pass: C = 6 N D.")
        if math.isclose(n, flops / (6 * r), rel_tol=tol):
            raise ExerciseFailed(f"N = {n:.4g} is C / (6 r), which is N², not N: C = 6 N D = 6 r N², so N = sqrt(C / (6 r)); "
                                 "the square root is missing.")
        if math.isclose(n, math.sqrt(flops * r / 6), rel_tol=tol) and r != 1:
            raise ExerciseFailed(f"N = {n:.4g} = sqrt(C r / 6): you multiplied by tokens_per_param where you divide. "
                                 "C = 6 N D = 6 r N², so N = sqrt(C / (6 r)).")
        if math.isclose(n, math.sqrt(flops / 6), rel_tol=tol) and r != 1:
            raise ExerciseFailed(f"N = {n:.4g} = sqrt(C / 6) leaves out tokens_per_param: with D = r N, C = 6 r N².")
        expect(math.isclose(n, want_n, rel_tol=tol),
               f"for C = {flops:.3g} and {r:g} tokens per parameter, N = {n:.4g}, expected {want_n:.4g}: "
               "put D = r N into C = 6 N D and solve for N.")
        if math.isclose(d, n / r, rel_tol=tol) and r != 1:
            raise ExerciseFailed(f"D = {d:.4g} = N / tokens_per_param: the ratio is tokens per parameter, D / N, "
                                 "so D = tokens_per_param x N.")
        expect(math.isclose(d, want_d, rel_tol=tol), f"D = {d:.4g}, expected {want_d:.4g} (= tokens_per_param x N).")
        expect(math.isclose(6 * n * d, flops, rel_tol=3 * tol), f"6 N D = {6 * n * d:.4g} does not spend the budget {flops:.3g}.")


@exercise_check("the optimum of an IsoFLOP parabola")
def check_isoflop_optimum(isoflop_optimum) -> None:
    """Check (N*, L*) of a parabola in ln N on exact and noisy IsoFLOP data, and a refusal when there is no minimum.

    The optimum lies between two runs of the exact data (so the lowest run is not the answer), and
    the runs are spaced evenly in ln N (so a fit in N itself, which crowds the small models, is off).
    """
    n = np.array([2e4, 5e4, 1e5, 2.5e5, 6e5, 1.5e6])
    u = np.log(n)
    n_star = 1.3e5
    exact = 2.5 + 0.08 * (u - math.log(n_star)) ** 2
    out = call(isoflop_optimum, n.copy(), exact.copy())
    expect(isinstance(out, (tuple, list)) and len(out) == 2, "return a pair (N*, L*): the best size and its loss.")
    got_n, got_l = (_float(v, "N* and L*") for v in out)
    if not math.isclose(got_n, n_star, rel_tol=1e-6):
        if math.isclose(got_l, n_star, rel_tol=1e-6) and math.isclose(got_n, 2.5, rel_tol=1e-6):
            raise ExerciseFailed("N* and L* are swapped: return (N*, L*), the size first.")
        if math.isclose(got_n, math.log(n_star), rel_tol=1e-6):
            raise ExerciseFailed(f"N* = {got_n:.4g} is ln N*, the vertex of the parabola in u = ln N: return exp(u*) "
                                 f"= {n_star:,.0f} parameters.")
        if math.isclose(got_n, math.exp(math.log10(n_star)), rel_tol=1e-6):
            raise ExerciseFailed(f"N* = {got_n:.4g}: the fit used log10 N but the vertex was turned back with exp; use the "
                                 "same base both ways (np.log with np.exp, or np.log10 with 10**).")
        if math.isclose(got_n, float(n[np.argmin(exact)]), rel_tol=1e-9):
            raise ExerciseFailed(f"N* = {got_n:,.0f} is the lowest of the runs, not the optimum: the runs only sample "
                                 "the curve. Fit the parabola and take its vertex, u* = -b / (2a); here it lies "
                                 f"between two runs, at {n_star:,.0f}.")
        a, b, _ = np.polyfit(n, exact, 2)
        if a != 0 and math.isclose(got_n, -b / (2 * a), rel_tol=1e-6):
            raise ExerciseFailed(f"N* = {got_n:,.0f}: that parabola is fitted in N itself. IsoFLOP curves are parabolas in "
                                 "ln N (the sizes are spread over orders of magnitude): fit loss against np.log(n_params).")
        raise ExerciseFailed(f"on exact data 2.5 + 0.08 (ln N - ln {n_star:,.0f})^2 you find N* = {got_n:,.6g}, expected "
                             f"{n_star:,.0f}: fit a (ln N)^2 + b ln N + c (np.polyfit(np.log(n), loss, 2)) and return "
                             "exp(-b / (2a)).")
    if not math.isclose(got_l, 2.5, rel_tol=1e-6):
        if math.isclose(got_l, float(exact.min()), rel_tol=1e-9):
            raise ExerciseFailed(f"L* = {got_l:.4f} is the lowest run's loss; return the parabola's value at its vertex "
                                 "(here 2.5), which lies below every run.")
        raise ExerciseFailed(f"L* = {got_l:.6g}, expected 2.5: evaluate a u*^2 + b u* + c at the vertex u* = -b / (2a).")
    rng = np.random.default_rng(0)
    noisy = exact + rng.normal(0, 0.01, size=n.shape)
    got_n, got_l = (_float(v, "N* and L*") for v in call(isoflop_optimum, list(n), list(noisy)))
    a, b, c = np.polyfit(u, noisy, 2)
    want_n, want_l = math.exp(-b / (2 * a)), c - b * b / (4 * a)
    expect(math.isclose(got_n, want_n, rel_tol=1e-6) and math.isclose(got_l, want_l, rel_tol=1e-6),
           f"on noisy data (given as Python lists) you find N* = {got_n:,.0f}, L* = {got_l:.4f}; the least-squares "
           f"parabola in ln N gives N* = {want_n:,.0f}, L* = {want_l:.4f}. Use every point in the fit.")
    hill = 3.0 - 0.05 * (u - math.log(n_star)) ** 2  # no minimum: the losses curve downward
    try:
        out = isoflop_optimum(n.copy(), hill.copy())
    except ValueError:
        return
    except Exception as err:  # the learner's bug, in words
        raise ExerciseFailed(f"on losses that curve downward, `isoflop_optimum` raised {type(err).__name__}: {err}; "
                             "raise ValueError instead (a <= 0: no minimum).") from err
    raise ExerciseFailed(f"on losses that curve downward (a < 0) you returned {out}: that vertex is the *worst* size, a "
                         "maximum. Check the sign of a and raise ValueError when a <= 0: there is no optimum to read off.")
