"""Many replies to one prompt at once, and the log-probability of any reply (chapter 12).

Preference learning and reinforcement learning both need the same two things
from the chapter 11 assistant: **samples** (several replies to a prompt, to
compare, rank or reward) and **log-probabilities** (how likely a given reply is
under a model, with gradients when we train on it).

**The policy.** A reply here is text and ``<|end|>``, no calculator call: the
tasks of chapter 12 are answered by heart. So the policy is the model's next
token distribution *restricted* to the tokens such a reply may hold (every
character of the chat tokenizer's text vocabulary and ``<|end|>``; the role
tokens, ``<|tool_call|>`` and ``<|tool_result|>`` are set to ``-inf``, as the
chat engine does with ``tools=False``), at temperature 1. `reply_logprobs`
scores a reply under exactly that distribution, and `sample_group` at
``temperature=1`` draws from exactly it, so the log-probability recorded while
sampling equals the one recomputed later (a test checks), which is what the
importance ratios of GRPO and the KL estimates rely on.

`sample_group(model, tokenizer, messages, n)` renders the prompt
(`course.chat_format.render_prompt`), runs it through the model once (a batch
of one), copies the KV cache ``n`` times and then decodes the ``n`` replies
side by side, one token per step for all of them. A reply ends at its
``<|end|>`` (kept in its ids: the model must learn to stop) or at
``max_new_tokens`` (``ended=False``). Rows that have ended keep being fed
``<|end|>`` until all have, and those steps are thrown away. ``temperature=0``
is greedy: every row is the argmax, the same reply as
``course.chat_engine.reply(..., tools=False)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .chat_format import ChatTokenizer, render_prompt
from .evaluate import eval_mode

__all__ = ["Rollout", "reply_mask", "reply_logprobs", "sample_group", "TokenLogprobs"]


@dataclass(frozen=True)
class Rollout:
    """One sampled reply: its ids (with the final ``<|end|>`` when it ended), text and statistics.

    ``logprob`` is the sum of the policy's log-probabilities of ``reply_ids`` (temperature 1, see the module
    docstring), ``entropy`` the mean entropy (nats) of the policy's distribution at each of its steps.
    """

    prompt_ids: tuple[int, ...]
    reply_ids: tuple[int, ...]
    text: str
    ended: bool
    logprob: float
    entropy: float


def reply_mask(tokenizer: ChatTokenizer, vocab_size: int, device: torch.device | str = "cpu") -> Tensor:
    """Boolean (vocab_size,): True for the tokens a reply may hold (text characters and ``<|end|>``)."""
    if not isinstance(tokenizer, ChatTokenizer):
        raise TypeError(f"tokenizer must be a course.chat_format.ChatTokenizer, got {type(tokenizer).__name__}.")
    if vocab_size < tokenizer.vocab_size:
        raise ValueError(f"the model has {vocab_size} token rows but the chat tokenizer has {tokenizer.vocab_size} "
                         "ids: use a model fine-tuned in the chat format (chapter 11).")
    mask = torch.zeros(vocab_size, dtype=torch.bool, device=device)
    mask[: tokenizer.text.vocab_size] = True
    mask[tokenizer.end_id] = True
    return mask


def _masked_log_softmax(logits: Tensor, mask: Tensor) -> Tensor:
    return F.log_softmax(logits.float().masked_fill(~mask, float("-inf")), dim=-1)


def _prompt_ids(tokenizer: ChatTokenizer, messages: Sequence[Mapping[str, Any]] | Sequence[int]) -> list[int]:
    if len(messages) and isinstance(messages[0], int):
        return list(messages)  # type: ignore[arg-type]
    return render_prompt(messages, tokenizer)  # type: ignore[arg-type]


@torch.no_grad()
def sample_group(
    model: nn.Module,
    tokenizer: ChatTokenizer,
    messages: Sequence[Mapping[str, Any]] | Sequence[int],
    n: int,
    *,
    temperature: float = 1.0,
    max_new_tokens: int = 24,
    generator: torch.Generator | None = None,
) -> list[Rollout]:
    """``n`` replies to one prompt (chat messages, or the rendered prompt's ids), decoded side by side.

    ``temperature`` reshapes the draw (0 = greedy); the recorded ``logprob`` and ``entropy`` are always the
    policy's (temperature 1). ``generator`` seeds the draws (a ``torch.Generator`` on the model's device).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}.")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an int >= 1, got {max_new_tokens!r}.")
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or not temperature >= 0:
        raise ValueError(f"temperature must be a number >= 0 (0 is greedy), got {temperature!r}.")
    prompt = _prompt_ids(tokenizer, messages)
    block = model.config.block_size
    if len(prompt) + max_new_tokens > block:
        raise ValueError(f"the prompt ({len(prompt)} tokens) and max_new_tokens={max_new_tokens} do not fit the "
                         f"model's context of {block} tokens: shorten the prompt or ask for fewer tokens.")
    device = next(model.parameters()).device
    mask = reply_mask(tokenizer, model.config.vocab_size, device)
    end = tokenizer.end_id
    with eval_mode(model):
        cache = model.new_cache()
        logits, _ = model(torch.tensor([prompt], device=device), cache=cache)
        cache.layers = [None if kv is None else (kv[0].expand(n, -1, -1, -1).contiguous(),
                                                 kv[1].expand(n, -1, -1, -1).contiguous()) for kv in cache.layers]
        last = logits[:, -1].expand(n, -1)
        ids = torch.zeros(n, max_new_tokens, dtype=torch.long, device=device)
        logps = torch.zeros(n, max_new_tokens, device=device)
        ents = torch.zeros(n, max_new_tokens, device=device)
        alive = torch.ones(n, dtype=torch.bool, device=device)
        lengths = torch.full((n,), max_new_tokens, dtype=torch.long, device=device)
        for t in range(max_new_tokens):
            logp = _masked_log_softmax(last, mask)  # (n, V): the policy
            if temperature == 0:
                token = logp.argmax(-1)
            else:
                probs = F.softmax(logp / temperature, dim=-1)
                token = torch.multinomial(probs, 1, generator=generator).squeeze(1)
            token = torch.where(alive, token, torch.full_like(token, end))
            ids[:, t] = token
            logps[:, t] = logp.gather(1, token[:, None]).squeeze(1)
            p = logp.exp()
            ents[:, t] = -(p * logp.nan_to_num(neginf=0.0)).sum(-1)
            finished = alive & (token == end)
            lengths = torch.where(finished, torch.full_like(lengths, t + 1), lengths)
            alive = alive & ~finished
            if not alive.any() or t == max_new_tokens - 1:
                break
            pos = torch.tensor([len(prompt) + t], device=device)
            last = model(token[:, None], cache=cache, position_ids=pos)[0][:, -1]
    out = []
    for i in range(n):
        k = int(lengths[i])
        reply = ids[i, :k].tolist()
        ended = reply[-1] == end
        text = tokenizer.decode(reply[:-1] if ended else reply)
        out.append(Rollout(tuple(prompt), tuple(reply), text, ended, float(logps[i, :k].sum()),
                           float(ents[i, :k].mean())))
    return out


