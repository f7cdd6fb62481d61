"""course.speculative (chapter 13): speculative decoding emits exactly the target's distribution (by enumeration, to
rounding), its sampler follows the enumerated rule, and greedy speculative decoding equals the target's greedy."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
import torch

from course.model import GPT, GPTConfig
from course.speculative import accept_draft, residual, speculative_generate, step_distribution, stream_distribution

V = 3


def toy(seed: int, zeros: bool):
    """A context-dependent next-token distribution over V tokens (some entries exactly 0 when ``zeros``)."""
    def dist(prefix: tuple[int, ...]) -> list[float]:
        rng = random.Random(hash((seed, prefix)))
        w = [rng.random() ** 2 for _ in range(V)]
        if zeros and rng.random() < 0.4:
            w[rng.randrange(V)] = 0.0
        total = sum(w)
        return [x / total for x in w]
    return dist


def target_chain(p_fn, prefix, length):
    out = {}

    def go(seq, mass):
        if len(seq) == length:
            out[seq] = mass
            return
        for t, pt in enumerate(p_fn(prefix + seq)):
            if pt > 0:
                go(seq + (t,), mass * pt)
    go((), 1.0)
    return out


@pytest.mark.parametrize("gamma", [1, 2, 3])
@pytest.mark.parametrize("zeros", [False, True])
def test_the_emitted_stream_is_the_targets_distribution_exactly(gamma, zeros):
    p_fn, q_fn = toy(1, zeros), toy(2, zeros)
    got = stream_distribution(p_fn, q_fn, (0,), gamma, length=4)
    want = target_chain(p_fn, (0,), 4)
    keys = set(got) | set(want)
    assert max(abs(got.get(s, 0.0) - want.get(s, 0.0)) for s in keys) < 1e-12
    assert abs(sum(got.values()) - 1) < 1e-12


def test_a_draft_equal_to_the_target_is_always_accepted():
    p_fn = toy(3, False)
    dist = step_distribution(p_fn, p_fn, (), 3)
    assert all(len(out) == 4 for out, prob in dist.items() if prob > 0)  # every step emits gamma + 1 tokens
    assert abs(sum(dist.values()) - 1) < 1e-12


def test_a_draft_that_disagrees_everywhere_emits_one_token_per_step():
    p_fn = lambda prefix: [1.0, 0.0, 0.0]  # noqa: E731
    q_fn = lambda prefix: [0.0, 0.5, 0.5]  # noqa: E731
    assert step_distribution(p_fn, q_fn, (), 3) == {(0,): 1.0}


def test_the_sampler_follows_the_enumerated_rule():
    """20,000 sampled steps against the exact step distribution: every outcome within 5 standard errors."""
    p_fn, q_fn = toy(4, False), toy(5, False)
    gamma, n = 2, 20_000
    g = torch.Generator().manual_seed(0)
    exact = step_distribution(p_fn, q_fn, (), gamma)
    counts: Counter = Counter()
    for _ in range(n):
        drafted, q_rows = [], []
        for _ in range(gamma):
            q = torch.tensor(q_fn(tuple(drafted)), dtype=torch.float64)
            drafted.append(int(torch.multinomial(q, 1, generator=g)))
            q_rows.append(q)
        p = torch.tensor([p_fn(tuple(drafted[:i])) for i in range(gamma + 1)], dtype=torch.float64)
        counts[tuple(accept_draft(p, torch.stack(q_rows), drafted, g))] += 1
    for out, prob in exact.items():
        se = math.sqrt(prob * (1 - prob) / n)
        assert abs(counts[out] / n - prob) < 5 * se + 1e-9, (out, counts[out] / n, prob)
    assert set(counts) <= set(exact)


def test_residual_is_the_normalised_positive_part():
    p = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    q = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
    assert torch.allclose(residual(p, q), torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
    assert torch.equal(residual(p, p), p)  # nothing left: rejection cannot happen, any distribution is right


def test_bad_inputs_say_what_is_wrong():
    p, q = torch.full((3, 4), 0.25), torch.full((2, 4), 0.25)
    with pytest.raises(ValueError, match="gamma \\+ 1"):
        accept_draft(p, q, [0, 1, 2])
    q0 = q.clone()
    q0[0, 1] = 0
    with pytest.raises(ValueError, match="probability 0"):
        accept_draft(p, q0, [1, 2])


def _tiny(seed: int, layers: int) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=11, block_size=64, n_layer=layers, n_head=2, n_embd=16)).eval()


def test_greedy_speculative_decoding_equals_the_targets_greedy():
    target, draft = _tiny(0, 2), _tiny(1, 1)
    prompt = [1, 2, 3]
    got, stats = speculative_generate(target, draft, prompt, 20, gamma=3, temperature=0)
    seq = list(prompt)
    with torch.no_grad():
        for _ in range(20):
            seq.append(int(target(torch.tensor([seq]))[0][0, -1].argmax()))
    assert got == seq[3:]
    assert stats.emitted == 20 and sum(stats.per_step) == 20 and stats.target_calls == len(stats.per_step)


def test_a_draft_that_is_the_target_makes_every_call_count_gamma_plus_one():
    target = _tiny(0, 2)
    got, stats = speculative_generate(target, target, [4], 20, gamma=4, temperature=1.0,
                                      generator=torch.Generator().manual_seed(0))
    assert len(got) == 20 and stats.acceptance_rate == 1.0 and stats.per_step == [5, 5, 5, 5]
    with pytest.raises(ValueError, match="gamma"):
        speculative_generate(target, target, [4], 5, gamma=0)
