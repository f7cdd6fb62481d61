"""Checks for the exercises of chapter 06 (sampling and decoding)."""

from __future__ import annotations

import math

import torch

from . import ExerciseFailed, call, exercise_check, expect, expect_close

# probabilities 0.5, 0.3, 0.15, 0.05 in a shuffled order: cumulative (sorted) 0.5, 0.8, 0.95, 1.0
_PROBS = torch.tensor([0.15, 0.5, 0.05, 0.3], dtype=torch.float64)
_LOGITS = _PROBS.log()
_RANK = [1, 3, 0, 2]  # positions from the most to the least likely
# probabilities 0.125, 0.5, 0.125, 0.25: logits that are multiples of ln 2 give them exactly, by any softmax
_TIE_LOGITS = torch.tensor([-2.0, 0.0, -2.0, -1.0], dtype=torch.float64) * math.log(2)


def _tensor(out: object, what: str, shape: tuple[int, ...]) -> torch.Tensor:
    expect(isinstance(out, torch.Tensor), f"{what} returned {type(out).__name__}, expected a torch.Tensor.")
    expect(tuple(out.shape) == shape, f"{what} returned shape {tuple(out.shape)}, expected {shape}: keep one probability per token.")
    expect(bool(torch.isfinite(out).all()), f"{what} contains nan or inf: probabilities are finite (exp(-inf) is 0, not -inf).")
    expect(bool((out >= 0).all()), f"{what} has negative entries: return probabilities (after the softmax), not logits.")
    return out.double()


def _normalised(out: torch.Tensor, what: str) -> None:
    total = out.sum(dim=-1)
    if not torch.allclose(total, torch.ones_like(total), atol=1e-6):
        if out.dim() == 2 and torch.allclose(out.sum(dim=0), torch.ones(out.shape[1], dtype=out.dtype), atol=1e-6):
            raise ExerciseFailed(f"{what}: the columns sum to 1, not the rows: the softmax ran over dim 0 (the batch). "
                                 "Each row is one distribution: use dim=-1.")
        raise ExerciseFailed(
            f"{what} sums to {[round(float(t), 4) for t in total.flatten()]}, not 1: you would be sampling from "
            "unnormalised weights. Divide the kept probabilities by their sum (or take a softmax over the kept logits)."
        )


def _unchanged(fn, logits: torch.Tensor, *args, what: str) -> object:
    """Call ``fn(logits, *args)`` on a copy and fail if it changed that copy in place."""
    mine = logits.clone()
    out = call(fn, mine, *args)
    expect(torch.equal(mine, logits), f"{what} changed the logits it was given, in place (l /= T, l[...] = -inf, "
           "masked_fill_): the caller's logits are now different. Work on a new tensor (l / T, masked_fill).")
    return out


def _renorm(keep: list[int]) -> torch.Tensor:
    out = torch.zeros_like(_PROBS)
    out[keep] = _PROBS[keep] / _PROBS[keep].sum()
    return out


