"""Supervised fine-tuning (chapter 07): text-to-text tasks, the response-only loss, greedy evaluation.

* **Tasks**, built deterministically from a seed: `word_task_examples` (text to
  text: ``"upper: crown\\n"`` → ``"CROWN\\n"``, also ``lower`` and ``reverse``)
  from the words of the corpus (`corpus_words`, `split_words`).
* **The response-only loss**: `encode_sft` turns (prompt, response) pairs into
  inputs and targets where every prompt position is -100 (`IGNORE`), so the
  loss is computed on the response tokens only (`response_targets`).
* **Evaluation**: `greedy_complete` (through `course.sampling.generate`) and
  `exact_match`.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .sampling import generate

IGNORE = -100  # targets equal to this are left out of the cross-entropy (GPT.forward, F.cross_entropy)
WORD_TASKS = ("upper", "lower", "reverse")


# ============================================================================ tasks


def corpus_words(text: str, min_len: int = 3, max_len: int = 8) -> list[str]:
    """The distinct lower-case words of ``text`` with ``min_len``..``max_len`` letters, sorted."""
    if min_len < 1 or max_len < min_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got min_len={min_len}, max_len={max_len}.")
    return sorted({w for w in re.findall(r"[a-z]+", text) if min_len <= len(w) <= max_len})


def apply_word_task(task: str, word: str) -> str:
    """The answer of ``task`` for ``word`` (no newline)."""
    if task == "upper":
        return word.upper()
    if task == "lower":
        return word.lower()
    if task == "reverse":
        return word[::-1]
    raise ValueError(f"unknown task {task!r}: choose one of {WORD_TASKS}.")


def word_task_examples(
    words: Sequence[str], n: int, seed: int, tasks: Sequence[str] = WORD_TASKS
) -> list[tuple[str, str]]:
    """``n`` (prompt, response) pairs such as ("upper: crown\\n", "CROWN\\n"), drawn with ``seed``.

    ``lower`` gets the word in capitals, so every task changes its input. Give
    disjoint word lists for training and testing: held-out words are words the
    fine-tuning never saw.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}.")
    if not words:
        raise ValueError("words is empty: pass the words to build examples from (e.g. corpus_words(text)).")
    for t in tasks:
        apply_word_task(t, "x")  # fails clearly on an unknown task
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        task = tasks[int(rng.integers(len(tasks)))]
        word = words[int(rng.integers(len(words)))]
        shown = word.upper() if task == "lower" else word
        out.append((f"{task}: {shown}\n", apply_word_task(task, shown) + "\n"))
    return out


def split_words(words: Sequence[str], test_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Shuffle ``words`` with ``seed`` and split them into disjoint (train, test) lists."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}.")
    order = np.random.default_rng(seed).permutation(len(words))
    cut = int(round(len(words) * (1 - test_fraction)))
    return [words[i] for i in order[:cut]], [words[i] for i in order[cut:]]


def split_words_three(words: Sequence[str], val_fraction: float, test_fraction: float,
                      seed: int) -> tuple[list[str], list[str], list[str]]:
    """Shuffle ``words`` with ``seed`` and split them into disjoint (train, validation, test) lists.

    The validation words are for every choice made while developing (learning
    rate, rank, when to stop); the test words are scored once, at the end.
    """
    for name, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 < f < 1.0:
            raise ValueError(f"{name} must be between 0 and 1, got {f}.")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(f"val_fraction + test_fraction must leave words to train on, got {val_fraction + test_fraction}.")
    order = np.random.default_rng(seed).permutation(len(words))
    n_test = int(round(len(words) * test_fraction))
    n_val = int(round(len(words) * val_fraction))
    cut = len(words) - n_test - n_val
    return ([words[i] for i in order[:cut]], [words[i] for i in order[cut:cut + n_val]],
            [words[i] for i in order[cut + n_val:]])


# ============================================================================ the response-only loss


