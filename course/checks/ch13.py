"""Checks for the exercises of chapter 13 (inside a modern LLM).

Each check calls the learner's function on tensors it makes itself (float32 and
float64), compares with the definition computed here in float64, and names in
words the slips learners commonly make: an accumulator not rescaled, the rescaling
the wrong way round, exponentials that overflow, a row of masked keys that turns
into NaN; an acceptance ratio upside down or above 1, a residual not clipped or not
normalised; a balancing loss without its factor, with probabilities for counts, or
counting tokens instead of assignments.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import ExerciseFailed, _as_array, call, exercise_check, expect

_TOL = 1e-4  # float32 answers pass; every slip named below is off by far more


def _torch():
    import torch

    return torch


def _close(a: Any, b: Any, tol: float = _TOL) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=tol, atol=tol * 1e-2, equal_nan=False))


def _parts(value: Any, n: int, what: str, names: str) -> list[np.ndarray]:
    if value is None:
        raise ExerciseFailed(f"{what} returned None: `return` {names}.")
    if not isinstance(value, (tuple, list)) or len(value) != n:
        raise ExerciseFailed(f"{what} should return {n} things ({names}), got {type(value).__name__}"
                             + (f" of length {len(value)}" if isinstance(value, (tuple, list)) else "") + ".")
    return [_as_array(v).astype(np.float64) for v in value]


# ============================================================================ 13.1 the online softmax update


def _update(m, l, acc, s, v):  # float64 NumPy, the definition
    m_new = np.maximum(m, s.max(axis=-1))
    safe = np.where(np.isinf(m_new), 0.0, m_new)
    with np.errstate(invalid="ignore"):
        rescale = np.exp(m - safe)
    p = np.exp(s - safe[:, None])
    return m_new, l * rescale + p.sum(-1), acc * rescale[:, None] + p @ v


@exercise_check("the online softmax update")
def check_online_softmax_update(online_softmax_update) -> None:
    torch = _torch()
    rng = np.random.default_rng(13)
    rows, d = 3, 4
    scores = rng.normal(size=(rows, 12)) * 3
    values = rng.normal(size=(12, d))
    for dtype in (torch.float64, torch.float32):
        for block in (4, 5, 12):
            what = f"folding {12 // block if 12 % block == 0 else 'uneven'} blocks of {block} keys ({dtype})"
            m = torch.full((rows,), -math.inf, dtype=dtype)
            l = torch.zeros(rows, dtype=dtype)
            acc = torch.zeros(rows, d, dtype=dtype)
            ref = (np.full(rows, -np.inf), np.zeros(rows), np.zeros((rows, d)))
            for start in range(0, 12, block):
                s, v = scores[:, start:start + block], values[start:start + block]
                out = call(online_softmax_update, m, l, acc, torch.tensor(s, dtype=dtype), torch.tensor(v, dtype=dtype))
                got = _parts(out, 3, f"online_softmax_update ({what})", "(m_new, l_new, acc_new)")
                want = _update(*ref, s, v)
                if not all(_close(g, w) for g, w in zip(got, want)):
                    _diagnose_update(got, want, ref, s, v, what)
                m, l, acc = (torch.as_tensor(x, dtype=dtype) for x in got)
                ref = want
    # large scores: exp(1000) overflows unless the running maximum is subtracted
    big = torch.tensor([[1000.0, 999.0]], dtype=torch.float32)
    out = _parts(call(online_softmax_update, torch.tensor([-math.inf]), torch.tensor([0.0]), torch.zeros(1, 1), big,
                      torch.ones(2, 1)), 3, "online_softmax_update on scores near 1000", "(m_new, l_new, acc_new)")
    expect(np.isfinite(out[1]).all() and np.isfinite(out[2]).all(),
           "scores of 1000 gave inf or NaN: exp(1000) overflows. Subtract the new running maximum before "
           "exponentiating: p = exp(scores - m_new), and keep l and acc in those units.")
    # a first block whose keys are all masked (-inf), as on the diagonal blocks of causal attention
    masked = torch.full((1, 2), -math.inf)
    out = _parts(call(online_softmax_update, torch.tensor([-math.inf]), torch.tensor([0.0]), torch.zeros(1, 1),
                      masked, torch.ones(2, 1)), 3, "online_softmax_update on a block of masked keys",
                 "(m_new, l_new, acc_new)")
    expect(not np.isnan(out[1]).any() and not np.isnan(out[2]).any() and out[1][0] == 0,
           "a row whose keys so far are all masked (-inf) gave NaN or a non-zero sum: exp(-inf - (-inf)) is NaN. "
           "While the running maximum is still -inf, subtract 0 instead (torch.where(torch.isinf(m_new), 0, m_new)): "
           "the row then keeps l = 0 and acc = 0.")


def _diagnose_update(got, want, ref, s, v, what) -> None:
    m, l, acc = ref
    m_new = np.maximum(m, s.max(-1))
    safe = np.where(np.isinf(m_new), 0.0, m_new)
    p = np.exp(s - safe[:, None])
    with np.errstate(invalid="ignore", over="ignore"):
        rescale = np.exp(m - safe)
        inverse = np.exp(safe - m)
    finite = np.isfinite(m).all()
    if not _close(got[0], want[0]):
        if _close(got[0], s.max(-1)):
            raise ExerciseFailed(f"{what}: m_new is the maximum of this block only. It must be the running maximum, "
                                 "max(m, scores.max(-1)), over every block so far.")
        raise ExerciseFailed(f"{what}: m_new = {got[0]}, expected {want[0]} (the running maximum).")
    if finite and _close(got[2], acc + p @ v):
        raise ExerciseFailed(f"{what}: acc is not rescaled. Its old terms were weighted by exp(s - m_old); under the "
                             "new maximum they must be multiplied by exp(m_old - m_new), like l.")
    if finite and _close(got[1], l + p.sum(-1)):
        raise ExerciseFailed(f"{what}: l is not rescaled: l_new = l * exp(m_old - m_new) + sum(exp(scores - m_new)).")
    if finite and np.isfinite(inverse).all() and _close(got[1], l * inverse + p.sum(-1)):
        raise ExerciseFailed(f"{what}: the rescaling is upside down: the old sum shrinks by exp(m_old - m_new) "
                             "(at most 1), not exp(m_new - m_old).")
    if not _close(got[1], want[1]):
        raise ExerciseFailed(f"{what}: l_new = {got[1]}, expected {want[1]}: l * exp(m - m_new) + "
                             "exp(scores - m_new).sum(-1).")
    raise ExerciseFailed(f"{what}: acc_new differs from acc * exp(m - m_new)[:, None] + exp(scores - m_new) @ v "
                         f"(got {got[2].round(4).tolist()}, expected {want[2].round(4).tolist()}). Rescale = "
                         f"{rescale.round(4).tolist()}.")


# ============================================================================ 13.2 the speculative accept/reject rule


@exercise_check("the speculative accept/reject rule")
def check_speculative_rule(speculative_rule) -> None:
    torch = _torch()
    p = [0.5, 0.2, 0.2, 0.1]
    q = [0.25, 0.5, 0.15, 0.1]
    for dtype in (torch.float64, torch.float32):
        for x in range(4):
            what = f"speculative_rule(p={p}, q={q}, x={x}) ({dtype})"
            out = call(speculative_rule, torch.tensor(p, dtype=dtype), torch.tensor(q, dtype=dtype), x)
            alpha, r = _parts(out, 2, what, "(the acceptance probability, the residual distribution)")
            want_alpha = min(1.0, p[x] / q[x])
            raw = np.clip(np.array(p) - np.array(q), 0, None)
            want_r = raw / raw.sum()
            if not _close(alpha.reshape(()), want_alpha):
                a = float(alpha.reshape(-1)[0]) if alpha.size else float("nan")
                if math.isclose(a, q[x] / p[x], rel_tol=1e-4):
                    raise ExerciseFailed(f"{what}: the acceptance probability is q/p = {a:.4g}; it is p[x] / q[x]: "
                                         "accept often where the target likes the token more than the draft did.")
                if math.isclose(a, p[x] / q[x], rel_tol=1e-4):
                    raise ExerciseFailed(f"{what}: the acceptance probability {a:.4g} is above 1: take min(1, p/q).")
                raise ExerciseFailed(f"{what}: acceptance probability {a:.4g}, expected min(1, p[x]/q[x]) = "
                                     f"{want_alpha:.4g}.")
            if _close(r, want_r):
                continue
            if _close(r, raw):
                raise ExerciseFailed(f"{what}: the residual {r.round(4).tolist()} does not sum to 1: divide "
                                     "max(0, p - q) by its sum.")
            if (r < -1e-9).any():
                raise ExerciseFailed(f"{what}: the residual has negative entries {r.round(4).tolist()}: clip p - q "
                                     "at 0 first (where the draft over-proposed, a rejection must not resample).")
            back = np.clip(np.array(q) - np.array(p), 0, None)
            if _close(r, back / back.sum()):
                raise ExerciseFailed(f"{what}: the residual is max(0, q - p): it is max(0, p - q), the mass the target "
                                     "wants and the draft under-proposed.")
            raise ExerciseFailed(f"{what}: residual {r.round(4).tolist()}, expected {want_r.round(4).tolist()}.")
    # an extreme case: the draft proposes a token the target never produces
    out = call(speculative_rule, torch.tensor([0.0, 1.0]), torch.tensor([0.9, 0.1]), 0)
    alpha, r = _parts(out, 2, "speculative_rule(p=[0, 1], q=[0.9, 0.1], x=0)", "(alpha, residual)")
    expect(_close(alpha.reshape(()), 0.0) and _close(r, [0.0, 1.0]),
           "with p = [0, 1] and q = [0.9, 0.1], token 0 must never be accepted (alpha 0) and a rejection must give "
           f"token 1 (residual [0, 1]); got alpha {alpha.tolist()} and residual {r.tolist()}.")


# ============================================================================ 13.3 the load-balancing loss


@exercise_check("the load-balancing loss")
def check_load_balancing_loss(load_balancing_loss) -> None:
    torch = _torch()
    g = torch.Generator().manual_seed(13)
    n_experts = 4
    for top_k in (1, 2):
        for dtype in (torch.float64, torch.float32):
            logits = torch.randn(10, n_experts, generator=g, dtype=torch.float64) * 1.5
            probs = torch.softmax(logits, -1).to(dtype).requires_grad_(True)
            chosen = probs.detach().topk(top_k, dim=-1).indices
            what = f"load_balancing_loss on 10 tokens, top-{top_k} of {n_experts} experts ({dtype})"
            out = call(load_balancing_loss, probs, chosen, n_experts)
            if out is None:
                raise ExerciseFailed(f"{what} returned None: `return` the loss.")
            if not isinstance(out, torch.Tensor):
                raise ExerciseFailed(f"{what} returned a {type(out).__name__}: return a torch tensor computed from "
                                     "router_probs, so that the loss can train the router (no .item(), no NumPy).")
            arr = out.detach().double().reshape(-1).numpy()
            if arr.size != 1:
                raise ExerciseFailed(f"{what} has shape {tuple(out.shape)}: return one number (sum over experts).")
            got = float(arr[0])
            pd = probs.detach().double()
            counts = torch.bincount(chosen.reshape(-1), minlength=n_experts).double()
            f = counts / chosen.numel()
            P = pd.mean(0)
            want = n_experts * float((f * P).sum())
            if math.isclose(got, want, rel_tol=_TOL):
                expect(out.requires_grad, f"{what}: the value is right but it carries no gradient: compute it from "
                       "router_probs with torch operations (f may be a count; P must keep its gradient).")
                continue
            if math.isclose(got, want / n_experts, rel_tol=_TOL):
                raise ExerciseFailed(f"{what} = {got:.5g} lacks the factor n_experts: with it, a perfectly balanced "
                                     "router scores 1 whatever the number of experts.")
            if math.isclose(got, n_experts * float((P * P).sum()), rel_tol=_TOL):
                raise ExerciseFailed(f"{what} = {got:.5g} uses the mean probability for f as well: f_i is the share "
                                     "of assignments (a count of the chosen experts, torch.bincount), P_i the mean "
                                     "router probability.")
            if top_k > 1 and math.isclose(got, top_k * want, rel_tol=_TOL):
                raise ExerciseFailed(f"{what} = {got:.5g} divides the counts by the number of tokens: with top-{top_k} "
                                     "each token makes k assignments, so divide by tokens * k (f sums to 1).")
            first = torch.bincount(chosen[:, 0], minlength=n_experts).double() / chosen.shape[0]
            if top_k > 1 and math.isclose(got, n_experts * float((first * P).sum()), rel_tol=_TOL):
                raise ExerciseFailed(f"{what} = {got:.5g} counts only each token's first choice: count every one of "
                                     "its top-k assignments.")
            if math.isclose(got, n_experts * float((f * pd.sum(0)).sum()), rel_tol=_TOL):
                raise ExerciseFailed(f"{what} = {got:.5g} sums the probabilities over tokens: P_i is their mean.")
            raise ExerciseFailed(f"{what} = {got:.5g}, expected {want:.5g} = n_experts * sum_i f_i * P_i.")
    even = torch.full((8, n_experts), 1 / n_experts, requires_grad=True)
    spread = torch.arange(8).remainder(n_experts)[:, None]
    value = call(load_balancing_loss, even, spread, n_experts)
    expect(isinstance(value, torch.Tensor) and math.isclose(float(value.detach()), 1.0, rel_tol=1e-5),
           f"a perfectly balanced router (uniform probabilities, each expert chosen equally often) must score 1; got "
           f"{value!r}.")
