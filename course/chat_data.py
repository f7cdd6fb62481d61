"""Instruction-tuning data for the course's assistant (chapter 11): conversations as training rows for the Trainer.

`course.chat_format` turns one conversation into ids and a loss mask;
`course.assistant_tasks` generates as many conversations as wanted. This module
turns many of them into the fixed-size tensors that `course.train.Trainer`
trains on, with chapter 07's hooks (`course.finetune.ExampleSampler` draws random
rows; fixed validation batches cover every row once).

**One conversation, one row.** A conversation of ``L`` tokens gives ``L - 1``
training pairs (`course.chat_format.inputs_and_targets`: predict token ``i``
from tokens ``0..i-1``), so it fits a model with context ``block_size`` when
``L - 1 <= block_size``. A shorter one is padded on the right up to
``block_size``: the inputs with ``pad_id`` (default ``<|end|>``, any id works:
causal attention never lets a position see the padding after it) and the
targets with `IGNORE` (-100), which the loss skips. Targets are also `IGNORE`
wherever the loss mask is 0: the role tokens, the system and user text, and the
calculator's results. So the loss of a batch (`course.model.GPT`'s
``cross_entropy(..., ignore_index=-100)``) is the mean cross-entropy over the
tokens the assistant writes in that batch, and nothing else has a gradient.

**Never cut an answer silently.** A conversation longer than the context is
never truncated (cutting the end would cut the answer; cutting the start would
train an answer to a question the model cannot see). ``too_long="drop"`` (the
default) leaves it out, records it in `ChatRows.dropped` (its index and length)
and warns once with the count; ``too_long="error"`` refuses with a message that
names the first one.

**Packing** (``pack=True``): whole conversations are put one after the other in
a row, in order, while the row holds at most ``block_size + 1`` tokens; a
conversation never straddles two rows. Rows waste less padding (the tasks are
short: most conversations take 20 to 170 tokens of a 256-token context), and
every trained target is the same as without packing: a conversation starts with
a role token, whose mask is 0, so no target crosses from one conversation to
the next. The price: a conversation later in a row can attend to the ones before
it, and its positions do not start at 0 (the model has no mask that separates
documents in a row), so each answer is trained with a different context than at
chat time. `ChatRows.trained_tokens` is the same either way; the row count is
not.

`mixture_rows(split, n, tokenizer, block_size)` does it all for
`course.assistant_tasks.mixture`; `trainer_batches` gives the sampler and the
validation batches; `attach_tokenizer` writes the chat tokenizer next to a
trained checkpoint (the Trainer with a custom sampler saves none), so that
``python -m course.chat --checkpoint DIR`` finds it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch
from torch import Tensor

from .assistant_tasks import Example, mixture
from .chat_format import ChatTokenizer, inputs_and_targets, render_conversation
from .finetune import ExampleSampler, batches
from .sft import IGNORE
from .validate import one_of, positive_int

__all__ = [
    "AssistantRecipe", "ChatRows", "TOO_LONG", "assistant_recipe", "attach_tokenizer", "chat_rows", "mixture_rows",
    "trainer_batches",
]

TOO_LONG = ("drop", "error")


@dataclass
class ChatRows:
    """Training rows of conversations: inputs ``x`` and targets ``y``, both (rows, block_size) ``torch.long``."""

    x: Tensor
    y: Tensor
    lengths: list[int]  # rendered length (tokens) of each conversation kept, in order
    dropped: list[tuple[int, int]] = field(default_factory=list)  # (index in the input, length) of those too long
    block_size: int = 0
    packed: bool = False
    fill: float = 0.0  # fraction of the input positions that hold a conversation's token (the rest is padding)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def trained_tokens(self) -> int:
        """Targets that count in the loss: the tokens the assistant writes."""
        return int((self.y != IGNORE).sum())

    def summary(self) -> str:
        """One line: rows, conversations, trained tokens, padding and what was dropped."""
        rows = f"{len(self)} rows ({'packed' if self.packed else 'one conversation each'}) of {self.block_size} tokens"
        text = (f"{len(self.lengths)} conversations in {rows}; {self.trained_tokens:,} trained targets; "
                f"{self.fill:.0%} of the positions hold tokens")
        if self.dropped:
            longest = max(n for _, n in self.dropped)
            text += f"; {len(self.dropped)} dropped, longer than the context (longest: {longest} tokens)"
        return text


def _messages(item: Any, index: int) -> Sequence[Mapping[str, Any]]:
    if isinstance(item, Example):
        return item.messages
    if isinstance(item, Sequence) and not isinstance(item, (str, bytes)):
        return item
    raise TypeError(f"conversation {index} must be a list of messages or a course.assistant_tasks.Example, "
                    f"got {type(item).__name__}.")


def _pad(values: list[int], length: int, fill: int) -> list[int]:
    return values + [fill] * (length - len(values))


def chat_rows(
    conversations: Iterable[Sequence[Mapping[str, Any]] | Example],
    tokenizer: ChatTokenizer,
    block_size: int,
    *,
    pack: bool = False,
    too_long: str = "drop",
    pad_id: int | None = None,
) -> ChatRows:
    """Render ``conversations`` (message lists or `Example` objects) into padded training rows.

    See the module docstring for the rules: right padding with ``pad_id``
    (default: ``<|end|>``), `IGNORE` targets outside the loss mask and on the
    padding, conversations longer than ``block_size + 1`` tokens dropped (and
    recorded) or refused (``too_long="error"``), and optional packing.
    """
    if not isinstance(tokenizer, ChatTokenizer):
        raise TypeError(f"tokenizer must be a course.chat_format.ChatTokenizer, got {type(tokenizer).__name__}.")
    block = positive_int(block_size, "block_size", hint="the model's context, model.config.block_size")
    one_of(too_long, TOO_LONG, "too_long")
    pad = tokenizer.end_id if pad_id is None else pad_id
    if isinstance(pad, bool) or not isinstance(pad, int) or not 0 <= pad < tokenizer.vocab_size:
        raise ValueError(f"pad_id must be a token id in 0..{tokenizer.vocab_size - 1}, got {pad_id!r}.")
    rendered: list[tuple[list[int], list[int]]] = []
    dropped: list[tuple[int, int]] = []
    for index, item in enumerate(conversations):
        ids, mask = render_conversation(_messages(item, index), tokenizer)
        if len(ids) < 2:
            raise ValueError(f"conversation {index} renders to {len(ids)} token(s): it has nothing to train on.")
        if len(ids) - 1 > block:
            if too_long == "error":
                raise ValueError(
                    f"conversation {index} has {len(ids)} tokens, {len(ids) - 1} training positions, more than the "
                    f"context (block_size={block}). Cutting it would cut an answer or its question: leave it out "
                    "(too_long='drop'), or use a model with a longer context."
                )
            dropped.append((index, len(ids)))
            continue
        rendered.append((ids, mask))
    if not rendered:
        raise ValueError(
            f"no conversation fits the context (block_size={block})"
            + (f": all {len(dropped)} are longer." if dropped else ": the input is empty.")
        )
    if dropped:
        warnings.warn(f"{len(dropped)} conversation(s) longer than the context (block_size={block}) were left out; "
                      "ChatRows.dropped lists them.", stacklevel=2)
    groups: list[tuple[list[int], list[int]]] = []
    if pack:
        for ids, mask in rendered:
            if groups and len(groups[-1][0]) + len(ids) <= block + 1:
                groups[-1][0].extend(ids)
                groups[-1][1].extend(mask)
            else:
                groups.append((list(ids), list(mask)))
    else:
        groups = rendered
    xs, ys, used = [], [], 0
    for ids, mask in groups:
        x, y = inputs_and_targets(ids, mask)
        used += len(x)
        xs.append(_pad(x, block, pad))
        ys.append(_pad(y, block, IGNORE))
    return ChatRows(torch.tensor(xs, dtype=torch.long), torch.tensor(ys, dtype=torch.long),
                    [len(ids) for ids, _ in rendered], dropped, block, pack, used / (len(groups) * block))


def mixture_rows(
    split: str,
    n: int,
    tokenizer: ChatTokenizer,
    block_size: int,
    *,
    seed: int = 0,
    weights: Mapping[str, float] | None = None,
    tasks: Mapping[str, Any] | None = None,
    pack: bool = False,
    too_long: str = "drop",
) -> ChatRows:
    """`chat_rows` of ``n`` conversations of `course.assistant_tasks.mixture` (``split``, ``seed``, ``weights``)."""
    return chat_rows(mixture(split, n, seed, weights, tasks), tokenizer, block_size, pack=pack, too_long=too_long)


def trainer_batches(
    train: ChatRows, val: ChatRows, batch_size: int, seed: int = 0
) -> tuple[ExampleSampler, list[tuple[Tensor, Tensor]]]:
    """What `course.train.Trainer` needs: a sampler of random training rows and fixed validation batches.

    ``Trainer(config, model=model, sampler=sampler, val_batches=val_batches)``;
    the validation batches cover every validation row once, in order.
    """
    for name, rows in (("train", train), ("val", val)):
        if not isinstance(rows, ChatRows):
            raise TypeError(f"{name} must be ChatRows (from chat_rows or mixture_rows), got {type(rows).__name__}.")
    if train.block_size != val.block_size:
        raise ValueError(f"train and val rows have different lengths ({train.block_size} and {val.block_size}).")
    positive_int(batch_size, "batch_size")
    return ExampleSampler(train.x, train.y, seed), batches(val.x, val.y, batch_size)


def attach_tokenizer(checkpoint: str | Path, tokenizer: ChatTokenizer) -> Path:
    """Write ``tokenizer`` as ``tokenizer.json`` into a checkpoint folder (or the one an out_dir's latest.json names).

    The Trainer saves the tokenizer of its dataset; with a custom sampler it has
    none. Call this after training so that `course.checkpoint.load_tokenizer` (and
    ``python -m course.chat``) finds the chat tokenizer. A later save (a resumed
    run) writes a new folder: attach the tokenizer again.
    """
    from .checkpoint import TOKENIZER, WEIGHTS, atomic_write, latest_checkpoint

    if not isinstance(tokenizer, ChatTokenizer):
        raise TypeError(f"tokenizer must be a ChatTokenizer, got {type(tokenizer).__name__}.")
    folder = Path(checkpoint)
    newest = latest_checkpoint(folder)
    folder = newest if newest is not None else folder
    if not (folder / WEIGHTS).is_file():
        raise FileNotFoundError(
            f"{folder} is not a checkpoint folder (no {WEIGHTS}): pass the folder or the run's out_dir."
        )
    return atomic_write(folder / TOKENIZER, tokenizer.save)


# ============================================================================ the assistant's recipe

ROWS_PER_BATCH = 16
CONVERSATIONS_PER_ROW = 4  # packed rows of 256 hold about 3.1 conversations of the mixture: 4 leaves a margin
VAL_SEED = 0  # the validation rows are the same for every seed, so runs of different seeds are compared on one set
VAL_CONVERSATIONS = 400


@dataclass
class AssistantRecipe:
    """Everything `course.train.Trainer` needs for one instruction-tuning run of the course's assistant."""

    config: Any  # a course.train_config.TrainConfig
    sampler: ExampleSampler
    val_batches: list[tuple[Tensor, Tensor]]
    train: ChatRows
    val: ChatRows


def assistant_recipe(
    tokenizer: ChatTokenizer, block_size: int, steps: int, out_dir: str | Path, *, lr: float = 3e-3, seed: int = 0,
    tasks: Mapping[str, Any] | None = None,
) -> AssistantRecipe:
    """The recipe of chapter 11 and of tools/train_assistant.py (`make assistant`), for ``steps`` steps.

    Chapter 07's fine-tuning settings (`course.finetune.finetune_config`): AdamW at
    ``lr`` with a warmup of a tenth of the run (at most 100 steps) and cosine decay to
    ``lr / 10``, no weight decay, clipping at 1.0, float32; batches of 16 rows of
    ``block_size`` tokens packed with fresh conversations of the training split (4 per
    row, as many as the run reads, none seen twice; drawn with ``seed``); an
    evaluation on the validation rows (400 conversations, the same for every seed)
    every tenth of the run, and a checkpoint kept at each.
    """
    from .finetune import finetune_config

    positive_int(steps, "steps")
    n_train = steps * ROWS_PER_BATCH * CONVERSATIONS_PER_ROW
    train = mixture_rows("train", n_train, tokenizer, block_size, seed=seed, tasks=tasks, pack=True)
    val = mixture_rows("validation", VAL_CONVERSATIONS, tokenizer, block_size, seed=VAL_SEED, tasks=tasks, pack=True)
    sampler, val_batches = trainer_batches(train, val, ROWS_PER_BATCH, seed=seed)
    interval = max(1, steps // 10)
    config = finetune_config(
        max_iters=steps, lr=lr, min_lr=lr / 10, lr_decay_iters=steps, warmup_iters=min(100, max(1, steps // 10)),
        batch_size=ROWS_PER_BATCH, eval_interval=interval, eval_iters=1, log_interval=max(1, interval // 5),
        checkpoint_interval=interval, keep_checkpoints=1, out_dir=str(out_dir), seed=seed, device="cpu",
    )
    return AssistantRecipe(config, sampler, val_batches, train, val)
