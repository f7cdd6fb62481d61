"""Token data for pretraining: flat id sequences, random training windows, token files (chapter 05).

A corpus becomes one flat sequence of token ids (`TokenData`): in memory, or a
memory-mapped ``.bin`` file for corpora larger than memory. A batch is random
windows of ``block_size + 1`` tokens (`BatchSampler`); inputs are the first
``block_size``, targets the last (shifted by one). Every optimizer step draws
the indices of the *global* batch (all micro-batches of all processes) from one
seeded generator, and each process takes its slice: 1 process x batch 12 sees
exactly the data of 2 processes x batch 6, or of 1 process x batch 6 x 2
accumulation steps.

A ``.bin`` file holds raw integers; the integer type is decided in one place,
`token_dtype` (uint16 while every id fits, else uint32), and written beside the
file (``train.bin.json``), so reading it back never has to guess.

A folder of token files describes itself: ``meta.json`` records the recipe that
made it (corpus name and SHA-256, tokenizer kind and size, validation fraction;
`data_recipe`) and the split sizes. A `Trainer` whose ``data_dir`` was made by
another recipe writes the files again instead of training on stale ones
(`stale_token_files` says why).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .checkpoint import atomic_write, atomic_write_text
from .data import train_val_split

_DTYPES = {"uint16": np.uint16, "uint32": np.uint32, "int64": np.int64}


def token_dtype(vocab_size: int) -> type:
    """The integer type of a token file for a vocabulary of ``vocab_size``: uint16 when every id fits, else uint32."""
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be >= 1, got {vocab_size}.")
    return np.uint16 if vocab_size <= 2**16 else np.uint32


def dtype_file(path: str | Path) -> Path:
    """Where the integer type of the token file ``path`` is written: ``train.bin`` -> ``train.bin.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def check_ids(ids: Tensor | np.ndarray, vocab_size: int, what: str = "the data") -> None:
    """Raise a clear error when an id of ``ids`` is outside 0..vocab_size-1 (checked on the CPU).

    On a GPU an id out of range is a device-side assert that kills the process (and
    a notebook's kernel), so the trainer checks ids before they move there.
    """
    if len(ids) == 0:
        return
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or hi >= vocab_size:
        bad = lo if lo < 0 else hi
        raise ValueError(
            f"{what} holds token id {bad}, outside the model's vocabulary (0..{vocab_size - 1}): "
            "were the tokens made by another tokenizer than the model's? Set model.vocab_size to the tokenizer's."
        )


