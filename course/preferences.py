"""Preference pairs from the assistant's own replies, and best-of-N (chapter 12).

**Pairs, on-policy.** For each prompt, `sample_pairs` draws ``k`` replies from
the chapter 11 assistant (`course.rollouts.sample_group`, temperature 1),
scores them with the gold reward (`course.rewards.gold_reward`) and keeps the
best as *chosen* and the worst as *rejected*. A prompt whose replies all score
the same gives no pair (a tie says nothing about what is preferred); how many
were dropped is counted. Then the annotator errs: each pair's labels are
swapped with probability ``noise`` (seeded, recorded in ``flipped``), as a
person marking thousands of pairs sometimes does. A reward model trained on
such labels can agree with at most about ``1 - noise`` of held-out labels made
the same way: that is its ceiling.

**Best-of-N.** Draw N replies and keep the one a scorer likes best: no training
at all, only N times the sampling. With ``k`` replies per prompt already drawn
and scored, `best_of_n_value` gives the *exact* expected gold reward of the
pick over every way of choosing N of the k (without replacement): sort the
replies by the scorer; the one with ``j`` replies below it is the best of a
random N-subset with probability ``C(j, N-1) / C(k, N)``. (Ties in the scorer's
values are broken by the order given, so shuffle first.) With the scorer equal
to the gold reward itself this is the ceiling; with the reward model it is what
a real system gets; with N = 1 it is plain sampling.

How far does best-of-N move from the policy it samples? `best_of_n_kl` is the
usual analytic figure, ``log N - (N - 1) / N`` nats: Stiennon et al. (2020)
used it, and Beirami et al. (2024) proved it is an **upper bound** on the true
KL divergence of the best-of-N distribution from the policy (equal only in
special cases).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
from torch import nn

from .assistant_tasks import Example, Task
from .chat_format import ChatTokenizer
from .rewards import gold_reward
from .rollouts import sample_group

__all__ = ["PreferencePair", "PairSet", "best_of_n_kl", "best_of_n_value", "sample_pairs"]


@dataclass(frozen=True)
class PreferencePair:
    """Two replies to one prompt, as labelled: ``chosen`` over ``rejected`` (ids, with the final ``<|end|>``).

    ``gold_chosen`` and ``gold_rejected`` are their gold rewards; ``flipped`` says the annotator swapped them
    (then the gold reward of ``chosen`` is the lower one).
    """

    task: str
    key: str
    prompt_ids: tuple[int, ...]
    chosen: tuple[int, ...]
    rejected: tuple[int, ...]
    chosen_text: str
    rejected_text: str
    gold_chosen: float
    gold_rejected: float
    flipped: bool


@dataclass
class PairSet:
    """The pairs of one split, with what was left out: prompts whose ``k`` replies all tied."""

    pairs: list[PreferencePair]
    prompts: int
    ties: int

    @property
    def noise(self) -> float:
        """The fraction of pairs whose labels were swapped."""
        return sum(p.flipped for p in self.pairs) / max(len(self.pairs), 1)


def sample_pairs(
    model: nn.Module,
    tokenizer: ChatTokenizer,
    tasks: Mapping[str, Task],
    split: str,
    prompts_per_task: int,
    *,
    k: int = 8,
    noise: float = 0.2,
    seed: int = 0,
    max_new_tokens: int = 16,
) -> PairSet:
    """Best-vs-worst pairs of ``k`` on-policy replies per prompt, labels swapped with probability ``noise``."""
    if not 0 <= noise < 0.5:
        raise ValueError(f"noise is the probability of a swapped label, in [0, 0.5), got {noise!r}: at 0.5 the "
                         "labels say nothing.")
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ValueError(f"k must be an int >= 2 (a pair needs two replies), got {k!r}.")
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    coin = random.Random(seed)
    pairs, ties, total = [], 0, 0
    for name, task in tasks.items():
        for i in range(prompts_per_task):
            ex: Example = task.make(seed * 1_000_003 + i, split)
            group = sample_group(model, tokenizer, ex.prompt, k, generator=generator, max_new_tokens=max_new_tokens)
            golds = [gold_reward(task, ex, r.text) for r in group]
            total += 1
            best = max(range(k), key=lambda j: golds[j])
            worst = min(range(k), key=lambda j: golds[j])
            if golds[best] == golds[worst]:
                ties += 1
                continue
            c, r = group[best], group[worst]
            flipped = coin.random() < noise
            if flipped:
                c, r = r, c
            pairs.append(PreferencePair(name, ex.key, c.prompt_ids, c.reply_ids, r.reply_ids, c.text, r.text,
                                        golds[best] if not flipped else golds[worst],
                                        golds[worst] if not flipped else golds[best], flipped))
    return PairSet(pairs, total, ties)


def best_of_n_value(scores: Sequence[float], gold: Sequence[float], n: int) -> float:
    """The expected gold reward of the reply that ``scores`` ranks first among N drawn from these k (exact).

    ``scores`` and ``gold`` hold one value per reply of one prompt (k of each, k >= n). Ties in ``scores`` are
    broken by position (the later reply counts as higher): shuffle the replies first.
    """
    k = len(scores)
    if len(gold) != k:
        raise ValueError(f"scores and gold must have one value per reply, got {k} and {len(gold)}.")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= k:
        raise ValueError(f"n must be an int between 1 and the number of replies ({k}), got {n!r}.")
    order = sorted(range(k), key=lambda i: (scores[i], i))
    total = math.comb(k, n)
    return sum(math.comb(j, n - 1) * gold[i] for j, i in enumerate(order)) / total


def best_of_n_kl(n: int) -> float:
    """``log n - (n - 1) / n`` nats: the analytic figure for best-of-n's KL from the policy (an upper bound)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}.")
    return math.log(n) - (n - 1) / n
