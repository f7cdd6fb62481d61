"""Checks for the exercises of chapter 10 (the LLM landscape: encoders, decoders, data)."""

from __future__ import annotations

import math

import numpy as np

from . import ExerciseFailed, _as_array, call, exercise_check, expect


def _mask(value, what: str, t: int) -> np.ndarray:
    m = _as_array(value)
    expect(m.shape == (t, t), f"{what}: return a ({t}, {t}) array of True/False, got shape {m.shape}.")
    if m.dtype != bool and np.isin(m, (0.0, -np.inf)).all() and (m == -np.inf).any():
        raise ExerciseFailed(f"{what} is an additive mask (0 where allowed, -inf where hidden), the form added to the "
                             "scores. Return the boolean form: True where query i may attend to key j.")
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
        if prefix > 1 and np.array_equal(got, causal):
            raise ExerciseFailed(f"with prefix={prefix} your mask is plain causal: position 0 must also see position 1, "
                                 "since the first `prefix` positions see each other both ways (mask[:prefix, :prefix] = True).")
        wider = causal.copy()
        wider[: prefix + 1, : prefix + 1] = True
        if np.array_equal(got, wider):
            raise ExerciseFailed(f"with prefix={prefix} your bidirectional block is {prefix + 1} x {prefix + 1}, one too "
                                 f"large: the prefix is positions 0 .. {prefix - 1}, mask[:prefix, :prefix] (a slice "
                                 "excludes its end).")
        raise ExerciseFailed(f"attention_mask(\"prefix\", 5, {prefix}) should be causal, plus all True in the top-left "
                             f"{prefix} x {prefix} block; got\n{got.astype(int)}")


def _lsh_candidate(s: float, bands: int, rows: int) -> float:
    """P(a pair of Jaccard s shares at least one whole band) = 1 - (1 - s**rows)**bands."""
    return 1 - (1 - s ** rows) ** bands


def _best_bands(num_perm: int, threshold: float, far: float, max_miss: float) -> tuple[int, int] | None:
    best = None
    for rows in range(1, num_perm + 1):
        if num_perm % rows:
            continue
        bands = num_perm // rows
        if 1 - _lsh_candidate(threshold, bands, rows) <= max_miss:
            false = _lsh_candidate(far, bands, rows)
            if best is None or false < best[0]:
                best = (false, bands, rows)
    return None if best is None else (best[1], best[2])