class TokenData:
    """A flat sequence of token ids to draw training windows from: an int tensor, or a memory-mapped .bin file."""

    def __init__(self, tokens: Tensor | np.ndarray) -> None:
        if isinstance(tokens, Tensor):
            tokens = tokens.cpu().numpy()
        if tokens.ndim != 1:
            raise ValueError(f"tokens must be one flat sequence, got shape {tokens.shape}.")
        self.tokens = tokens

    @classmethod
    def from_bin(cls, path: str | Path, dtype: Any = None) -> "TokenData":
        """Memory-map a file of raw token ids: nothing is read until a batch needs it.

        The integer type is read from the file written beside it by `to_bin`
        (``<name>.json``); pass ``dtype`` only for a file without one (nanoGPT's
        ``.bin`` files are ``np.uint16``).
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no token file {path}: write one with TokenData.to_bin or write_token_files.")
        side = dtype_file(path)
        if side.is_file():
            stored = json.loads(side.read_text())["dtype"]
            if dtype is not None and np.dtype(dtype) != np.dtype(stored):
                raise ValueError(f"{path} holds {stored} ids ({side} says so), not {np.dtype(dtype)}: leave dtype out.")
            dtype = _DTYPES[stored]
        elif dtype is None:
            raise ValueError(f"{path} has no {side.name} beside it saying its integer type: pass dtype "
                             "(np.uint16 for nanoGPT's files), or write the file with TokenData.to_bin.")
        itemsize = np.dtype(dtype).itemsize
        if path.stat().st_size % itemsize:
            raise ValueError(f"{path} has {path.stat().st_size} bytes, not a whole number of {np.dtype(dtype)} ids: "
                             "it is truncated or not a token file of that type.")
        return cls(np.memmap(path, dtype=dtype, mode="r"))

    def to_bin(self, path: str | Path, vocab_size: int | None = None) -> Path:
        """Write the ids as raw integers of type `token_dtype` (of ``vocab_size``, default: the largest id + 1), atomically.

        The type goes into ``<name>.json`` beside the file, written after it.
        """
        needed = int(self.tokens.max(initial=0)) + 1
        vocab_size = needed if vocab_size is None else vocab_size
        if needed > vocab_size:
            raise ValueError(f"the data holds token id {needed - 1}, outside a vocabulary of {vocab_size}.")
        dtype = token_dtype(vocab_size)
        path = atomic_write(path, np.asarray(self.tokens, dtype=dtype).tofile)
        atomic_write_text(dtype_file(path), json.dumps({"dtype": np.dtype(dtype).name, "tokens": len(self)}))
        return path

    def check_vocab(self, vocab_size: int, what: str = "the data") -> None:
        """Every id within 0..vocab_size-1, else a clear `ValueError` (reads a memory-mapped file once)."""
        check_ids(self.tokens, vocab_size, what)

    def __len__(self) -> int:
        return len(self.tokens)

    def windows(self, starts: Tensor, block_size: int) -> tuple[Tensor, Tensor]:
        """Inputs and targets (shifted by one) for windows starting at ``starts``."""
        offsets = starts.numpy()[:, None] + np.arange(block_size + 1)
        chunk = torch.from_numpy(np.asarray(self.tokens[offsets], dtype=np.int64))
        return chunk[:, :-1], chunk[:, 1:]


class BatchSampler:
    """Random training windows; its generator's state is the data position saved in checkpoints."""

    def __init__(self, data: TokenData, block_size: int, seed: int, *, what: str = "the data") -> None:
        if len(data) <= block_size:
            raise ValueError(
                f"{what} has {len(data)} tokens, too few for one window of block_size={block_size} + 1 tokens: "
                "give it more text (for the validation split: a larger val_fraction), or use a smaller block_size."
            )
        self.data, self.block_size = data, block_size
        self.generator = torch.Generator().manual_seed(seed)

    def starts(self, n: int) -> Tensor:
        return torch.randint(len(self.data) - self.block_size, (n,), generator=self.generator)

    def step_batches(self, micro_batch: int, grad_accum: int, world_size: int = 1, rank: int = 0) -> list[tuple[Tensor, Tensor]]:
        """The micro-batches of one optimizer step for process ``rank``: a slice of the global batch."""
        starts = self.starts(micro_batch * grad_accum * world_size).view(grad_accum, world_size, micro_batch)
        return [self.data.windows(starts[i, rank], self.block_size) for i in range(grad_accum)]


def fixed_batches(
    data: TokenData, block_size: int, batch_size: int, n: int, seed: int, *, what: str = "the data"
) -> list[tuple[Tensor, Tensor]]:
    """``n`` batches drawn once: evaluating on the same batches makes every evaluation comparable."""
    sampler = BatchSampler(data, block_size, seed, what=what)
    return [data.windows(sampler.starts(batch_size), block_size) for _ in range(n)]


@dataclass
class Dataset:
    """Train and validation tokens plus the tokenizer that made them."""

    train: TokenData
    val: TokenData
    tokenizer: Any
    corpus_name: str
    recipe: dict[str, Any] = field(default_factory=dict)  # what made it (`data_recipe`); {} when unknown


def data_recipe(config: Any, corpus_name: str, text: str) -> dict[str, Any]:
    """Everything that decides the token files made from ``text`` under ``config``: two equal recipes, equal files."""
    return {
        "corpus": corpus_name,
        "corpus_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "tokenizer": config.tokenizer,
        "bpe_vocab_size": config.bpe_vocab_size if config.tokenizer == "bpe" else None,
        "val_fraction": config.val_fraction,
    }


