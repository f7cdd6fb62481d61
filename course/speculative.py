"""Chapter 13: speculative decoding (Leviathan et al. 2023; Chen et al. 2023), exact by construction.

A small *draft* model proposes ``gamma`` tokens, one after another (cheap); the large
*target* model scores all of them in one forward pass (one call instead of ``gamma``).
Then, for each proposed token x in turn, with p the target's and q the draft's
probabilities at that position:

* accept x with probability min(1, p(x) / q(x));
* at the first rejection, emit a token drawn from the *residual* distribution
  norm(max(0, p - q)) instead, and stop;
* if all ``gamma`` are accepted, emit one more token drawn from the target's
  distribution after them (the target computed it in the same pass).

Every emitted token is distributed exactly as the target alone would have sampled it:
P(emit x) = q(x) min(1, p(x)/q(x)) + P(reject) · residual(x) = min(q(x), p(x)) + max(0, p(x) - q(x)) = p(x).
`step_distribution` and `stream_distribution` compute the output distribution by
enumeration, so the tests can check that equality to rounding, not just by sampling.
Greedy decoding is the special case where p and q put all their mass on their argmax:
a drafted token is kept when it equals the target's argmax.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = ["SpeculativeStats", "accept_draft", "residual", "speculative_generate", "step_distribution",
           "stream_distribution"]

Dist = Callable[[tuple[int, ...]], Sequence[float]]  # a prefix of tokens -> next-token probabilities


def residual(p: Tensor, q: Tensor) -> Tensor:
    """norm(max(0, p - q)): where the target wants more than the draft gave. Equal to p when p = q would leave
    nothing (a rejection is then impossible, so any distribution is correct)."""
    r = (p - q).clamp(min=0)
    total = r.sum(-1, keepdim=True)
    return torch.where(total > 0, r / total.clamp(min=torch.finfo(r.dtype).tiny), p)


def accept_draft(p: Tensor, q: Tensor, draft: Sequence[int], generator: torch.Generator | None = None) -> list[int]:
    """The tokens one speculative step emits. ``p``: (gamma + 1, V) target probabilities at each drafted position
    and after the last; ``q``: (gamma, V) the draft's; ``draft``: the gamma drafted tokens (drawn from q)."""
    gamma = len(draft)
    if p.shape[0] != gamma + 1 or q.shape[0] != gamma or p.shape[-1] != q.shape[-1]:
        raise ValueError(f"p needs gamma + 1 = {gamma + 1} rows and q gamma = {gamma} rows of the same vocabulary; "
                         f"got p {tuple(p.shape)}, q {tuple(q.shape)}.")
    out: list[int] = []
    for i, x in enumerate(draft):
        if q[i, x] <= 0:
            raise ValueError(f"the draft gave token {x} probability 0 at position {i}: it cannot have drafted it.")
        u = torch.rand((), generator=generator, dtype=torch.float64)
        if u * q[i, x] < p[i, x]:  # u < p/q, without dividing
            out.append(int(x))
            continue
        out.append(int(torch.multinomial(residual(p[i], q[i]), 1, generator=generator)))
        return out
    out.append(int(torch.multinomial(p[gamma], 1, generator=generator)))
    return out


def step_distribution(p_fn: Dist, q_fn: Dist, prefix: tuple[int, ...], gamma: int) -> dict[tuple[int, ...], float]:
    """The exact distribution of what one step emits after ``prefix``, by enumerating every draft and outcome."""
    result: dict[tuple[int, ...], float] = defaultdict(float)

    def go(accepted: tuple[int, ...], mass: float) -> None:
        here = prefix + accepted
        p = [float(x) for x in p_fn(here)]
        if len(accepted) == gamma:
            for t, pt in enumerate(p):
                if pt > 0:
                    result[accepted + (t,)] += mass * pt
            return
        q = [float(x) for x in q_fn(here)]
        rejected = 0.0
        for x, qx in enumerate(q):
            if qx <= 0:
                continue
            keep = min(1.0, p[x] / qx)
            if keep > 0:
                go(accepted + (x,), mass * qx * keep)
            rejected += qx * (1.0 - keep)
        if rejected > 0:
            r = residual(torch.tensor(p, dtype=torch.float64), torch.tensor(q, dtype=torch.float64)).tolist()
            for t, rt in enumerate(r):
                if rt > 0:
                    result[accepted + (t,)] += mass * rejected * rt

    go((), 1.0)
    return dict(result)