@exercise_check("choosing LSH bands and rows")
def check_lsh_bands(pick_bands) -> None:
    """Check the (bands, rows) choice: every hash used, the miss budget at the threshold kept, the fewest far pairs."""
    cases = [(128, 0.8, 0.5, 0.1), (128, 0.8, 0.5, 0.01), (100, 0.7, 0.3, 0.05), (120, 0.9, 0.6, 0.02), (64, 0.5, 0.2, 0.2)]
    for num_perm, threshold, far, max_miss in cases:
        shown = f"pick_bands({num_perm}, {threshold}, far={far}, max_miss={max_miss})"
        out = call(pick_bands, num_perm, threshold, far, max_miss)
        expect(isinstance(out, (tuple, list)) and len(out) == 2, f"{shown}: return a pair (bands, rows).")
        try:
            bands, rows = (int(v) for v in out)
        except (TypeError, ValueError):
            raise ExerciseFailed(f"{shown} returned {out!r}: return two whole numbers (bands, rows).") from None
        want = _best_bands(num_perm, threshold, far, max_miss)
        if (bands, rows) == want:
            continue
        expect(bands >= 1 and rows >= 1, f"{shown} returned ({bands}, {rows}): both must be at least 1.")
        if bands * rows != num_perm:
            raise ExerciseFailed(f"{shown} returned {bands} bands x {rows} rows = {bands * rows} hashes; the signature has "
                                 f"{num_perm}: bands x rows must equal num_perm (try only the divisors of num_perm).")
        if (rows, bands) == want:
            raise ExerciseFailed(f"{shown} returned ({bands}, {rows}): bands and rows are swapped; the answer is "
                                 f"{want[0]} bands of {want[1]} rows. Return (bands, rows).")
        miss = 1 - _lsh_candidate(threshold, bands, rows)
        false = _lsh_candidate(far, bands, rows)
        if miss > max_miss:
            raise ExerciseFailed(
                f"{shown} returned {bands} bands x {rows} rows: a pair of Jaccard {threshold} then shares no band with "
                f"probability {miss:.1%}, more than max_miss = {max_miss:.0%}. The miss is the chance that *no* band "
                f"agrees, (1 - s**rows)**bands; keep only the splits where it is at most max_miss.")
        best_false = _lsh_candidate(far, *want)
        raise ExerciseFailed(
            f"{shown} returned {bands} bands x {rows} rows: it keeps the miss budget, but a pair of Jaccard {far} becomes "
            f"a candidate with probability {false:.1%}, while {want[0]} bands x {want[1]} rows keeps the budget too and "
            f"compares only {best_false:.1%}. Among the splits that keep the budget, choose the one with the fewest false "
            "candidates at far (more rows per band make a later, steeper step).")
    try:
        out = pick_bands(4, 0.5, 0.2, 0.01)
    except ValueError:
        return
    except Exception as err:  # the learner's bug, in words
        raise ExerciseFailed(f"pick_bands(4, 0.5, 0.2, 0.01) raised {type(err).__name__}: {err}; when no split keeps the "
                             "miss budget, raise ValueError.") from err
    raise ExerciseFailed(f"pick_bands(4, 0.5, 0.2, 0.01) returned {out}, but no split of 4 hashes misses a pair of Jaccard "
                         "0.5 less than 1% of the time (even 4 bands of 1 row miss 6.25%): raise ValueError.")


def _cross_attention(pred: list[int], low: list[int], sources: int) -> np.ndarray:
    """A (targets, sources) map, rows summing to 1: row i peaks at column pred[i] and is lowest at column low[i]."""
    w = np.random.default_rng(0).uniform(0.02, 0.08, size=(len(pred), sources))
    w[np.arange(len(pred)), low] = 0.005
    w[np.arange(len(pred)), pred] = 0.5
    return w / w.sum(axis=1, keepdims=True)


# A square map (10 x 10): the row peaks follow the permutation (0 1)(2 3 4 5 6 7 8 9), so reading the argmax
# down the columns gives its inverse. Six words are right; 6 and 7 are off by one (truth = peak + 1), 8 is
# the row's lowest weight, 9 is the column peak. Every usual slip then gives its own value:
# 0.6 right, 0.4 the misses, 0.3 down the columns, 0.2 with a 1-based index, 0.1 with argmin.
_SQUARE_PEAK = [1, 0, 3, 4, 5, 6, 7, 8, 9, 2]
_SQUARE_LOW = [5, 5, 6, 7, 8, 9, 0, 1, 0, 4]
_SQUARE_TRUTH = [1, 0, 3, 4, 5, 6, 8, 9, 0, 8]
# More target words than source words (8 x 6): five right (0.625); 5 and 6 off by one, 7 the lowest weight.
_WIDE_PEAK = [0, 1, 2, 3, 4, 3, 4, 5]
_WIDE_LOW = [5, 5, 5, 5, 5, 0, 0, 1]
_WIDE_TRUTH = [0, 1, 2, 3, 4, 4, 5, 1]