def response_targets(ids: Sequence[int], prompt_len: int) -> tuple[list[int], list[int]]:
    """Inputs and next-token targets of one example, with the prompt's targets masked.

    ``ids`` is prompt + response (``prompt_len`` prompt tokens). Input position t
    predicts ``ids[t + 1]``; the targets that are prompt tokens (positions
    ``t < prompt_len - 1``) become -100, so only the response is learned.
    """
    if not 1 <= prompt_len < len(ids):
        raise ValueError(f"prompt_len must be between 1 and len(ids) - 1 = {len(ids) - 1} (the response needs a token), got {prompt_len}.")
    x, y = list(ids[:-1]), list(ids[1:])
    for t in range(prompt_len - 1):
        y[t] = IGNORE
    return x, y


def encode_sft(
    examples: Sequence[tuple[str, str]], tokenizer: Any, *, pad_id: int = 0, mask_prompt: bool = True
) -> tuple[Tensor, Tensor]:
    """(inputs, targets), each (n, longest - 1): right-padded with ``pad_id`` in inputs, -100 in targets.

    With ``mask_prompt=False`` the prompt is learned too (ordinary language modelling).
    """
    if not examples:
        raise ValueError("examples is empty.")
    rows = []
    for prompt, response in examples:
        if not prompt or not response:
            raise ValueError(f"every example needs a non-empty prompt and response, got {(prompt, response)!r}.")
        p, r = tokenizer.encode(prompt), tokenizer.encode(response)
        rows.append(response_targets(p + r, len(p) if mask_prompt else 1))
    width = max(len(x) for x, _ in rows)
    xs = torch.full((len(rows), width), pad_id, dtype=torch.long)
    ys = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    for i, (x, y) in enumerate(rows):
        xs[i, : len(x)] = torch.tensor(x)
        ys[i, : len(y)] = torch.tensor(y)
    return xs, ys


# ============================================================================ evaluation


@torch.no_grad()
def greedy_complete(
    model: nn.Module, prompts: Sequence[str], tokenizer: Any, *, max_new: int = 12, stop: str = "\n"
) -> list[str]:
    """The greedy continuation of every prompt, up to and including ``stop`` (or ``max_new`` tokens).

    Prompts with the same number of tokens run as one batch (no padding needed),
    through `course.sampling.generate` (greedy, stopping at ``stop``). Once a
    sequence outgrows the model's ``block_size`` the model sees the last
    ``block_size`` tokens (generate's sliding window); a prompt longer than that
    keeps its last ``block_size`` tokens, with a warning. Every position is
    recomputed at each step (no KV cache), so the logits are those of a plain
    forward pass of the window.
    """
    if isinstance(prompts, str):
        raise TypeError("prompts must be a list of strings, got one string: pass [prompt].")
    if isinstance(max_new, bool) or not isinstance(max_new, int) or max_new < 1:
        raise ValueError(f"max_new must be an int >= 1, got {max_new!r}.")
    if not isinstance(stop, str) or not stop:
        raise ValueError(f"stop must be a non-empty string, got {stop!r}.")
    encoded = [tokenizer.encode(p) for p in prompts]
    for p, ids in zip(prompts, encoded):
        if not ids:
            raise ValueError(f"prompt {p!r} encodes to no token: every prompt needs at least one.")
    out: list[str] = [""] * len(prompts)
    groups: dict[int, list[int]] = {}
    for i, ids in enumerate(encoded):
        groups.setdefault(len(ids), []).append(i)  # the same number of TOKENS (not characters): one batch
    for n_tokens, members in sorted(groups.items()):
        batch = torch.tensor([encoded[i] for i in members], dtype=torch.long)
        full = generate(model, batch, max_new, greedy=True, use_cache=False, stop_strings=(stop,), decode=tokenizer.decode)  # type: ignore[arg-type]
        for row, i in zip(full[:, n_tokens:].tolist(), members):
            text = tokenizer.decode(row)
            out[i] = text[: text.index(stop) + len(stop)] if stop in text else text
    return out


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    """The fraction of predictions equal to their reference, character for character."""
    if len(predictions) != len(references) or not references:
        raise ValueError(f"need as many predictions as references (and at least one): got {len(predictions)} and {len(references)}.")
    return sum(p == r for p, r in zip(predictions, references)) / len(references)