@exercise_check("temperature")
def check_temperature_probs(temperature_probs) -> None:
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0], dtype=torch.float64)
    out = _tensor(call(temperature_probs, logits.clone(), 1.0), "temperature_probs(logits, 1.0)", (4,))
    _normalised(out, "temperature_probs(logits, 1.0)")
    expect_close(out, torch.softmax(logits, -1), "temperature_probs(logits, 1.0) (must equal the softmax)", rtol=1e-6)

    half = _tensor(_unchanged(temperature_probs, logits, 0.5, what="temperature_probs"), "temperature_probs(logits, 0.5)", (4,))
    _normalised(half, "temperature_probs(logits, 0.5)")
    if torch.allclose(half, torch.softmax(logits * 0.5, -1), atol=1e-6):
        raise ExerciseFailed("at temperature 0.5 your distribution is flatter than at 1: you multiplied the logits by T. Divide them: softmax(logits / T).")
    if torch.allclose(half, torch.softmax(logits, -1) / 0.5, atol=1e-6) or torch.allclose(half, torch.softmax(logits, -1), atol=1e-6):
        raise ExerciseFailed("apply the temperature to the logits before the softmax, not to the probabilities after it.")
    expect_close(half, torch.softmax(logits / 0.5, -1), "temperature_probs(logits, 0.5)", rtol=1e-6)
    expect(float(half[0]) > float(out[0]), "a temperature below 1 must make the most likely token more likely.")

    batch = torch.randn(3, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = _tensor(call(temperature_probs, batch.clone(), 2.0), "temperature_probs on a (3, 7) batch", (3, 7))
    _normalised(out, "each row of temperature_probs on a batch")
    expect_close(out, torch.softmax(batch / 2.0, -1), "temperature_probs on a (3, 7) batch, T=2", rtol=1e-6)

    for bad in (0.0, -1.0):
        try:
            temperature_probs(logits.clone(), bad)
        except ValueError:
            continue
        except Exception as err:  # noqa: BLE001 - the learner's code may raise anything
            raise ExerciseFailed(f"temperature={bad} raised {type(err).__name__}; raise a ValueError that says to use greedy decoding.") from err
        raise ExerciseFailed(f"temperature={bad} must raise a ValueError (dividing by {bad} is meaningless; T -> 0 is greedy decoding).")


@exercise_check("top-k")
def check_top_k_probs(top_k_probs) -> None:
    for k in (1, 2, 3, 4):
        raw = _unchanged(top_k_probs, _LOGITS, k, what=f"top_k_probs(logits, {k})")
        if k == 1 and isinstance(raw, torch.Tensor) and raw.shape == (4,) and bool(torch.isnan(raw).all()):
            raise ExerciseFailed(
                "top_k_probs(logits, 1) kept no token at all (every logit -inf, and 0/0 gives nan): you dropped the "
                "k-th largest logit itself. Keep the logits >= the k-th largest: mask logits < kth, not <= kth."
            )
        out = _tensor(raw, f"top_k_probs(logits, {k})", (4,))
        kept = int((out > 0).sum())
        if kept != k:
            hint = " Off by one: keep the tokens whose logit is >= the k-th largest logit." if abs(kept - k) == 1 else ""
            if kept == 4 and k < 4:
                hint = " Nothing was dropped: set the other logits to -inf (or their probabilities to 0)."
            raise ExerciseFailed(f"top_k_probs(logits, {k}) kept {kept} tokens, expected exactly {k}.{hint}")
        _normalised(out, f"top_k_probs(logits, {k})")
        keep = _RANK[:k]
        got_set = set(torch.nonzero(out).flatten().tolist())
        if got_set != set(keep):
            sorted_like = torch.allclose(out, torch.sort(_renorm(keep), descending=True).values, atol=1e-9)
            hint = " You returned them sorted: put each probability back at its token's position." if sorted_like else ""
            if got_set == set(_RANK[::-1][:k]):
                hint = " You kept the least likely ones: take the largest logits (torch.topk's default, largest=True)."
            raise ExerciseFailed(f"top_k_probs(logits, {k}) kept tokens {sorted(got_set)}, expected the {k} most likely: {sorted(keep)}.{hint}")
        expect_close(out, _renorm(keep), f"top_k_probs(logits, {k})", rtol=1e-6)
    batch = torch.randn(4, 9, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    raw = call(top_k_probs, batch.clone(), 3)
    if isinstance(raw, torch.Tensor) and raw.shape == (4, 9):
        empty = [i for i, row in enumerate(torch.nan_to_num(raw)) if not bool((row > 0).any())]
        expect(not empty, f"on a (4, 9) batch with k=3, row {empty[0] if empty else 0} kept no token at all (nan): "
               "take the k-th largest of each row, torch.topk(logits, k, dim=-1).values[..., -1:], not of the whole batch.")
    out = _tensor(raw, "top_k_probs on a (4, 9) batch", (4, 9))
    counts = (out > 0).sum(-1).tolist()
    expect(counts == [3, 3, 3, 3], f"on a (4, 9) batch with k=3 each row kept {counts} tokens: take the k largest of each row (dim=-1).")
    _normalised(out, "each row of top_k_probs on a batch")
    kth = torch.topk(batch, 3, dim=-1).values[..., -1:]
    expect_close(out, torch.softmax(batch.masked_fill(batch < kth, float("-inf")), -1), "top_k_probs on a (4, 9) batch", rtol=1e-6)


@exercise_check("top-p (nucleus)")
def check_top_p_probs(top_p_probs) -> None:
    # sorted probabilities 0.5, 0.3, 0.15, 0.05; cumulative 0.5, 0.8, 0.95, 1.0
    for p, n in ((0.3, 1), (0.6, 2), (0.75, 2), (0.9, 3), (0.97, 4)):
        raw = _unchanged(top_p_probs, _LOGITS, p, what=f"top_p_probs(logits, {p})")
        if isinstance(raw, torch.Tensor) and raw.shape == (4,) and not bool((torch.nan_to_num(raw) > 0).any()):
            raise ExerciseFailed(
                f"top_p_probs(logits, {p}) kept no token at all (0/0 gives nan): the most likely token alone has "
                f"probability 0.5, which already crosses p={p}, and you dropped it. You dropped the token that takes "
                "the total past p: keep a token when the mass *before* it is < p."
            )
        out = _tensor(raw, f"top_p_probs(logits, {p})", (4,))
        kept = int((out > 0).sum())
        if kept == n - 1:
            raise ExerciseFailed(
                f"top_p_probs(logits, {p}) kept {kept} tokens, expected {n}: you dropped the token that takes the "
                f"total past p. The nucleus is the smallest set whose probability reaches p (sorted probabilities "
                f"0.5, 0.3, 0.15, 0.05 reach {p} only with {n} of them): keep a token when the mass *before* it is < p."
            )
        if kept == n + 1:
            raise ExerciseFailed(
                f"top_p_probs(logits, {p}) kept {kept} tokens, expected {n}: one too many. The first {n} already "
                f"reach p={p}; keep a token only when the mass of the tokens ranked above it is still < p."
            )
        if n == 1 and kept == 3:
            raise ExerciseFailed(
                f"top_p_probs(logits, {p}) kept 3 tokens, expected 1: did you sort in ascending order? Sort the "
                "probabilities from the most to the least likely (descending=True) before accumulating."
            )
        expect(kept == n, f"top_p_probs(logits, {p}) kept {kept} tokens, expected {n} (sorted probabilities 0.5, 0.3, 0.15, 0.05).")
        _normalised(out, f"top_p_probs(logits, {p})")
        got_set = set(torch.nonzero(out).flatten().tolist())
        if got_set != set(_RANK[:n]):
            raise ExerciseFailed(
                f"top_p_probs(logits, {p}) kept tokens {sorted(got_set)}, expected the {n} most likely {sorted(_RANK[:n])}: "
                "sort by probability to decide, then put each probability back at its token's position (scatter)."
            )
        expect_close(out, _renorm(_RANK[:n]), f"top_p_probs(logits, {p})", rtol=1e-6)
    # An exact tie: probabilities 0.5, 0.25, 0.125, 0.125 are exact in binary, so the mass before a token can
    # equal p exactly. The nucleus is complete as soon as its mass reaches p: 0.5 alone reaches p = 0.5.
    for p, n in ((0.5, 1), (0.75, 2)):
        out = _tensor(call(top_p_probs, _TIE_LOGITS.clone(), p), f"top_p_probs(logits, {p})", (4,))
        kept = int((out > 0).sum())
        if kept == n + 1:
            raise ExerciseFailed(
                f"with probabilities 0.5, 0.25, 0.125, 0.125 and p = {p}, you kept {kept} tokens, expected {n}: "
                f"{'0.5 alone reaches' if n == 1 else '0.5 + 0.25 reach'} p = {p} exactly, so the nucleus is complete "
                "there. You also kept the next token, whose mass before it equals p: keep a token only while that "
                "mass is < p (strictly), not <= p."
            )
        expect(kept == n, f"with probabilities 0.5, 0.25, 0.125, 0.125 and p = {p}, you kept {kept} tokens, expected {n}.")
    out = _tensor(call(top_p_probs, _LOGITS.clone(), 1.0), "top_p_probs(logits, 1.0)", (4,))
    expect_close(out, _PROBS, "top_p_probs(logits, 1.0) (p = 1 must keep every token)", rtol=1e-6)
    out = _tensor(call(top_p_probs, _LOGITS.clone(), 0.01), "top_p_probs(logits, 0.01)", (4,))
    expect(int((out > 0).sum()) == 1, "with a tiny p the nucleus is the single most likely token; it is never empty.")
    batch = torch.randn(5, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    out = _tensor(call(top_p_probs, batch.clone(), 0.7), "top_p_probs on a (5, 8) batch", (5, 8))
    _normalised(out, "each row of top_p_probs on a batch")
    from course.sampling import top_p_filter

    expect_close(out, torch.softmax(top_p_filter(batch, 0.7), -1), "top_p_probs on a (5, 8) batch, p=0.7", rtol=1e-6)