def stream_distribution(p_fn: Dist, q_fn: Dist, prefix: tuple[int, ...], gamma: int, length: int
                        ) -> dict[tuple[int, ...], float]:
    """The exact distribution of the first ``length`` tokens that repeated speculative steps emit."""
    result: dict[tuple[int, ...], float] = defaultdict(float)

    def go(emitted: tuple[int, ...], mass: float) -> None:
        for out, prob in step_distribution(p_fn, q_fn, prefix + emitted, gamma).items():
            now = emitted + out
            if len(now) >= length:
                result[now[:length]] += mass * prob
            else:
                go(now, mass * prob)

    go((), 1.0)
    return dict(result)


@dataclass
class SpeculativeStats:
    """What a speculative run did: target passes, drafted and accepted tokens."""

    target_calls: int = 0
    drafted: int = 0
    accepted: int = 0
    emitted: int = 0
    per_step: list[int] = field(default_factory=list)  # tokens emitted by each step (1 .. gamma + 1)

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.drafted if self.drafted else 0.0

    @property
    def tokens_per_target_call(self) -> float:
        return self.emitted / self.target_calls if self.target_calls else 0.0


def _probs(logits: Tensor, temperature: float) -> Tensor:
    if temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).to(torch.float64)
    return torch.softmax(logits.double() / temperature, dim=-1)


@torch.no_grad()
def speculative_generate(target: torch.nn.Module, draft: torch.nn.Module, ids: Sequence[int], max_new_tokens: int, *,
                         gamma: int = 4, temperature: float = 1.0, generator: torch.Generator | None = None
                         ) -> tuple[list[int], SpeculativeStats]:
    """Sample ``max_new_tokens`` after ``ids`` from ``target`` with ``draft`` proposing ``gamma`` tokens per step.

    Both models take (1, T) ids and return (logits, _), and share a vocabulary. Written for clarity: each
    call re-reads the whole context (no KV cache), so it shows the algorithm and counts the target's calls; the
    time a real engine saves comes from those calls. ``temperature=0`` is greedy decoding (the same tokens as
    the target's greedy decoding). The context must fit both models' ``block_size``.
    """
    if gamma < 1:
        raise ValueError(f"gamma (tokens drafted per step) must be at least 1, got {gamma}.")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}.")
    seq = list(ids)
    stats = SpeculativeStats()
    start = len(seq)
    while len(seq) - start < max_new_tokens:
        drafted, q_rows = [], []
        for _ in range(gamma):
            logits, _ = draft(torch.tensor([seq + drafted]))
            q = _probs(logits[0, -1], temperature)
            drafted.append(int(torch.multinomial(q.float(), 1, generator=generator)) if temperature > 0
                           else int(q.argmax()))
            q_rows.append(q)
        logits, _ = target(torch.tensor([seq + drafted]))
        stats.target_calls += 1
        p = _probs(logits[0, len(seq) - 1:], temperature)  # gamma + 1 rows: at each drafted position and after
        out = accept_draft(p, torch.stack(q_rows), drafted, generator)
        accepted = len(out) - 1 if len(out) <= gamma else gamma
        stats.drafted += gamma
        stats.accepted += accepted
        room = max_new_tokens - (len(seq) - start)
        out = out[:room]
        stats.emitted += len(out)
        stats.per_step.append(len(out))
        seq.extend(out)
    return seq[start:], stats
