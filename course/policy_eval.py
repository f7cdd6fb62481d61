"""Measuring a policy against the truth: pass@k, exact match, gold reward and KL (chapter 12).

Every method of chapter 12 (best-of-N, DPO, GRPO) is scored on the same
held-out prompts by `evaluate_policy`:

* **greedy exact match**: the verifier on the greedy reply (how the assistant
  answers in the chat);
* **pass@k** for k = 1 .. ``samples``: ``samples`` replies at temperature 1 per
  prompt, ``c`` of them right, and the unbiased estimator
  ``1 - C(n - c, k) / C(n, k)`` of chapter 11 (`course.evals.pass_at_k`),
  averaged over prompts. pass@1 is the mean accuracy of a sampled reply;
* **gold reward**: the mean of `course.rewards.gold_reward` over the sampled
  replies;
* **KL to the reference**: the mean over the sampled replies of
  ``log pi(reply) - log pi_ref(reply)``, an unbiased estimate of
  KL(pi || pi_ref) in nats per reply (it can come out slightly negative by
  chance when the two policies are close);
* the mean reply length (tokens, with ``<|end|>``) and the share of replies
  that ended their turn.

The prompts are fixed by ``seed`` and ``split``: two policies evaluated with
the same arguments answer the same questions, and their draws use the same
seeded generator.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from .assistant_tasks import Task
from .chat_format import ChatTokenizer
from .evals import pass_at_k
from .rewards import gold_reward
from .rollouts import reply_logprobs, sample_group

__all__ = ["evaluate_policy"]


@torch.no_grad()
def evaluate_policy(
    policy: nn.Module,
    tokenizer: ChatTokenizer,
    tasks: Mapping[str, Task],
    split: str,
    prompts_per_task: int,
    *,
    samples: int = 8,
    reference: nn.Module | None = None,
    seed: int = 0,
    max_new_tokens: int = 16,
) -> dict[str, dict]:
    """The measures of the module docstring, per task and ``"all"`` (every prompt of every task)."""
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be an int >= 1, got {samples!r}.")
    device = next(policy.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    per_task: dict[str, dict] = {}
    pooled: dict[str, list] = {"greedy": [], "counts": [], "gold": [], "kl": [], "length": [], "ended": []}
    for name, task in tasks.items():
        rows: dict[str, list] = {key: [] for key in pooled}
        for i in range(prompts_per_task):
            ex = task.make(seed + i, split)
            greedy = sample_group(policy, tokenizer, ex.prompt, 1, temperature=0, max_new_tokens=max_new_tokens)[0]
            rows["greedy"].append(float(task.score(greedy.text, ex)))
            group = sample_group(policy, tokenizer, ex.prompt, samples, generator=generator,
                                 max_new_tokens=max_new_tokens)
            rows["counts"].append(sum(task.score(r.text, ex) for r in group))
            rows["gold"].extend(gold_reward(task, ex, r.text) for r in group)
            rows["length"].extend(len(r.reply_ids) for r in group)
            rows["ended"].extend(float(r.ended) for r in group)
            if reference is not None:
                ref = reply_logprobs(reference, tokenizer, [r.prompt_ids for r in group],
                                     [r.reply_ids for r in group]).sums
                rows["kl"].extend((torch.tensor([r.logprob for r in group]) - ref.cpu()).tolist())
        per_task[name] = _summary(rows, samples)
        for key in pooled:
            pooled[key].extend(rows[key])
    per_task["all"] = _summary(pooled, samples)
    return per_task


def _summary(rows: Mapping[str, list], samples: int) -> dict:
    mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")  # noqa: E731
    out = {
        "prompts": len(rows["greedy"]),
        "greedy": mean(rows["greedy"]),
        "pass_at_k": {k: mean([pass_at_k(samples, c, k) for c in rows["counts"]]) for k in range(1, samples + 1)},
        "gold": mean(rows["gold"]),
        "length": mean(rows["length"]),
        "ended": mean(rows["ended"]),
    }
    if rows["kl"]:
        out["kl"] = mean(rows["kl"])
    return out
