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


@exercise_check("bits per character")
def check_bits_per_char(to_bits_per_char) -> None:
    """Check the conversion from nats per token to bits per character on cases that tell the usual slips apart."""
    cases = [(1.5, 1000, 1000), (3.2, 400, 1000), (6.0, 250, 1000), (0.9, 1200, 900)]
    for loss, n_tok, n_chr in cases:
        got = _float(call(to_bits_per_char, loss, n_tok, n_chr), f"to_bits_per_char({loss}, {n_tok}, {n_chr})")
        want = loss * n_tok / n_chr / math.log(2)
        if math.isclose(got, want, rel_tol=1e-9):
            continue
        slips = {
            "that is still in nats: divide by ln 2 (about 0.693) to get bits": loss * n_tok / n_chr,
            "that is bits per token: a token stands for n_chars / n_tokens characters; spread the text's total over its characters":
                loss / math.log(2),
            "the token/character factor is upside down: the total is loss x n_tokens nats, shared by n_chars characters":
                loss * n_chr / n_tok / math.log(2),
            "bits need the logarithm base 2: divide by ln 2, not by ln 10": loss * n_tok / n_chr / math.log(10),
            "that multiplies by ln 2 instead of dividing by it": loss * n_tok / n_chr * math.log(2),
        }
        for hint, value in slips.items():
            if math.isclose(got, value, rel_tol=1e-9):
                raise ExerciseFailed(f"to_bits_per_char({loss}, {n_tok}, {n_chr}) = {got:.4f}; {hint}. Expected {want:.4f}.")
        raise ExerciseFailed(f"to_bits_per_char({loss}, {n_tok}, {n_chr}) = {got:.4f}, expected {want:.4f}: "
                             "total nats = loss x n_tokens; per character divide by n_chars; in bits divide by ln 2.")
    same = _float(call(to_bits_per_char, 2.0, 500, 500), "to_bits_per_char(2.0, 500, 500)")
    expect(math.isclose(same, 2.0 / math.log(2), rel_tol=1e-9),
           "with one token per character, bits per character is just the loss divided by ln 2.")


@exercise_check("fitting a power law")
def check_fit_exponent(fit_exponent) -> None:
    """Check a power-law fit on exact and on noisy data, and that it is a straight line in log-log space."""
    x = np.array([1e4, 3e4, 1e5, 3e5, 1e6])
    exact = 50.0 * x ** -0.3
    out = call(fit_exponent, x.copy(), exact.copy())
    expect(isinstance(out, tuple) and len(out) == 2, "return a pair (A, alpha).")
    A, alpha = (_float(v, "A and alpha") for v in out)
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
    A2, alpha2 = (_float(v, "A and alpha") for v in call(fit_exponent, x.copy(), noisy.copy()))
    slope, intercept = np.polyfit(np.log(x), np.log(noisy), 1)
    if not (math.isclose(alpha2, -slope, rel_tol=1e-6) and math.isclose(A2, math.exp(intercept), rel_tol=1e-6)):
        raise ExerciseFailed(f"on noisy data you find A = {A2:.4g}, alpha = {alpha2:.4g}; the least-squares line in "
                             f"log-log space gives A = {math.exp(intercept):.4g}, alpha = {-slope:.4g}. Fit in log space: "
                             "a fit of the raw losses is dominated by the largest values.")


@exercise_check("the compute-optimal split")
def check_compute_optimal(compute_optimal_split) -> None:
    """Check N and D for a budget C = 6 N D at a given number of tokens per parameter."""
    for flops, r in ((1e21, 20.0), (4.5e12, 50.0), (6e18, 1.0)):
        out = call(compute_optimal_split, flops, r)
        expect(isinstance(out, tuple) and len(out) == 2, "return a pair (N, D).")
        n, d = (_float(v, "N and D") for v in out)
        want_n = math.sqrt(flops / (6 * r))
        want_d = r * want_n
        if math.isclose(n, want_d, rel_tol=1e-6) and math.isclose(d, want_n, rel_tol=1e-6) and r != 1:
            raise ExerciseFailed("N and D are swapped: return (parameters, tokens); D = tokens_per_param x N is the larger one.")
        if math.isclose(n, math.sqrt(flops / r), rel_tol=1e-6):
            raise ExerciseFailed(f"N = {n:.4g} leaves out the 6 of C = 6 N D (2 FLOPs per parameter and token forward, 4 backward).")
        if math.isclose(n, math.sqrt(flops / (2 * r)), rel_tol=1e-6):
            raise ExerciseFailed(f"N = {n:.4g} counts 2 N D, the forward pass only; training also runs the backward pass: C = 6 N D.")
        expect(math.isclose(n, want_n, rel_tol=1e-6),
               f"for C = {flops:.3g} and {r:g} tokens per parameter, N = {n:.4g}, expected {want_n:.4g}: "
               "put D = r N into C = 6 N D and solve for N.")
        expect(math.isclose(d, want_d, rel_tol=1e-6), f"D = {d:.4g}, expected {want_d:.4g} (= tokens_per_param x N).")
        expect(math.isclose(6 * n * d, flops, rel_tol=1e-6), f"6 N D = {6 * n * d:.4g} does not spend the budget {flops:.3g}.")
