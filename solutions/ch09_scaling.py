"""Solutions to the exercises of chapter 09 (scaling up: BPE tokens and scaling laws)."""

import math

import numpy as np


def to_bits_per_char(loss_per_token, n_tokens, n_chars):
    """Mean loss in nats per token over n_tokens tokens -> bits per character of the n_chars characters they encode."""
    total_nats = loss_per_token * n_tokens  # the code length of the whole text, in nats
    return total_nats / n_chars / math.log(2)  # per character, in bits


def fit_exponent(x, loss):
    """Fit loss = A * x**(-alpha) by a straight line through (ln x, ln loss); return (A, alpha)."""
    slope, intercept = np.polyfit(np.log(x), np.log(loss), 1)
    return float(np.exp(intercept)), float(-slope)


def compute_optimal_split(flops, tokens_per_param):
    """N and D with 6 * N * D = flops and D = tokens_per_param * N."""
    n = math.sqrt(flops / (6 * tokens_per_param))
    return n, tokens_per_param * n
