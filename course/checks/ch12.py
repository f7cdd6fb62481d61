"""Checks for the exercises of chapter 12 (preferences and reinforcement learning).

Each check calls the learner's function on tensors it makes itself (float32 and
float64, small and extreme values), compares with the definition, and names in
words the slips learners commonly make: a swapped sign, a sum for a mean, a
forgotten reference, the population standard deviation, a group of equal
rewards that comes out as NaN.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import ExerciseFailed, _as_array, call, exercise_check, expect

_REL = 1e-4  # float32 answers pass; every slip the checks name is off by far more


def _torch():
    import torch

    return torch


def _scalar(value: Any, what: str) -> float:
    if value is None:
        raise ExerciseFailed(f"{what} returned None: `return` the loss (a number or a one-element tensor).")
    arr = _as_array(value)
    if arr.size != 1:
        raise ExerciseFailed(f"{what} returned an array of shape {arr.shape}: return one number, the mean over the "
                             "pairs (use .mean()).")
    return float(arr.reshape(()))


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=_REL, abs_tol=1e-6)


def _log1pexp(x: float) -> float:
    """log(1 + e^x), exactly enough for any x."""
    return x + math.log1p(math.exp(-x)) if x > 0 else math.log1p(math.exp(x))


# ============================================================================ 12.1 the Bradley-Terry loss


def _bt(rc: list[float], rr: list[float]) -> float:
    return sum(_log1pexp(-(c - r)) for c, r in zip(rc, rr)) / len(rc)  # -log sigmoid(d) = log(1 + e^-d)


@exercise_check("the Bradley-Terry loss")
def check_bradley_terry(bradley_terry_loss) -> None:
    torch = _torch()
    cases = {
        "four pairs": ([2.0, -1.0, 0.5, 3.0], [1.0, 1.0, 0.5, -2.0]),
        "one pair": ([0.3], [-0.2]),
        "seven pairs": ([0.1 * i for i in range(7)], [0.2 * (3 - i) for i in range(7)]),
    }
    for name, (rc, rr) in cases.items():
        for dtype in (torch.float32, torch.float64):
            what = f"bradley_terry_loss on {name} ({dtype})"
            got = _scalar(call(bradley_terry_loss, torch.tensor(rc, dtype=dtype), torch.tensor(rr, dtype=dtype)), what)
            want = _bt(rc, rr)
            if _close(got, want):
                continue
            n = len(rc)
            if _close(got, _bt(rr, rc)):
                raise ExerciseFailed(f"{what} = {got:.6g} is the loss with chosen and rejected swapped: the chosen "
                                     "reply should win, so use sigmoid(r_chosen - r_rejected).")
            if _close(got, -want):
                raise ExerciseFailed(f"{what} = {got:.6g} is negative: the loss is MINUS the log-probability that "
                                     "the chosen reply wins, so that minimising it raises that probability.")
            if n > 1 and _close(got, want * n):
                raise ExerciseFailed(f"{what} = {got:.6g} is the sum over pairs: take the mean ({want:.6g}), so the "
                                     "loss does not grow with the batch size.")
            probs = [1 / (1 + math.exp(-(c - r))) for c, r in zip(rc, rr)]
            if _close(got, sum(probs) / n) or _close(got, 1 - sum(probs) / n):
                raise ExerciseFailed(f"{what} = {got:.6g} is a probability, not its log: the loss is "
                                     "-log sigmoid(r_chosen - r_rejected).")
            raise ExerciseFailed(f"{what} = {got:.6g}, expected {want:.6g}: the mean over pairs of "
                                 "-log sigmoid(r_chosen - r_rejected).")
    got = _scalar(call(bradley_terry_loss, torch.tensor([-200.0]), torch.tensor([200.0])),
                  "bradley_terry_loss(r_chosen=-200, r_rejected=200)")
    expect(math.isfinite(got) and _close(got, 400.0),
           f"bradley_terry_loss(r_chosen=-200, r_rejected=200) = {got!r}, expected 400. sigmoid(-400) is 0 in "
           "float32, so log(sigmoid(d)) gives -inf: use torch.nn.functional.logsigmoid(d), which stays exact.")
    shifted = _scalar(call(bradley_terry_loss, torch.tensor([7.0, 5.0]), torch.tensor([6.0, 6.0])), "a shifted pair")
    expect(_close(shifted, _bt([7.0, 5.0], [6.0, 6.0])), "bradley_terry_loss must depend on differences of rewards "
           f"only; (7, 5) against (6, 6) gave {shifted:.6g}, expected {_bt([7.0, 5.0], [6.0, 6.0]):.6g}.")


# ============================================================================ 12.2 the DPO loss


def _dpo(pc, pr, rc, rr, beta) -> float:
    return sum(_log1pexp(-beta * ((a - c) - (b - d))) for a, b, c, d in zip(pc, pr, rc, rr)) / len(pc)


@exercise_check("the DPO loss")
def check_dpo_loss(dpo_loss) -> None:
    torch = _torch()
    pc = [-3.0, -5.5, -2.0, -7.0]
    pr = [-4.0, -5.0, -9.0, -6.5]
    rc = [-3.5, -5.0, -2.5, -6.0]
    rr = [-3.8, -6.0, -8.0, -6.0]
    n = len(pc)
    for beta in (0.1, 0.5, 2.0):
        for dtype in (torch.float32, torch.float64):
            what = f"dpo_loss(beta={beta}, {dtype})"
            args = [torch.tensor(v, dtype=dtype) for v in (pc, pr, rc, rr)]
            got = _scalar(call(dpo_loss, *args, beta), what)
            want = _dpo(pc, pr, rc, rr, beta)
            if _close(got, want):
                continue
            if _close(got, _dpo(pr, pc, rr, rc, beta)):
                raise ExerciseFailed(f"{what} = {got:.6g} prefers the rejected reply. The margin is (chosen log-ratio) "
                                     "- (rejected log-ratio), and each log-ratio is log pi(y) - log pi_ref(y), policy "
                                     "first: swapping either pair flips the sign.")
            if _close(got, _dpo(pc, pr, [0.0] * n, [0.0] * n, beta)):
                raise ExerciseFailed(f"{what} = {got:.6g} leaves out the reference: each reply's implicit reward is "
                                     "beta * (log pi(y) - log pi_ref(y)), the log-ratio to the frozen reference.")
            if _close(got, _dpo(pc, pr, rc, rr, 1.0)):
                raise ExerciseFailed(f"{what} = {got:.6g} does not depend on beta: multiply the margin by beta "
                                     "inside the sigmoid.")
            if _close(got, sum(_log1pexp(-(beta * (a - c) - (b - d))) for a, b, c, d in zip(pc, pr, rc, rr)) / n):
                raise ExerciseFailed(f"{what} = {got:.6g} multiplies only the chosen log-ratio by beta: beta "
                                     "multiplies the whole margin, both replies' log-ratios.")
            if _close(got, want * n):
                raise ExerciseFailed(f"{what} = {got:.6g} is the sum over pairs: take the mean ({want:.6g}).")
            if _close(got, -want):
                raise ExerciseFailed(f"{what} = {got:.6g} is negative: the loss is MINUS log sigmoid(beta * margin).")
            raise ExerciseFailed(f"{what} = {got:.6g}, expected {want:.6g}: the mean over pairs of -log sigmoid(beta "
                                 "* [(log pi(y_c) - log pi_ref(y_c)) - (log pi(y_r) - log pi_ref(y_r))]).")
    zero = _scalar(call(dpo_loss, *(torch.zeros(3) for _ in range(4)), 0.1), "dpo_loss at the reference")
    expect(_close(zero, math.log(2)), f"when the policy equals the reference every margin is 0 and the loss is log 2 "
           f"= 0.6931; got {zero:.6g}.")
    far = _scalar(call(dpo_loss, torch.tensor([-500.0]), torch.tensor([0.0]), torch.tensor([0.0]),
                       torch.tensor([0.0]), 1.0), "dpo_loss with a margin of -500")
    expect(math.isfinite(far) and _close(far, 500.0), f"dpo_loss with a margin of -500 gave {far!r}, expected 500: use "
           "torch.nn.functional.logsigmoid, not log(sigmoid(...)), which gives -inf in float32.")


# ============================================================================ 12.3 group-normalised advantages


def _advantages(rows: list[list[float]], *, sample: bool = True, eps: float = 1e-4) -> np.ndarray:
    out = []
    for row in rows:
        g = len(row)
        mean = sum(row) / g
        var = sum((x - mean) ** 2 for x in row) / (g - 1 if sample else g)
        out.append([(x - mean) / (math.sqrt(var) + eps) for x in row])
    return np.array(out)


@exercise_check("group-normalised advantages")
def check_group_advantages(group_advantages) -> None:
    torch = _torch()
    rows = [[1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 1.0], [0.2, 0.9, 0.4, 0.4], [1.0, 1.0, 1.0, 1.0]]
    for dtype in (torch.float32, torch.float64):
        what = f"group_advantages on 4 groups of 4 ({dtype})"
        got = call(group_advantages, torch.tensor(rows, dtype=dtype))
        if got is None:
            raise ExerciseFailed(f"{what} returned None: `return` the advantages.")
        arr = _as_array(got).astype(float)
        expect(arr.shape == (4, 4), f"{what} returned shape {arr.shape}: one advantage per reward, shape (4, 4).")
        if np.isnan(arr[3]).any() or np.isinf(arr[3]).any():
            raise ExerciseFailed(f"{what}: the last group (all rewards 1.0) came out as {arr[3].tolist()}. Its "
                                 "standard deviation is 0, so (r - mean) / std is 0/0: add eps = 1e-4 to the std. "
                                 "Every reply of that group is as good as the others: its advantages are 0.")
        want = _advantages(rows)
        if np.allclose(arr, want, rtol=1e-3, atol=1e-5):
            continue
        if np.allclose(arr, _advantages(rows, sample=False), rtol=1e-3, atol=1e-5):
            raise ExerciseFailed(f"{what}: you divided by the population standard deviation (n). GRPO (and TRL) "
                                 "use the sample standard deviation, with n - 1: torch's .std() default.")
        flat = [x for r in rows for x in r]
        m, s = sum(flat) / len(flat), float(np.std(flat, ddof=1))
        if np.allclose(arr, (np.array(rows) - m) / (s + 1e-4), rtol=1e-3, atol=1e-5):
            raise ExerciseFailed(f"{what}: you normalised over the whole batch. The baseline is each group's own "
                                 "mean and spread (dim=1, keepdim=True): a prompt is compared with itself only.")
        cols = np.array(rows)
        if np.allclose(arr, (cols - cols.mean(0)) / (cols.std(0, ddof=1) + 1e-4), rtol=1e-3, atol=1e-5):
            raise ExerciseFailed(f"{what}: you took the mean and std over dim=0 (across groups). Each row is one "
                                 "prompt's group: reduce over dim=1.")
        if np.allclose(arr, cols - cols.mean(1, keepdims=True), rtol=1e-3, atol=1e-5):
            raise ExerciseFailed(f"{what}: the rewards are centred but not divided by the group's standard deviation.")
        if np.allclose(arr, np.array(rows) / (np.array(rows).std(1, ddof=1, keepdims=True) + 1e-4), rtol=1e-3):
            raise ExerciseFailed(f"{what}: the rewards are divided by the spread but the group mean is not "
                                 "subtracted: a group where every reply is right would push every reply up.")
        bad = np.argwhere(~np.isclose(arr, want, rtol=1e-3, atol=1e-5))[0]
        raise ExerciseFailed(f"{what}: entry {tuple(int(i) for i in bad)} is {arr[tuple(bad)]:.6g}, expected "
                             f"{want[tuple(bad)]:.6g} = (r - group mean) / (group sample std + 1e-4).")
    expect(np.abs(_as_array(call(group_advantages, torch.tensor(rows))).astype(float).sum(1)).max() < 1e-4,
           "each group's advantages must sum to 0.")
