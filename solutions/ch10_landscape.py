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


def pick_bands(num_perm, threshold, far, max_miss):
    """(bands, rows), bands * rows = num_perm: miss a pair at `threshold` at most `max_miss` of the time,
    and among those splits make the fewest candidates of pairs at the lower similarity `far`."""
    best = None
    for rows in range(1, num_perm + 1):
        if num_perm % rows:  # every hash in exactly one band
            continue
        bands = num_perm // rows
        miss = (1 - threshold**rows) ** bands  # no band agrees: the pair is never compared
        false = 1 - (1 - far**rows) ** bands  # some band agrees: a pair that is not a duplicate is compared
        if miss <= max_miss and (best is None or false < best[0]):
            best = (false, bands, rows)
    if best is None:
        raise ValueError(f"no split of {num_perm} hashes misses a pair at {threshold} at most {max_miss:.0%} of the time")
    return best[1], best[2]


def alignment_accuracy(weights, alignment):
    """The share of target words (rows) whose largest cross-attention weight is on their true source word."""
    predicted = np.asarray(weights).argmax(axis=-1)
    return float(np.mean(predicted == np.asarray(alignment)))
