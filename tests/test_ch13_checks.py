"""Chapter 13's exercise checks: each reference solution passes (in every valid form), the blank stub fails, and
every usual slip fails with a message that names it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from check_helpers import fails, stub
from course.checks import NotImplementedYet
from course.checks.ch13 import check_load_balancing_loss, check_online_softmax_update, check_speculative_rule
from course.flash_attention import online_softmax_update as course_update
from course.moe import load_balancing_loss as course_balance
from course.speculative import residual
from solutions.ch13_modern import load_balancing_loss, online_softmax_update, speculative_rule


# ------------------------------------------------------------------ 13.1


def test_online_softmax_solution_and_the_course_version_pass(capsys):
    check_online_softmax_update(online_softmax_update)
    check_online_softmax_update(course_update)  # the module the chapter's tiled attention uses

    def as_list(m, l, acc, s, v):  # a list, and the max taken with torch.max over a concatenation
        m_new = torch.max(torch.cat([m[:, None], s], dim=1), dim=1).values
        safe = torch.nan_to_num(m_new, neginf=0.0)
        p = torch.exp(s - safe[:, None])
        return [m_new, l * torch.exp(m - safe) + p.sum(1), acc * torch.exp(m - safe)[:, None] + p @ v]

    check_online_softmax_update(as_list)
    assert "passed" in capsys.readouterr().out


def _variant(rescale_acc=True, rescale_l=True, inverse=False, block_max=False, raw_exp=False, nan_guard=True):
    def update(m, l, acc, s, v):
        m_new = s.amax(-1) if block_max else torch.maximum(m, s.amax(-1))
        safe = torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new) if nan_guard else m_new
        factor = torch.exp(safe - m) if inverse else torch.exp(m - safe)
        factor = torch.nan_to_num(factor, nan=0.0, posinf=0.0) if inverse else factor
        p = torch.exp(s) if raw_exp else torch.exp(s - safe[:, None])
        if raw_exp:
            factor = torch.ones_like(factor)
        new_l = (l * factor if rescale_l else l) + p.sum(-1)
        new_acc = (acc * factor[:, None] if rescale_acc else acc) + p @ v
        return m_new, new_l, new_acc
    return update


@pytest.mark.parametrize("slip, words", [
    (_variant(rescale_acc=False), ["acc is not rescaled"]),
    (_variant(rescale_l=False), ["l is not rescaled"]),
    (_variant(inverse=True), ["upside down"]),
    (_variant(block_max=True), ["this block only"]),
    (_variant(nan_guard=False), ["-inf"]),
    (lambda m, l, acc, s, v: None, ["None"]),
    (lambda m, l, acc, s, v: (m, l), ["3 things"]),
])
def test_online_softmax_slips_are_named(slip, words):
    fails(check_online_softmax_update, slip, *words)


def test_online_softmax_without_the_running_max_overflows_and_says_so():
    # exp(scores) without subtracting a maximum: right on small scores (all in one unit), inf at 1000
    def raw(m, l, acc, s, v):
        p = torch.exp(s)
        m_new = torch.maximum(m, s.amax(-1))
        safe = torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new)
        scale = torch.exp(-safe)  # keeps l and acc in the units of exp(s - m_new), until exp overflows
        return m_new, l * torch.exp(m - safe) + (p * scale[:, None]).sum(-1), acc * torch.exp(m - safe)[:, None] + (p * scale[:, None]) @ v
    fails(check_online_softmax_update, raw, "overflows")


def test_online_softmax_stub_fails_as_a_stub():
    with pytest.raises(NotImplementedYet):
        check_online_softmax_update(stub)


# ------------------------------------------------------------------ 13.2


def test_speculative_rule_solution_and_other_valid_forms_pass():
    check_speculative_rule(speculative_rule)
    check_speculative_rule(lambda p, q, x: (min(1.0, float(p[x] / q[x])), residual(p, q)))  # the course's residual
    check_speculative_rule(lambda p, q, x: [torch.minimum(p[x] / q[x], torch.ones(())),
                                            np.maximum(p.numpy() - q.numpy(), 0) / np.maximum(p.numpy() - q.numpy(), 0).sum()])


@pytest.mark.parametrize("slip, words", [
    (lambda p, q, x: (torch.clamp(q[x] / p[x], max=1.0), speculative_rule(p, q, x)[1]), ["q/p"]),
    (lambda p, q, x: (p[x] / q[x], speculative_rule(p, q, x)[1]), ["above 1"]),
    (lambda p, q, x: (speculative_rule(p, q, x)[0], torch.clamp(p - q, min=0)), ["sum to 1"]),
    (lambda p, q, x: (speculative_rule(p, q, x)[0], (p - q) / (p - q).sum()), ["negative"]),
    (lambda p, q, x: (speculative_rule(p, q, x)[0], speculative_rule(q, p, x)[1]), ["max(0, q - p)"]),
    (lambda p, q, x: (speculative_rule(p, q, x)[0], p), ["expected"]),
    (lambda p, q, x: speculative_rule(p, q, x)[0], ["2 things"]),
])
def test_speculative_slips_are_named(slip, words):
    fails(check_speculative_rule, slip, *words)


def test_speculative_stub_fails_as_a_stub():
    with pytest.raises(NotImplementedYet):
        check_speculative_rule(stub)


# ------------------------------------------------------------------ 13.3


def test_load_balancing_solution_and_the_course_version_pass():
    check_load_balancing_loss(load_balancing_loss)
    check_load_balancing_loss(course_balance)

    def one_hot_form(probs, chosen, n):  # f from one-hot rows, P as a mean
        f = torch.nn.functional.one_hot(chosen, n).to(probs.dtype).sum((0, 1)) / chosen.numel()
        return (n * f * probs.mean(0)).sum()

    check_load_balancing_loss(one_hot_form)


def _count(chosen, n, dtype):
    return torch.bincount(chosen.reshape(-1), minlength=n).to(dtype)


@pytest.mark.parametrize("slip, words", [
    (lambda p, c, n: (_count(c, n, p.dtype) / c.numel() * p.mean(0)).sum(), ["factor n_experts"]),
    (lambda p, c, n: n * (p.mean(0) * p.mean(0)).sum(), ["mean probability for f"]),
    (lambda p, c, n: n * (_count(c, n, p.dtype) / c.shape[0] * p.mean(0)).sum(), ["tokens * k"]),
    (lambda p, c, n: n * (_count(c[:, 0], n, p.dtype) / c.shape[0] * p.mean(0)).sum(), ["first choice"]),
    (lambda p, c, n: n * (_count(c, n, p.dtype) / c.numel() * p.sum(0)).sum(), ["mean"]),
    (lambda p, c, n: float(load_balancing_loss(p, c, n).detach()), ["torch tensor"]),
    (lambda p, c, n: load_balancing_loss(p.detach(), c, n), ["gradient"]),
    (lambda p, c, n: None, ["None"]),
])
def test_load_balancing_slips_are_named(slip, words):
    fails(check_load_balancing_loss, slip, *words)


def test_load_balancing_stub_fails_as_a_stub():
    with pytest.raises(NotImplementedYet):
        check_load_balancing_loss(stub)
