"""The course's pretrained Shakespeare models: characters (chapter 05; used by 06, 07 and 08) and BPE (chapter 09),
and the assistant instruction-tuned from the character model (chapter 11; chapter 12 starts from it).

`load_pretrained()` returns the character model, `load_pretrained(tokenizer="bpe")`
the same architecture trained on the course's own byte-level BPE tokens; each
comes with its tokenizer and a description of where it came from:

1. the checkpoint shipped inside this package (``course/checkpoints/shakespeare-char``
   and ``shakespeare-bpe``), with its training log; its ``TRAINING.md`` says how
   and where it was trained;
2. if that is missing (a trimmed install), a quick CPU training run with the
   chapter 05 preset, cached in the user cache folder so it happens once.

Both paths give a `course.model.GPT` in eval mode and a
`course.tokenizers.CharTokenizer` (or `BPETokenizer`).

`load_assistant()` returns the shipped assistant (``course/checkpoints/assistant-char``,
made by ``make assistant``: tools/train_assistant.py) with its
`course.chat_format.ChatTokenizer`. It has no stand-in: training one takes too long
to happen behind a function call.

The text they are measured on is `course.data.corpus_text` (Tiny Shakespeare in
the model's alphabet) and `course.data.validation_text` (its last ``VAL_FRACTION``);
their losses on it are `course.evaluate.validation_loss` (nats per token) and
`course.evaluate.validation_bpc` (bits per character, chapter 09).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .data import cache_dir
from .model import GPT
from .tokenizers import BPETokenizer, CharTokenizer

SHIPPED = Path(__file__).resolve().parent / "checkpoints" / "shakespeare-char"
SHIPPED_BPE = Path(__file__).resolve().parent / "checkpoints" / "shakespeare-bpe"
SHIPPED_ASSISTANT = Path(__file__).resolve().parent / "checkpoints" / "assistant-char"
TOKENIZERS = ("char", "bpe")
BPE_VOCAB_SIZE = 8192  # the shipped BPE model's vocabulary: 256 bytes + 7,936 merges (chosen in chapter 09)


def shipped_folder(tokenizer: str = "char") -> Path:
    """Where the shipped checkpoint of the ``tokenizer`` ("char" or "bpe") model lives."""
    if tokenizer not in TOKENIZERS:
        raise ValueError(f"tokenizer must be one of {TOKENIZERS}, got {tokenizer!r}.")
    return SHIPPED if tokenizer == "char" else SHIPPED_BPE


@dataclass
class Pretrained:
    model: GPT
    tokenizer: CharTokenizer | BPETokenizer
    source: str  # "shipped" or "quick CPU run"
    path: Path
    info: dict[str, Any]  # training facts from the checkpoint's info.json (or the quick run)

    def __iter__(self):  # model, tokenizer = load_pretrained()
        return iter((self.model, self.tokenizer))


def _load(folder: Path, device: str | torch.device) -> tuple[GPT, Any, dict[str, Any]]:
    from .checkpoint import load_model, load_tokenizer

    model, _ = load_model(folder, device=device)
    model = model.float()  # shipped weights may be bfloat16; CPU work runs in float32
    tokenizer = load_tokenizer(folder)
    info_file = folder / "info.json"
    try:
        info = json.loads(info_file.read_text(encoding="utf-8")) if info_file.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{info_file} cannot be read ({type(err).__name__}: {err}): delete it, "
                         "or the whole folder to train the stand-in again.") from None
    return model, tokenizer, info


def quick_cpu_model(folder: Path | None = None, max_iters: int = 600, tokenizer: str = "char") -> Path:
    """Train a small model on the CPU (about a minute on 2 cores) and save it as a checkpoint folder."""
    from .train import Trainer
    from .train_config import cpu_preset

    shipped_folder(tokenizer)  # checks the name
    folder = folder or cache_dir() / f"quick-shakespeare-{tokenizer}"
    config = cpu_preset(max_iters=max_iters, lr_decay_iters=max_iters, eval_interval=max_iters, out_dir=str(folder),
                        progress=False, tokenizer=tokenizer, bpe_vocab_size=BPE_VOCAB_SIZE)
    result = Trainer(config).train()
    ckpt = result.checkpoint
    if result.interrupted or ckpt is None:  # never cache a cut-short run as the stand-in: the next call trains again
        raise KeyboardInterrupt(f"the quick CPU run was interrupted at step {result.steps}: nothing was cached "
                                "(load_pretrained() trains it again next time)")
    (ckpt / "info.json").write_text(json.dumps({
        "trained_on": "CPU (quick fallback run)", "steps": result.steps, "seconds": round(result.seconds, 1),
        "final_val_loss": round(result.final_val_loss, 4),
    }))
    return ckpt


def _complete_quick_run(ckpt: Path) -> bool:
    """A cached stand-in that finished: its info.json exists and records a finite validation loss."""
    try:
        info = json.loads((ckpt / "info.json").read_text(encoding="utf-8"))
        return math.isfinite(float(info["final_val_loss"]))
    except (OSError, ValueError, KeyError, TypeError):  # missing, unreadable, or an interrupted run's NaN
        return False


def load_pretrained(device: str | torch.device = "cpu", *, tokenizer: str = "char", allow_fallback: bool = True) -> Pretrained:
    """The shipped pretrained model (``tokenizer="char"`` or ``"bpe"``), or (if it is missing) a quick CPU-trained stand-in."""
    shipped = shipped_folder(tokenizer)
    if (shipped / "model.safetensors").is_file():
        model, tok, info = _load(shipped, device)
        return Pretrained(model, tok, "shipped", shipped, info)
    if not allow_fallback:
        raise FileNotFoundError(f"the pretrained checkpoint is missing from {shipped}.")
    from .checkpoint import latest_checkpoint

    folder = cache_dir() / f"quick-shakespeare-{tokenizer}"
    ckpt = latest_checkpoint(folder) if folder.is_dir() else None
    if ckpt is None or not _complete_quick_run(ckpt):
        print(f"The pretrained checkpoint is missing from {shipped}; training a small stand-in on the CPU (about a minute)...")
        ckpt = quick_cpu_model(folder) if tokenizer == "char" else quick_cpu_model(folder, tokenizer=tokenizer)
    model, tok, info = _load(ckpt, device)
    return Pretrained(model, tok, "quick CPU run", ckpt, info)


def load_assistant(device: str | torch.device = "cpu") -> Pretrained:
    """The shipped assistant of chapter 11 and its chat tokenizer (``model, tokenizer = load_assistant()``)."""
    if not (SHIPPED_ASSISTANT / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"the assistant's checkpoint is missing from {SHIPPED_ASSISTANT}: `make assistant` trains it "
            "(tools/train_assistant.py; its TRAINING.md says how long it takes)."
        )
    model, tok, info = _load(SHIPPED_ASSISTANT, device)
    return Pretrained(model, tok, "shipped", SHIPPED_ASSISTANT, info)