def stale_token_files(config: Any, folder: str | Path) -> str | None:
    """Why the token files in ``folder`` cannot serve ``config`` (None: they can; "" when there are none yet)."""
    from .data import tinyshakespeare

    meta_file = Path(folder) / "meta.json"
    if not meta_file.is_file():
        return ""
    try:
        made = json.loads(meta_file.read_text(encoding="utf-8")).get("recipe")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as err:
        return f"its meta.json cannot be read ({type(err).__name__})"
    if not isinstance(made, dict):
        return "its meta.json does not say how the files were made (written by an older version of the course)"
    corpus = tinyshakespeare()
    wanted = data_recipe(config, corpus.name, corpus.text)
    changed = [f"{k}: {made.get(k)!r} there, {v!r} now" for k, v in wanted.items() if made.get(k) != v]
    return "they were made by another recipe (" + "; ".join(changed) + ")" if changed else None


def prepare_data(config: Any, text: str | None = None) -> Dataset:
    """Tokenize Tiny Shakespeare (or ``text``) and split it 90/10 into train and validation.

    ``config`` is a `course.train_config.TrainConfig` (its ``tokenizer``,
    ``bpe_vocab_size`` and ``val_fraction`` are used).
    """
    from .data import tinyshakespeare
    from .tokenizers import BPETokenizer, CharTokenizer

    name = "custom"
    if text is None:
        corpus = tinyshakespeare()
        text, name = corpus.text, corpus.name
    train_text, val_text = train_val_split(text, config.val_fraction)
    if config.tokenizer == "char":
        tokenizer = CharTokenizer.from_text(text)  # every character of the corpus, so validation has no unknowns
    else:
        tokenizer = BPETokenizer.train(train_text, vocab_size=config.bpe_vocab_size)
    encode = tokenizer.encode
    train = TokenData(np.asarray(encode(train_text), dtype=np.int64))
    val = TokenData(np.asarray(encode(val_text), dtype=np.int64))
    return Dataset(train, val, tokenizer, name, data_recipe(config, name, text))


def write_token_files(dataset: Dataset, folder: str | Path) -> Path:
    """Save a dataset as train.bin, val.bin (raw token ids, their type beside them) and tokenizer.json.

    Each file is written atomically, meta.json last: a folder with meta.json is complete.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = dataset.tokenizer.vocab_size
    dataset.train.to_bin(folder / "train.bin", vocab)
    dataset.val.to_bin(folder / "val.bin", vocab)
    atomic_write(folder / "tokenizer.json", dataset.tokenizer.save)
    meta = {"corpus": dataset.corpus_name, "bin_dtype": np.dtype(token_dtype(vocab)).name,
            "tokenizer": type(dataset.tokenizer).__name__, "recipe": dataset.recipe or None,
            "train_tokens": len(dataset.train), "val_tokens": len(dataset.val)}
    atomic_write_text(folder / "meta.json", json.dumps(meta))
    return folder


def load_token_files(folder: str | Path) -> Dataset:
    """Memory-map train.bin and val.bin written by `write_token_files`; nothing is read until a batch needs it."""
    from .tokenizers import load_tokenizer_file

    folder = Path(folder)
    if not (folder / "meta.json").is_file():
        raise FileNotFoundError(f"{folder} holds no complete token files (no meta.json): write them with write_token_files.")
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        corpus = meta["corpus"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{folder / 'meta.json'} is damaged ({type(err).__name__}: {err}): delete the folder "
                         "and the trainer writes the token files again.") from None
    old = meta.get("bin_dtype")  # folders written before the type was stored beside each file

    def open_bin(name: str) -> TokenData:
        path = folder / name
        return TokenData.from_bin(path, None if dtype_file(path).is_file() else _DTYPES.get(old, None))

    tokenizer = load_tokenizer_file(folder / "tokenizer.json")  # the kind from the file's own "format" field
    return Dataset(open_bin("train.bin"), open_bin("val.bin"), tokenizer, corpus, meta.get("recipe") or {})