@dataclass
class TokenLogprobs:
    """Per-token log-probabilities of replies, right-padded: ``logps`` and ``mask`` are (batch, longest reply).

    ``mask`` is 1.0 on a reply's own tokens and 0.0 on padding; ``sums`` and ``lengths`` are per reply.
    """

    logps: Tensor
    mask: Tensor

    @property
    def sums(self) -> Tensor:
        return (self.logps * self.mask).sum(-1)

    @property
    def lengths(self) -> Tensor:
        return self.mask.sum(-1)


def reply_logprobs(
    model: nn.Module,
    tokenizer: ChatTokenizer,
    prompts: Sequence[Sequence[int]],
    replies: Sequence[Sequence[int]],
) -> TokenLogprobs:
    """The policy's log-probability of every token of every reply after its prompt (one forward pass).

    Gradients flow when they are enabled (training); wrap the call in ``torch.no_grad()`` for a frozen
    reference. Each row is ``prompt + reply``, right-padded with ``<|end|>`` (causal attention: padding after
    a row's end changes nothing before it).
    """
    if len(prompts) != len(replies) or not len(prompts):
        raise ValueError(f"need as many prompts as replies (at least one), got {len(prompts)} and {len(replies)}.")
    if any(len(r) == 0 for r in replies):
        raise ValueError("every reply needs at least one token (its <|end|> at least).")
    device = next(model.parameters()).device
    allowed = reply_mask(tokenizer, model.config.vocab_size)
    for r in replies:
        bad = [t for t in r if not (0 <= t < len(allowed)) or not allowed[t]]
        if bad:
            raise ValueError(f"a reply holds token ids a reply without tools cannot hold ({bad[:3]}): only text "
                             "characters and <|end|> (role tokens and calculator calls are not replies here).")
    rows = [list(p) + list(r) for p, r in zip(prompts, replies)]
    width = max(len(r) for r in rows)
    if width > model.config.block_size:
        raise ValueError(f"a prompt and its reply hold {width} tokens, more than the context of "
                         f"{model.config.block_size}.")
    pad = tokenizer.end_id
    x = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=device)
    logits, _ = model(x)
    logp = _masked_log_softmax(logits[:, :-1], reply_mask(tokenizer, model.config.vocab_size, device))
    longest = max(len(r) for r in replies)
    index = torch.zeros(len(rows), longest, dtype=torch.long, device=device)
    target = torch.full((len(rows), longest), pad, dtype=torch.long, device=device)
    mask = torch.zeros(len(rows), longest, device=device)
    for i, (p, r) in enumerate(zip(prompts, replies)):
        k = len(r)
        index[i, :k] = torch.arange(len(p) - 1, len(p) - 1 + k, device=device)  # the logits that predict r
        target[i, :k] = torch.tensor(list(r), device=device)
        mask[i, :k] = 1.0
    picked = logp.gather(1, index[:, :, None].expand(-1, -1, logp.size(-1)))  # (B, longest, V)
    token_logps = picked.gather(2, target[:, :, None]).squeeze(2)
    return TokenLogprobs(token_logps.masked_fill(mask == 0, 0.0), mask)
