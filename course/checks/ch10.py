"""Checks for the exercises of chapter 10 (the LLM landscape: encoders, decoders, data)."""

from __future__ import annotations

import math

import numpy as np

from . import ExerciseFailed, _as_array, call, exercise_check, expect


def _mask(value, what: str, t: int) -> np.ndarray:
    m = _as_array(value)
    expect(m.shape == (t, t), f"{what}: return a ({t}, {t}) array of True/False, got shape {m.shape}.")
    expect(m.dtype == bool or np.isin(m, (0, 1)).all(), f"{what}: the entries must be True/False (or 1/0).")
    return m.astype(bool)


@exercise_check("attention masks of the three families")
def check_attention_mask(attention_mask) -> None:
    """Check causal, bidirectional and prefix masks (True: query row i may attend to key column j)."""
    t = 5
    causal = np.tril(np.ones((t, t), dtype=bool))
    got = _mask(call(attention_mask, "causal", t), 'attention_mask("causal", 5)', t)
    if not np.array_equal(got, causal):
        if np.array_equal(got, causal.T):
            raise ExerciseFailed("your causal mask lets each position see the *future* (upper triangle): row i is the "
                                 "query, so it may see columns j <= i, the lower triangle (np.tril).")
        if np.array_equal(got, np.tril(np.ones((t, t), dtype=bool), -1)):
            raise ExerciseFailed("your causal mask hides the diagonal: a position may attend to itself (j <= i, not j < i); "
                                 "without it the first position sees nothing at all.")
        if np.array_equal(got, ~causal):
            raise ExerciseFailed("your causal mask is inverted: True must mean *may attend*.")
        raise ExerciseFailed(f"the causal mask should be True where j <= i (np.tril of ones); got\n{got.astype(int)}")
    got = _mask(call(attention_mask, "bidirectional", t), 'attention_mask("bidirectional", 5)', t)
    expect(got.all(), "an encoder's (bidirectional) mask lets every position see every other: all True.")
    for prefix in (0, 2, 5):
        want = causal.copy()
        want[:prefix, :prefix] = True
        got = _mask(call(attention_mask, "prefix", t, prefix), f'attention_mask("prefix", 5, {prefix})', t)
        if np.array_equal(got, want):
            continue
        leak = want.copy()
        leak[:prefix, :] = True
        if np.array_equal(got, leak):
            raise ExerciseFailed(f"with prefix={prefix}, your prefix rows also see the positions after the prefix: the "
                                 "prefix is bidirectional *within itself* only, the rest is written causally.")
        raise ExerciseFailed(f"attention_mask(\"prefix\", 5, {prefix}) should be causal, plus all True in the top-left "
                             f"{prefix} x {prefix} block; got\n{got.astype(int)}")


@exercise_check("the LSH S-curve")
def check_lsh_probability(lsh_probability) -> None:
    """Check P(candidate) = 1 - (1 - s**rows)**bands on cases that tell the usual slips apart."""
    for s, bands, rows in [(0.8, 16, 8), (0.5, 20, 5), (0.9, 4, 3), (0.3, 10, 2)]:
        got = call(lsh_probability, s, bands, rows)
        got = float(_as_array(got))
        want = 1 - (1 - s ** rows) ** bands
        if math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12):
            continue
        slips = {
            "bands and rows are swapped: a band of `rows` rows all agree with probability s**rows": 1 - (1 - s ** bands) ** rows,
            "that is the probability that *no* band agrees: the pair is a candidate when at least one does, 1 - that":
                (1 - s ** rows) ** bands,
            "that is the chance that one given band agrees; any of the `bands` bands may make the pair a candidate":
                s ** rows,
            "that needs every row of every band to agree; one whole band is enough": s ** (rows * bands),
        }
        for hint, value in slips.items():
            if math.isclose(got, value, rel_tol=1e-9, abs_tol=1e-12):
                raise ExerciseFailed(f"lsh_probability({s}, {bands}, {rows}) = {got:.4f}: {hint}. Expected {want:.4f}.")
        raise ExerciseFailed(f"lsh_probability({s}, {bands}, {rows}) = {got:.4f}, expected {want:.4f} = 1 - (1 - s**rows)**bands.")
    expect(math.isclose(float(_as_array(call(lsh_probability, 1.0, 7, 3))), 1.0), "identical documents (s = 1) are always candidates.")
    expect(float(_as_array(call(lsh_probability, 0.0, 7, 3))) == 0.0, "documents with nothing in common (s = 0) never are.")


@exercise_check("reading an alignment off cross-attention")
def check_alignment_accuracy(alignment_accuracy) -> None:
    """Check the share of target words whose strongest cross-attention link is their true source word."""
    rng = np.random.default_rng(0)
    w = rng.random((7, 7))  # (target words, source words); square, so that an argmax down the columns also runs
    w /= w.sum(1, keepdims=True)
    truth = [int(j) for j in w.argmax(1)]
    truth[1] = (truth[1] + 1) % 7  # two of the seven are wrong
    truth[4] = (truth[4] + 3) % 7
    got = float(_as_array(call(alignment_accuracy, w.copy(), list(truth))))
    want = 5 / 7
    if not math.isclose(got, want):
        if math.isclose(got, 5.0):
            raise ExerciseFailed("you returned the number of hits (5); return the share of target words, hits / number "
                                 "of target words.")
        if math.isclose(got, float(np.mean(w.argmax(0) == np.array(truth)))):
            raise ExerciseFailed("each *target* word (a row) attends over the source words (the columns): take the argmax "
                                 "along the last axis, weights[i].argmax(), not down a column.")
        raise ExerciseFailed(f"alignment_accuracy gave {got:.4f}; expected {want:.4f}: for each target word i, is "
                             "weights[i].argmax() == alignment[i]? Return the fraction of yes.")
    perfect = np.eye(5)[[4, 3, 2, 1, 0]]  # an anti-diagonal: reversal
    expect(math.isclose(float(_as_array(call(alignment_accuracy, perfect, [4, 3, 2, 1, 0]))), 1.0),
           "on an exact anti-diagonal with the reversed alignment, every word is right: 1.0.")


__all__ = ["check_alignment_accuracy", "check_attention_mask", "check_lsh_probability"]
