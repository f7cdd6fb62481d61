"""Rewards: the gold reward (a program) and a learned reward model (chapter 12).

**The gold reward.** People align assistants with what they prefer; here that
preference is written down as a program, so every method of the chapter can be
measured against the truth instead of against another model's opinion. The
chapter's prompts are arithmetic answered by heart (`PREFERENCE_TASKS`), and
the rule (`GOLD_RULE`) is:

* a right answer (the task's verifier accepts it) is worth **1**;
* a wrong *number* is worth up to **0.5**, less the further it is off:
  ``0.5 * max(0, 1 - |x - truth| / max(|truth|, 1))`` (a near miss is better
  than a wild guess, a preference a person grading answers might well have);
* anything that is not a number is worth **0**.

**The reward model.** A person cannot grade every reply, so one learns their
preferences from comparisons: pairs of replies to one prompt, one *chosen* and
one *rejected* (`course.preferences` builds them). `RewardModel` is chapter 07's
classifier with one output: the GPT body of the chapter 11 assistant and a
linear head on the hidden state of the last token of ``prompt + reply`` (the
reply's ``<|end|>``), giving one number, the reward. The Bradley-Terry model
says the chosen reply wins with probability ``sigmoid(r_chosen - r_rejected)``;
`bradley_terry_loss` is the negative log of that probability, averaged over
pairs. Only differences of rewards are learned: adding a constant to every
reward changes nothing.
"""

from __future__ import annotations

import copy
import random
import re
import time
from typing import Any, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .assistant_tasks import Example, Task, normalize
from .model import GPT

__all__ = ["GOLD_RULE", "PREFERENCE_TASKS", "RewardModel", "bradley_terry_loss", "calibration_bins", "gold_reward",
           "orient_pairs", "pair_batches", "reward_margins",
           "train_reward_model"]

PREFERENCE_TASKS = ("add", "subtract", "multiply")
GOLD_RULE = ("1 for a right answer; a wrong number earns 0.5 * max(0, 1 - |x - truth| / max(|truth|, 1)); "
             "anything else 0")
_NUMBER = re.compile(r"-?\d+")


def gold_reward(task: Task, example: Example, text: str) -> float:
    """The gold reward of reply ``text`` to ``example`` (`GOLD_RULE`): the verifier first, then the distance."""
    if not isinstance(text, str):
        raise TypeError(f"text must be the reply's text (a str), got {type(text).__name__}.")
    if task.score(text, example):
        return 1.0
    if "a" not in example.data or example.data.get("op") is None:
        return 0.0  # not arithmetic: right or wrong, nothing in between
    answer = normalize(text)
    if not _NUMBER.fullmatch(answer):
        return 0.0
    truth = int(task.reference(example))
    return 0.5 * max(0.0, 1.0 - abs(int(answer) - truth) / max(abs(truth), 1))


class RewardModel(nn.Module):
    """A GPT body (copied: the policy it came from is left alone) and a linear head to one number per reply.

    ``forward(ids, lengths)`` reads right-padded rows ``prompt + reply`` (batch, time) and returns the reward
    of each row (batch,): the head on the hidden state at position ``lengths - 1``, the row's last real token.
    """

    def __init__(self, gpt: GPT) -> None:
        super().__init__()
        self.gpt = copy.deepcopy(gpt)
        self.head = nn.Linear(gpt.config.n_embd, 1)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        if ids.dim() != 2 or lengths.shape != ids.shape[:1]:
            raise ValueError(f"ids must be (batch, time) and lengths (batch,), got {tuple(ids.shape)} and "
                             f"{tuple(lengths.shape)}.")
        if (lengths < 1).any() or (lengths > ids.size(1)).any():
            raise ValueError("every length must be between 1 and the width of ids.")
        hidden = self.gpt.hidden_states(ids)  # (B, T, n_embd)
        last = hidden[torch.arange(ids.size(0), device=ids.device), lengths - 1]
        return self.head(last).squeeze(-1)

    def score(self, prompts: Sequence[Sequence[int]], replies: Sequence[Sequence[int]], pad: int) -> Tensor:
        """The reward of each ``prompt + reply`` (ids), padded with ``pad`` into one batch."""
        rows = [list(p) + list(r) for p, r in zip(prompts, replies, strict=True)]
        width = max(len(r) for r in rows)
        device = self.head.weight.device
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=device)
        return self(ids, torch.tensor([len(r) for r in rows], device=device))


def bradley_terry_loss(r_chosen: Tensor, r_rejected: Tensor) -> Tensor:
    """Mean of ``-log sigmoid(r_chosen - r_rejected)``: the chosen reply should score higher.

    Written with ``logsigmoid`` (stable for any difference: ``log(sigmoid(d))`` underflows to ``-inf`` for
    d below about -100 in float32).
    """
    if r_chosen.shape != r_rejected.shape:
        raise ValueError(f"r_chosen and r_rejected must have one shape, got {tuple(r_chosen.shape)} and "
                         f"{tuple(r_rejected.shape)}.")
    return -F.logsigmoid(r_chosen - r_rejected).mean()


