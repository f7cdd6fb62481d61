"""Solutions to the exercises of chapter 09 (scaling up: BPE tokens and scaling laws)."""

import math

import numpy as np


def to_bits_per_char(token_nats, token_chars):
    """Bits per character of a text scored token by token: each token's loss (nats), the characters it completes."""
    total_nats = np.sum(token_nats)  # the code length of the whole text, in nats
    n_chars = np.sum(token_chars)  # its characters; a token that ends inside a character completes 0 of them
    return float(total_nats / n_chars / np.log(2))  # per character, in bits


def isoflop_optimum(n_params, loss):
    """Fit loss = a (ln N)^2 + b ln N + c; return (N*, L*) at the parabola's minimum."""
    u = np.log(np.asarray(n_params, dtype=float))  # the parabola lives in ln N, not in N
    a, b, c = np.polyfit(u, np.asarray(loss, dtype=float), 2)
    if a <= 0:
        raise ValueError("the losses curve downward (a <= 0): the vertex is a maximum, there is no optimum")
    u_opt = -b / (2 * a)  # the vertex, not the lowest run
    return float(np.exp(u_opt)), float(a * u_opt**2 + b * u_opt + c)


def fit_exponent(x, loss):
    """Fit loss = A * x**(-alpha) by a straight line through (ln x, ln loss); return (A, alpha)."""
    slope, intercept = np.polyfit(np.log(x), np.log(loss), 1)
    return float(np.exp(intercept)), float(-slope)


def compute_optimal_split(flops, tokens_per_param):
    """N and D with 6 * N * D = flops and D = tokens_per_param * N."""
    n = math.sqrt(flops / (6 * tokens_per_param))
    return n, tokens_per_param * n
