"""Solutions to the exercises of chapter 10 (the LLM landscape: encoders, decoders, data)."""

import numpy as np


def attention_mask(kind, t, prefix=0):
    """(t, t) bool: True where query row i may attend to key column j."""
    mask = np.tril(np.ones((t, t), dtype=bool))  # causal: j <= i
    if kind == "bidirectional":
        mask[:] = True
    elif kind == "prefix":
        mask[:prefix, :prefix] = True  # the prefix sees itself both ways; the rest stays causal
    return mask


def lsh_probability(s, bands, rows):
    """The chance that two documents of Jaccard similarity s agree on at least one whole band."""
    return 1 - (1 - s ** rows) ** bands


def alignment_accuracy(weights, alignment):
    """The share of target words (rows) whose largest cross-attention weight is on their true source word."""
    predicted = np.asarray(weights).argmax(axis=-1)
    return float(np.mean(predicted == np.asarray(alignment)))