def calibration_bins(margins: Tensor, a_won: Tensor, bins: int = 10) -> list[dict[str, float]]:
    """Predicted vs observed: pairs binned by ``sigmoid(margin)``, with the fraction in each bin that A won.

    Each pair is shown in one orientation (A, B), chosen by a coin (`orient_pairs`): ``margins`` is
    ``r_A - r_B`` and ``a_won`` is 1 where the label says A was preferred. (Always putting the chosen reply
    first would make the observed fraction 1 in every bin.) A calibrated reward model's bins lie on the
    diagonal: of the pairs it gives 70%, A wins 70%. Empty bins are left out.
    """
    if margins.shape != a_won.shape or margins.dim() != 1:
        raise ValueError(f"margins and a_won must be two vectors of one length, got {tuple(margins.shape)} and "
                         f"{tuple(a_won.shape)}.")
    p = torch.sigmoid(margins.float())
    edges = torch.linspace(0, 1, bins + 1)
    out = []
    for i in range(bins):
        lo, hi = edges[i], edges[i + 1]
        inside = (p >= lo) & ((p < hi) if i < bins - 1 else (p <= hi))
        if inside.any():
            out.append({"low": float(lo), "high": float(hi), "n": int(inside.sum()),
                        "predicted": float(p[inside].mean()), "observed": float(a_won[inside].float().mean())})
    return out


def orient_pairs(r_chosen: Tensor, r_rejected: Tensor, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Each pair in a random orientation: (``r_A - r_B``, whether A is the chosen reply), for `calibration_bins`."""
    g = torch.Generator().manual_seed(seed)
    a_is_chosen = torch.rand(r_chosen.shape, generator=g) < 0.5
    margins = torch.where(a_is_chosen, r_chosen - r_rejected, r_rejected - r_chosen)
    return margins, a_is_chosen


def pair_batches(n: int, batch_size: int, seed: int) -> Iterator[list[int]]:
    """Endless batches of indices into ``n`` pairs: each pass a fresh seeded shuffle, every batch full."""
    if n < batch_size:
        raise ValueError(f"{n} pairs are fewer than one batch of {batch_size}.")
    rng, order = random.Random(seed), []
    while True:
        if len(order) < batch_size:
            fresh = list(range(n))
            rng.shuffle(fresh)
            order += fresh
        yield order[:batch_size]
        order = order[batch_size:]


@torch.no_grad()
def reward_margins(rm: RewardModel, pairs: Sequence[Any], pad: int, batch_size: int = 128) -> Tensor:
    """``r_chosen - r_rejected`` of every pair (objects with ``prompt_ids``, ``chosen``, ``rejected``), in eval mode."""
    was_training = rm.training
    rm.eval()
    out = []
    try:
        for i in range(0, len(pairs), batch_size):
            batch = pairs[i : i + batch_size]
            prompts = [p.prompt_ids for p in batch]
            out.append(rm.score(prompts, [p.chosen for p in batch], pad) - rm.score(prompts, [p.rejected for p in batch], pad))
    finally:
        rm.train(was_training)
    return torch.cat(out).cpu()


def train_reward_model(
    rm: RewardModel,
    pairs: Sequence[Any],
    pad: int,
    *,
    steps: int,
    lr: float = 1e-4,
    batch_size: int = 32,
    seed: int = 0,
    log_every: int = 25,
    val_pairs: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Train ``rm`` in place with the Bradley-Terry loss on shuffled batches of ``pairs`` (AdamW, clipping at 1).

    Returns ``{"rows": [...], "seconds": ...}``: every ``log_every`` steps the batch loss and, with ``val_pairs``,
    the share of held-out pairs whose chosen reply the model scores higher (the labels as given, noise included).
    """
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(rm.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.0)
    rows, start = [], time.perf_counter()
    rm.train()
    for step, idx in zip(range(1, steps + 1), pair_batches(len(pairs), batch_size, seed)):
        batch = [pairs[i] for i in idx]
        prompts = [p.prompt_ids for p in batch]
        rewards = rm.score(prompts * 2, [p.chosen for p in batch] + [p.rejected for p in batch], pad)
        loss = bradley_terry_loss(rewards[: len(batch)], rewards[len(batch):])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(rm.parameters(), 1.0)
        opt.step()
        if step % log_every == 0 or step == steps:
            row = {"step": step, "loss": loss.item()}
            if val_pairs:
                row["val_accuracy"] = float((reward_margins(rm, val_pairs, pad) > 0).float().mean())
            rows.append(row)
    rm.eval()
    return {"rows": rows, "seconds": time.perf_counter() - start}
