"""Measuring a model (chapters 05-10): every evaluation of the course is here.

* `eval_mode`: run a block with the model in eval mode (dropout off), and give
  the model back in the mode it was in, even when the block raises. Every place
  in the course that evaluates or generates uses it, so none can forget to
  switch dropout off or leave a training model in eval mode.
* `evaluate_nll` (chapter 06): the mean negative log-likelihood of a token
  sequence in nats per token, every token but the first predicted once, in
  windows of the model's context (a ``stride`` below ``block_size`` overlaps
  them); `perplexity` is its exponential.
* `sequence_logprob` (chapters 06 and 10): log p(continuation | prompt), each
  token seen with the context generation gives it (beam search's score).
* Bits per character with any tokenizer (chapter 09): `chars_per_token` (the
  characters each token completes) and `token_bits` (every scored token's cost
  in bits, its characters and its context).
* `check_prompt`: token ids for a model, checked, as a (batch, time) tensor
  (shared with `course.sampling`).
* The shipped models' measures on their validation split
  (`course.data.validation_text`): `validation_loss` in nats per token (per
  character for the character model) and `validation_bpc` in bits per character,
  the unit in which models with different tokenizers compare (chapter 09).
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .data import validation_text
from .model import GPT
from .scaling import bits_per_char
from .tokenizers import CharTokenizer


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``with eval_mode(model): ...``: dropout off inside the block; the model's own mode restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


# ============================================================================ negative log-likelihood and perplexity


@torch.no_grad()
def evaluate_nll(model: GPT, ids: Tensor | Sequence[int], *, stride: int | None = None, batch_size: int = 32) -> tuple[float, int]:
    """Mean negative log-likelihood (nats per token) of ``ids`` under the model, and the number of tokens scored.

    Every token but the first is predicted once. Windows of ``block_size`` inputs
    start every ``stride`` tokens (default ``block_size``: no overlap); each scores
    only the targets that no earlier window scored, so a smaller stride gives
    every prediction more context (lower loss, more compute).
    """
    ids = torch.as_tensor(ids, dtype=torch.long).flatten()
    block = model.config.block_size
    stride = block if stride is None else stride
    if isinstance(stride, bool) or not isinstance(stride, int) or not 1 <= stride <= block:
        raise ValueError(f"stride must be an int in 1..block_size={block}, got {stride!r}.")
    if ids.numel() < 2:
        raise ValueError(f"need at least 2 tokens to score a prediction, got {ids.numel()}.")
    device = next(model.parameters()).device
    windows: list[tuple[int, int, int]] = []  # (begin, end, number of targets to score at the end)
    scored_up_to, n = 0, ids.numel() - 1  # targets are ids[1:], indexed 0..n-1
    for begin in range(0, n, stride):
        end = min(begin + block, n)
        windows.append((begin, end, end - scored_up_to))
        scored_up_to = end
        if end == n:
            break
    total = 0.0
    with eval_mode(model):
        by_length: dict[int, list[tuple[int, int, int]]] = {}
        for w in windows:
            by_length.setdefault(w[1] - w[0], []).append(w)
        for length, group in by_length.items():
            for i in range(0, len(group), batch_size):
                chunk = group[i: i + batch_size]
                x = torch.stack([ids[b:e] for b, e, _ in chunk]).to(device)
                y = torch.stack([ids[b + 1: e + 1] for b, e, _ in chunk]).to(device)
                logits, _ = model(x)
                nll = F.cross_entropy(logits.double().transpose(1, 2), y, reduction="none")
                for row, (_, _, count) in enumerate(chunk):
                    total += float(nll[row, length - count:].sum())
    return total / n, n


def perplexity(model: GPT, ids: Tensor | Sequence[int], *, stride: int | None = None) -> float:
    """exp(mean negative log-likelihood): the effective number of equally likely choices per token."""
    return math.exp(evaluate_nll(model, ids, stride=stride)[0])


# ============================================================================ the log-probability of a continuation


@torch.no_grad()
def sequence_logprob(
    model: GPT, prompt_ids: Tensor | Sequence[int], continuation: Tensor | Sequence[int]
) -> float:
    """log p(continuation | prompt) under the model, each token seen with the context generation gives it.

    The context of each token is at most the last ``block_size`` tokens before it
    (the sliding window of ``overflow="slide"``). The model runs in eval mode
    (dropout off, so the answer is deterministic; its mode is restored after) on
    its own device, wherever the ids are.
    """
    prompt = check_prompt(model, prompt_ids)
    if prompt.shape[0] != 1:
        raise ValueError(f"sequence_logprob takes one prompt, got a batch of {prompt.shape[0]}.")
    device = next(model.parameters()).device
    cont = torch.as_tensor(continuation, dtype=torch.long).reshape(1, -1)
    if cont.numel():  # -1 would index the last row of the log-probabilities, and score another token
        lo, hi = int(cont.min()), int(cont.max())
        if lo < 0 or hi >= model.config.vocab_size:
            raise ValueError(f"continuation token id {lo if lo < 0 else hi} is outside the vocabulary "
                             f"(0..{model.config.vocab_size - 1}): were the ids made by another tokenizer?")
    full = torch.cat((prompt.to(device), cont.to(device)), dim=1)[0]
    block, start = model.config.block_size, prompt.shape[1]
    total = 0.0
    n = full.numel()
    head_end = min(n - 1, block)  # one pass over full[:head_end] predicts targets 1..head_end
    with eval_mode(model):
        if start <= head_end:
            logits, _ = model(full[None, :head_end])
            logp = torch.log_softmax(logits[0].double(), dim=-1)
            total += sum(float(logp[j - 1, full[j]]) for j in range(start, head_end + 1))
        for j in range(max(start, head_end + 1), n):  # beyond the context: one window per token
            logits, _ = model(full[None, j - block: j])
            total += float(torch.log_softmax(logits[0, -1].double(), dim=-1)[full[j]])
    return total


# ============================================================================ bits per character, token by token


def chars_per_token(tokenizer: Any, ids: Sequence[int], text: str) -> np.ndarray:
    """How many characters of ``text`` each token of ``ids = tokenizer.encode(text)`` completes.

    A character belongs to the token that holds its last byte (a byte-level token
    can end in the middle of a character), so the counts add up to ``len(text)``
    exactly. One per token for the character tokenizer.
    """
    if isinstance(tokenizer, CharTokenizer):
        return np.ones(len(ids), dtype=np.int64)
    token_ends = np.cumsum([len(tokenizer.vocab[int(i)]) for i in ids])  # byte offset where each token ends
    char_ends = np.cumsum([len(c.encode("utf-8")) for c in text])  # byte offset where each character ends
    if len(token_ends) == 0 or token_ends[-1] != (char_ends[-1] if len(char_ends) else 0):
        raise ValueError("the ids do not encode this text (their bytes and the text's differ in length).")
    owner = np.searchsorted(token_ends, char_ends, side="left")
    return np.bincount(owner, minlength=len(ids))


@torch.no_grad()
def token_bits(model: GPT, tokenizer: Any, text: str, *, batch_size: int = 32) -> dict[str, np.ndarray]:
    """Every scored token of ``text`` with its cost: the per-token view of `course.pretrained.validation_bpc`.

    Windows as in `validation_bpc` (non-overlapping, the model's context). Returns
    arrays over the scored tokens (all but the first): ``id``, ``bits`` (its
    negative log2-likelihood), ``chars`` (characters it completes) and ``context``
    (characters completed by the earlier tokens of its window: what the model saw).
    ``bits.sum() / chars.sum()`` is the text's bits per character.
    """
    ids = torch.as_tensor(tokenizer.encode(text), dtype=torch.long)
    if ids.numel() < 2:
        raise ValueError(f"the text encodes to {ids.numel()} token(s); at least 2 are needed to score a prediction.")
    lengths = torch.as_tensor(chars_per_token(tokenizer, ids.tolist(), text))
    block = model.config.block_size
    parts: dict[str, list[Tensor]] = {k: [] for k in ("id", "bits", "chars", "context")}
    starts = list(range(0, ids.numel() - 1, block))
    with eval_mode(model):
        for i in range(0, len(starts), batch_size):
            group = starts[i:i + batch_size]
            full = [b for b in group if b + block < ids.numel()]  # whole windows, in one batch
            rest = [b for b in group if b + block >= ids.numel()]  # the shorter last window, alone
            for batch in ([full] if full else []) + [[b] for b in rest]:
                length = min(block, ids.numel() - 1 - batch[0])
                x = torch.stack([ids[b:b + length] for b in batch])
                y = torch.stack([ids[b + 1:b + length + 1] for b in batch])
                logits, _ = model(x)
                nll = F.cross_entropy(logits.double().transpose(1, 2), y, reduction="none") / math.log(2)
                inputs_chars = torch.stack([lengths[b:b + length] for b in batch])
                parts["id"].append(y.flatten())
                parts["bits"].append(nll.flatten())
                parts["chars"].append(torch.stack([lengths[b + 1:b + length + 1] for b in batch]).flatten())
                parts["context"].append(inputs_chars.cumsum(1).flatten())  # target j saw inputs 0..j
    return {k: torch.cat(v).numpy() for k, v in parts.items()}


# ============================================================================ checks


def check_prompt(model: GPT, prompt_ids: Tensor | Sequence[int] | Sequence[Sequence[int]]) -> Tensor:
    """``prompt_ids`` (a list, a (time,) or an equal-length (batch, time) tensor) as a (batch, time) long tensor, checked."""
    if not isinstance(prompt_ids, Tensor):
        try:
            prompt_ids = torch.as_tensor(prompt_ids, dtype=torch.long)
        except (ValueError, TypeError) as err:
            raise ValueError(
                f"the prompt must be token ids: a list, a (time,) or an equal-length (batch, time) tensor ({err})."
            ) from None
    if prompt_ids.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"the prompt must hold integer token ids, got dtype {prompt_ids.dtype}.")
    if prompt_ids.dim() == 1:
        prompt_ids = prompt_ids[None]
    if prompt_ids.dim() != 2:
        raise ValueError(f"the prompt must have shape (time,) or (batch, time), got {tuple(prompt_ids.shape)}.")
    if prompt_ids.shape[1] == 0 or prompt_ids.shape[0] == 0:
        raise ValueError(
            f"the prompt is empty (shape {tuple(prompt_ids.shape)}): give at least one token, "
            "e.g. the id of '\\n' or of an end-of-text token to start from nothing."
        )
    vocab = model.config.vocab_size
    lo, hi = int(prompt_ids.min()), int(prompt_ids.max())
    if lo < 0 or hi >= vocab:
        raise ValueError(f"prompt token id {lo if lo < 0 else hi} is outside the vocabulary (0..{vocab - 1}).")
    return prompt_ids.long()


# ============================================================================ the shipped models' validation split


def validation_loss(model: GPT, tokenizer: Any, text: str | None = None, *,
                    batch_size: int = 32) -> float:
    """THE validation loss of a model, in nats per token (per character for a character model).

    The mean negative log-likelihood over the whole validation split (or ``text``):
    every character but the first is predicted exactly once, in consecutive
    non-overlapping windows of the model's context (``block_size``), each from the
    characters before it in its window. This is what chapters 05, 06 and 08 quote
    for the shipped model; the training log's value is an estimate of the same
    quantity from random windows.
    """
    text = validation_text(tokenizer) if text is None else text
    return evaluate_nll(model, tokenizer.encode(text), stride=model.config.block_size, batch_size=batch_size)[0]


def validation_bpc(model: GPT, tokenizer: Any, text: str | None = None, *, batch_size: int = 32) -> tuple[float, float, int, int]:
    """Bits per character of the validation split (or ``text``) under a model with any tokenizer (chapter 09).

    Returns (bits per character, nats per token, tokens scored, characters they
    cover). The tokens are scored as in `validation_loss` (every token but the
    first, in non-overlapping windows of the model's context); the characters are
    those the scored tokens complete (`chars_per_token`): the text without the
    characters of its first token. Models with different tokenizers are compared
    on the same text in this unit.
    """
    text = validation_text(tokenizer) if text is None else text
    ids = tokenizer.encode(text)
    if len(ids) < 2:
        raise ValueError(f"the text encodes to {len(ids)} token(s); at least 2 are needed to score a prediction.")
    nats, scored = evaluate_nll(model, ids, stride=model.config.block_size, batch_size=batch_size)
    chars = int(chars_per_token(tokenizer, ids, text)[1:].sum())
    return bits_per_char(nats, scored, chars), nats, scored, chars


__all__ = ["chars_per_token", "check_prompt", "eval_mode", "evaluate_nll", "perplexity", "sequence_logprob", "token_bits",
           "validation_bpc", "validation_loss"]
