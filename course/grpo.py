"""Reinforcement learning with verifiable rewards: REINFORCE and GRPO, from scratch (chapter 12).

The tasks of chapter 11 come with verifiers, so a reply's reward needs no
person and no reward model: 1 if the verifier accepts it, else 0. One step of
training:

1. take ``prompts_per_step`` prompts from the training split and sample a
   *group* of ``group_size`` replies to each from the current policy
   (`course.rollouts.sample_group`, temperature 1);
2. reward every reply;
3. turn rewards into **advantages** within each group (`group_advantages`):
   ``A = r - mean(group)`` (REINFORCE with the group's mean as baseline), and for
   GRPO also divided by the group's standard deviation (the sample standard
   deviation, n - 1, as TRL computes it) plus a small ``eps``. A group whose
   replies all got the same reward has A = 0 for every reply: it teaches nothing
   (all right, or all wrong), which is why RL needs prompts that are neither too
   easy nor too hard for the policy;
4. update the policy to make replies with A > 0 likelier and A < 0 less likely.

**REINFORCE** (`reinforce_loss`): ``-mean(A * log pi(reply))``, one update
per batch of samples.

**GRPO** (Shao et al. 2024, DeepSeekMath; `grpo_loss`): the same advantages
divided by the group's spread, PPO's clipped ratio per token, and optionally a
KL penalty to the reference (the model before RL). Per token ``t`` of a reply,
with ``ratio = pi(t) / pi_old(t)`` (``pi_old``: the policy that sampled it):

    min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A) - kl_coef * k3,
    k3 = pi_ref(t) / pi(t) - log(pi_ref(t) / pi(t)) - 1     (>= 0, unbiased for the KL)

averaged over the reply's tokens, then over replies, and negated (a loss).
Taking several optimizer steps on one batch of samples (``updates_per_batch``)
is what makes the ratio differ from 1 and the clip matter; with one update the
ratio is exactly 1 and GRPO is REINFORCE with scaled advantages.

`train_rl` runs either method and logs, at every step: the mean reward, the
fraction of groups whose rewards were all equal, the mean reply length, the
policy's entropy, the KL divergence to the reference (the mean over sampled
replies of ``log pi - log pi_ref``, an unbiased estimate of KL(pi || pi_ref))
and, for GRPO, the fraction of tokens whose ratio was clipped.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Mapping

import torch
from torch import Tensor, nn

from .assistant_tasks import Task
from .chat_format import ChatTokenizer
from .rewards import gold_reward
from .rollouts import reply_logprobs, sample_group

__all__ = ["RLConfig", "RLHistory", "grpo_loss", "group_advantages", "reinforce_loss", "train_rl"]


def group_advantages(rewards: Tensor, *, scale: bool = True, eps: float = 1e-4) -> Tensor:
    """Advantages of a (groups, group_size) reward matrix: minus the group mean, divided by its spread if ``scale``.

    The spread is the sample standard deviation (``n - 1``) plus ``eps``. A group of equal rewards gets zeros.
    """
    if rewards.dim() != 2 or rewards.size(1) < 2:
        raise ValueError(f"rewards must be (groups, group_size) with group_size >= 2, got {tuple(rewards.shape)}: "
                         "a group of one has no baseline but itself.")
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    if not scale:
        return centred
    return centred / (rewards.std(dim=1, keepdim=True) + eps)


def reinforce_loss(logps: Tensor, mask: Tensor, advantages: Tensor) -> Tensor:
    """``-mean(A * log pi(reply))``: summed token log-probs (batch, tokens) under ``mask``, one advantage per reply."""
    if logps.shape != mask.shape or advantages.shape != logps.shape[:1]:
        raise ValueError(f"logps and mask must be (batch, tokens) and advantages (batch,), got "
                         f"{tuple(logps.shape)}, {tuple(mask.shape)} and {tuple(advantages.shape)}.")
    return -(advantages.detach() * (logps * mask).sum(-1)).mean()


def grpo_loss(
    logps: Tensor, old_logps: Tensor, ref_logps: Tensor | None, mask: Tensor, advantages: Tensor,
    *, clip: float = 0.2, kl_coef: float = 0.0,
) -> tuple[Tensor, dict[str, float]]:
    """GRPO's loss (module docstring) and its statistics: ``clip_fraction``, ``kl`` (mean k3 per token).

    ``logps`` (with gradients), ``old_logps`` and ``ref_logps`` are per-token log-probabilities
    (batch, tokens); ``mask`` marks each reply's tokens; ``advantages`` has one value per reply.
    """
    if logps.shape != old_logps.shape or logps.shape != mask.shape or advantages.shape != logps.shape[:1]:
        raise ValueError(f"logps, old_logps and mask must be (batch, tokens) and advantages (batch,), got "
                         f"{tuple(logps.shape)}, {tuple(old_logps.shape)}, {tuple(mask.shape)}, "
                         f"{tuple(advantages.shape)}.")
    if kl_coef and ref_logps is None:
        raise ValueError("kl_coef > 0 needs the reference's log-probabilities (ref_logps).")
    a = advantages.detach()[:, None]
    ratio = torch.exp(logps - old_logps.detach())
    surrogate = torch.minimum(ratio * a, ratio.clamp(1 - clip, 1 + clip) * a)
    per_token = -surrogate
    kl = torch.zeros_like(logps)
    if ref_logps is not None:
        d = ref_logps.detach() - logps
        kl = torch.exp(d) - d - 1
        if kl_coef:
            per_token = per_token + kl_coef * kl
    lengths = mask.sum(-1).clamp(min=1)
    loss = ((per_token * mask).sum(-1) / lengths).mean()
    clipped = ((ratio - 1).abs() > clip) & (mask > 0)
    stats = {"clip_fraction": float(clipped.sum() / mask.sum().clamp(min=1)),
             "kl": float((kl.detach() * mask).sum() / mask.sum().clamp(min=1))}
    return loss, stats


@dataclass(frozen=True)
class RLConfig:
    """One RL run's settings. ``method`` is ``"grpo"`` or ``"reinforce"``; ``reward`` is ``"verifier"`` (1 if the
    task's verifier accepts the reply, else 0) or ``"gold"`` (`course.rewards.gold_reward`: partial credit for near
    misses, so fewer groups are all equal)."""

    method: str = "grpo"
    steps: int = 100
    prompts_per_step: int = 8
    group_size: int = 8
    lr: float = 1e-4
    clip: float = 0.2
    kl_coef: float = 0.0
    updates_per_batch: int = 2
    max_new_tokens: int = 16
    reward: str = "verifier"

    def __post_init__(self) -> None:
        if self.method not in ("grpo", "reinforce"):
            raise ValueError(f"method must be 'grpo' or 'reinforce', got {self.method!r}.")
        if self.reward not in ("verifier", "gold"):
            raise ValueError(f"reward must be 'verifier' (1 if right, else 0) or 'gold' (course.rewards.gold_reward), "
                             f"got {self.reward!r}.")
        for name in ("steps", "prompts_per_step", "updates_per_batch", "max_new_tokens"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}.")
        if isinstance(self.group_size, bool) or not isinstance(self.group_size, int) or self.group_size < 2:
            raise ValueError(f"group_size must be an int >= 2 (the group is the baseline), got {self.group_size!r}.")
        if self.kl_coef < 0 or not 0 < self.clip < 1 or not self.lr > 0:
            raise ValueError("kl_coef must be >= 0, clip in (0, 1) and lr > 0.")


@dataclass
class RLHistory:
    """One row per step (see the module docstring for the columns), the settings and the wall time."""

    config: dict
    rows: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def train_rl(
    policy: nn.Module,
    reference: nn.Module,
    tokenizer: ChatTokenizer,
    tasks: Mapping[str, Task],
    config: RLConfig,
    *,
    seed: int = 0,
    on_step: Callable[[int, nn.Module], None] | None = None,
) -> RLHistory:
    """Train ``policy`` in place with verifiable rewards on the training split of ``tasks``.

    ``on_step(step, policy)``, if given, is called after every step (to evaluate along the way); the time it
    takes is not counted in ``history.seconds``.
    """
    torch.manual_seed(seed)
    prompt_rng = random.Random(seed)
    device = next(policy.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    names = list(tasks)
    opt = torch.optim.AdamW(policy.parameters(), lr=config.lr, betas=(0.9, 0.99), weight_decay=0.0)
    reference.eval()
    history, start, outside = RLHistory(asdict(config)), time.perf_counter(), 0.0
    for step in range(1, config.steps + 1):
        policy.eval()
        groups, rewards, entropies = [], [], []
        for _ in range(config.prompts_per_step):
            task = tasks[prompt_rng.choice(names)]
            ex = task.make(prompt_rng, "train")
            group = sample_group(policy, tokenizer, ex.prompt, config.group_size, generator=generator,
                                 max_new_tokens=config.max_new_tokens)
            groups.extend(group)
            if config.reward == "gold":
                rewards.append([gold_reward(task, ex, r.text) for r in group])
            else:
                rewards.append([float(task.score(r.text, ex)) for r in group])
            entropies.extend(r.entropy for r in group)
        reward = torch.tensor(rewards, device=device)
        advantages = group_advantages(reward, scale=config.method == "grpo").flatten()
        prompts = [r.prompt_ids for r in groups]
        replies = [r.reply_ids for r in groups]
        with torch.no_grad():
            old = reply_logprobs(policy, tokenizer, prompts, replies)
            ref = reply_logprobs(reference, tokenizer, prompts, replies)
        policy.train()
        stats: dict[str, float] = {}
        updates = 1 if config.method == "reinforce" else config.updates_per_batch
        for _ in range(updates):
            new = reply_logprobs(policy, tokenizer, prompts, replies)
            if config.method == "reinforce":
                loss = reinforce_loss(new.logps, new.mask, advantages)
            else:
                loss, stats = grpo_loss(new.logps, old.logps, ref.logps, new.mask, advantages,
                                        clip=config.clip, kl_coef=config.kl_coef)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
            opt.step()
        equal = (reward.max(dim=1).values == reward.min(dim=1).values).float().mean()
        history.rows.append({
            "step": step,
            "reward": float(reward.mean()),
            "all_equal_groups": float(equal),
            "length": float(old.lengths.mean()),
            "entropy": sum(entropies) / len(entropies),
            "kl": float((old.sums - ref.sums).mean()),
            "clip_fraction": stats.get("clip_fraction", 0.0),
            "loss": loss.item(),
        })
        if on_step is not None:
            t = time.perf_counter()
            policy.eval()
            on_step(step, policy)
            outside += time.perf_counter() - t
    policy.eval()
    history.seconds = time.perf_counter() - start - outside
    return history
