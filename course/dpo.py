"""Direct preference optimisation (DPO), from scratch (chapter 12).

Rafailov et al. (2023) showed that the policy maximising "reward minus
``beta`` times the KL divergence from a reference policy" can be written in
closed form, and turned around: any policy defines an *implicit reward*
``beta * (log pi(y|x) - log pi_ref(y|x))`` (up to a term that depends on the
prompt only, and cancels in a pair). Put that reward into the Bradley-Terry
loss of `course.rewards.bradley_terry_loss` and the reward model disappears:

    loss = -log sigmoid( beta * [ (log pi(y_c) - log pi_ref(y_c)) - (log pi(y_r) - log pi_ref(y_r)) ] )

for a chosen reply ``y_c`` and a rejected one ``y_r``, where ``log pi(y)`` is
the sum of the reply's token log-probabilities (`course.rollouts.reply_logprobs`).
The reference is the model before DPO (the chapter 11 assistant) and never
changes, so its log-probabilities are computed **once**, before training
(`reference_logprobs`), and cached. ``beta`` sets the exchange rate between
log-probability and reward: with a small beta a nat of change is worth little
reward, so the loss keeps pulling until the policy has moved far from the
reference; a large beta reaches the same margin with small moves. The chapter's
sweep measures how far each beta moved it.

`train_dpo` is the plain loop: shuffled batches of pairs, AdamW, the loss
above, and a log of the loss, the implicit-reward accuracy (the fraction of
pairs whose implicit reward prefers the chosen reply), the margin, and the
mean change of the log-probability of the chosen and of the rejected replies
(DPO can push both down, as long as the rejected goes down faster).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .chat_format import ChatTokenizer
from .preferences import PreferencePair
from .rewards import pair_batches
from .rollouts import reply_logprobs

__all__ = ["DPOHistory", "dpo_loss", "reference_logprobs", "train_dpo"]


def dpo_loss(
    policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor, beta: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """The DPO loss (mean over pairs) and the implicit rewards of the chosen and rejected replies (detached).

    Every argument but ``beta`` is a vector of summed reply log-probabilities, one per pair.
    """
    shapes = {tuple(t.shape) for t in (policy_chosen, policy_rejected, ref_chosen, ref_rejected)}
    if len(shapes) != 1:
        raise ValueError(f"the four log-probability vectors must have one shape, got {sorted(shapes)}.")
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not beta > 0:
        raise ValueError(f"beta must be a number > 0, got {beta!r}.")
    chosen = beta * (policy_chosen - ref_chosen)
    rejected = beta * (policy_rejected - ref_rejected)
    loss = -F.logsigmoid(chosen - rejected).mean()
    return loss, chosen.detach(), rejected.detach()


@torch.no_grad()
def reference_logprobs(
    reference: nn.Module, tokenizer: ChatTokenizer, pairs: Sequence[PreferencePair], batch_size: int = 64,
) -> tuple[Tensor, Tensor]:
    """Summed log-probabilities of every pair's chosen and rejected reply under the frozen reference."""
    chosen, rejected = [], []
    was_training = reference.training
    reference.eval()
    try:
        for i in range(0, len(pairs), batch_size):
            batch = pairs[i : i + batch_size]
            prompts = [p.prompt_ids for p in batch]
            chosen.append(reply_logprobs(reference, tokenizer, prompts, [p.chosen for p in batch]).sums)
            rejected.append(reply_logprobs(reference, tokenizer, prompts, [p.rejected for p in batch]).sums)
    finally:
        reference.train(was_training)
    return torch.cat(chosen).cpu(), torch.cat(rejected).cpu()


@dataclass
class DPOHistory:
    """One row per logged step: loss, implicit-reward accuracy and margin, mean log-prob changes."""

    rows: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def train_dpo(
    policy: nn.Module,
    tokenizer: ChatTokenizer,
    pairs: Sequence[PreferencePair],
    ref_chosen: Tensor,
    ref_rejected: Tensor,
    *,
    beta: float,
    steps: int,
    lr: float = 1e-4,
    batch_size: int = 32,
    seed: int = 0,
    log_every: int = 10,
) -> DPOHistory:
    """Train ``policy`` in place with the DPO loss on ``pairs`` (their reference log-probs cached)."""
    if len(pairs) != len(ref_chosen) or len(pairs) != len(ref_rejected):
        raise ValueError("ref_chosen and ref_rejected need one value per pair: compute them with "
                         "reference_logprobs(reference, tokenizer, pairs).")
    torch.manual_seed(seed)
    device = next(policy.parameters()).device
    opt = torch.optim.AdamW(policy.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.0)
    policy.train()
    history, start = DPOHistory(), time.perf_counter()
    for step, idx in zip(range(1, steps + 1), pair_batches(len(pairs), batch_size, seed)):
        batch = [pairs[i] for i in idx]
        prompts = [p.prompt_ids for p in batch] * 2
        lp = reply_logprobs(policy, tokenizer, prompts, [p.chosen for p in batch] + [p.rejected for p in batch]).sums
        pc, pr = lp[: len(batch)], lp[len(batch):]
        rc, rr = ref_chosen[idx].to(device), ref_rejected[idx].to(device)
        loss, chosen_reward, rejected_reward = dpo_loss(pc, pr, rc, rr, beta)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        opt.step()
        if step % log_every == 0 or step == steps:
            history.rows.append({
                "step": step, "loss": loss.item(),
                "reward_accuracy": float((chosen_reward > rejected_reward).float().mean()),
                "margin": float((chosen_reward - rejected_reward).mean()),
                "chosen_logp_change": float((pc.detach() - rc).mean()),
                "rejected_logp_change": float((pr.detach() - rr).mean()),
            })
    policy.eval()
    history.seconds = time.perf_counter() - start
    return history