def _alignment_slips(w: np.ndarray, truth: list[int]) -> dict[str, float]:
    """What the usual slips return on (w, truth), keyed by the message that names them."""
    t = np.array(truth)
    targets, sources = w.shape
    hits = int((w.argmax(-1) == t).sum())
    slips = {
        f"that is the share of misses, {targets - hits} of {targets}: return the share of hits, the words whose "
        "argmax *is* their true source": 1 - hits / targets,
        "that reads the *lowest* weight of each row (argmin): the alignment is where the attention is largest, "
        "weights[i].argmax()": float(np.mean(w.argmin(-1) == t)),
        "you compared argmax + 1 with the alignment: positions count from 0 in NumPy, as in alignment[i]; "
        "compare weights[i].argmax() itself": float(np.mean(w.argmax(-1) + 1 == t)),
        f"that is the number of hits ({hits}): return the share of target words, hits / number of target words":
            float(hits),
        "that is a percentage: return a share between 0 and 1 (no factor 100)": 100 * hits / targets,
    }
    if sources == targets:
        slips["each *target* word (a row) attends over the source words (the columns): take the argmax along the "
              "last axis, weights[i].argmax(), not down a column"] = float(np.mean(w.argmax(0) == t))
    else:
        slips[f"you divided the {hits} hits by the number of *source* words ({sources}), the columns; the share is "
              f"over the target words, the rows ({targets}): hits / len(alignment)"] = hits / sources
    return slips


def _share(value, what: str) -> float:
    arr = _as_array(value)
    expect(arr.size == 1, f"{what} returned an array of shape {arr.shape}: return one number, the share of hits "
           "(np.mean of the True/False array).")
    expect(np.issubdtype(arr.dtype, np.number) or arr.dtype == bool, f"{what} returned {type(value).__name__}; return a number.")
    return float(arr.reshape(()))


@exercise_check("reading an alignment off cross-attention")
def check_alignment_accuracy(alignment_accuracy) -> None:
    """Check the share of target words whose strongest cross-attention link is their true source word.

    Any float (float32, a 0-d array or tensor, a value rounded to 4 decimals) is accepted; each usual slip gives its
    own value on the maps above, so it is named.
    """
    for peak, low, truth, sources in ((_SQUARE_PEAK, _SQUARE_LOW, _SQUARE_TRUTH, 10),
                                      (_WIDE_PEAK, _WIDE_LOW, _WIDE_TRUTH, 6)):
        w = _cross_attention(peak, low, sources)
        what = f"alignment_accuracy on a {w.shape[0]} x {w.shape[1]} map"
        raw = call(alignment_accuracy, w.copy(), list(truth))
        got = _share(raw, what)
        want = float(np.mean(w.argmax(-1) == np.array(truth)))
        if math.isclose(got, want, abs_tol=5e-5):
            continue
        if got == 0 and np.issubdtype(_as_array(raw).dtype, np.integer):
            raise ExerciseFailed(f"{what} returned the integer 0: integer division (hits // n) rounds the share down. "
                                 "Divide with /, or take np.mean of the True/False array.")
        for hint, value in _alignment_slips(w, truth).items():
            if value != want and math.isclose(got, value, abs_tol=5e-5):
                raise ExerciseFailed(f"{what} gave {got:.4g}: {hint}. Expected {want:.4g}.")
        if any(math.isclose(got, round(want, digits), abs_tol=1e-9) for digits in (1, 2, 3)):
            raise ExerciseFailed(f"{what} gave {got:.4g}, {want:.4g} rounded: return the share itself, unrounded.")
        raise ExerciseFailed(f"{what} gave {got:.4f}; expected {want:.4f}: for each target word i, is "
                             "weights[i].argmax() == alignment[i]? Return the fraction of yes.")
    perfect = np.eye(5)[[4, 3, 2, 1, 0]]  # an anti-diagonal: reversal
    expect(math.isclose(_share(call(alignment_accuracy, perfect, [4, 3, 2, 1, 0]), "alignment_accuracy"), 1.0,
                        abs_tol=5e-5),
           "on an exact anti-diagonal with the reversed alignment, every word is right: 1.0.")


__all__ = ["check_alignment_accuracy", "check_attention_mask", "check_lsh_bands"]
