"""The course's pretrained character-level Shakespeare model (trained in chapter 05; used by 06, 07 and 08).

`load_pretrained()` returns the model, its tokenizer and a description of where
it came from:

1. the checkpoint shipped inside this package (``course/checkpoints/shakespeare-char``),
   with its training log; its ``TRAINING.md`` says how and where it was trained;
2. if that is missing (a trimmed install), a quick CPU training run with the
   chapter 05 preset, cached in the user cache folder so it happens once.

Both paths give a `course.model.GPT` in eval mode and a
`course.tokenizers.CharTokenizer`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .data import cache_dir
from .model import GPT
from .tokenizers import CharTokenizer

SHIPPED = Path(__file__).resolve().parent / "checkpoints" / "shakespeare-char"


@dataclass
class Pretrained:
    model: GPT
    tokenizer: CharTokenizer
    source: str  # "shipped" or "quick CPU run"
    path: Path
    info: dict[str, Any]  # training facts from the checkpoint's info.json (or the quick run)

    def __iter__(self):  # model, tokenizer = load_pretrained()
        return iter((self.model, self.tokenizer))


def _load(folder: Path, device: str | torch.device) -> tuple[GPT, CharTokenizer, dict[str, Any]]:
    from .train import load_model

    model, _ = load_model(folder, device=device)
    model = model.float()  # shipped weights may be bfloat16; CPU work runs in float32
    tokenizer = CharTokenizer.load(folder / "tokenizer.json")
    info_file = folder / "info.json"
    info = json.loads(info_file.read_text()) if info_file.is_file() else {}
    return model, tokenizer, info


def quick_cpu_model(folder: Path | None = None, max_iters: int = 600) -> Path:
    """Train a small model on the CPU (about a minute on 2 cores) and save it as a checkpoint folder."""
    from .train import Trainer, cpu_preset

    folder = folder or cache_dir() / "quick-shakespeare-char"
    config = cpu_preset(max_iters=max_iters, lr_decay_iters=max_iters, eval_interval=max_iters, out_dir=str(folder), progress=False)
    result = Trainer(config).train()
    ckpt = result.checkpoint
    assert ckpt is not None
    (ckpt / "info.json").write_text(json.dumps({
        "trained_on": "CPU (quick fallback run)", "steps": result.steps, "seconds": round(result.seconds, 1),
        "final_val_loss": round(result.final_val_loss, 4),
    }))
    return ckpt


def load_pretrained(device: str | torch.device = "cpu", *, allow_fallback: bool = True) -> Pretrained:
    """The shipped pretrained model, or (if it is missing) a quick CPU-trained stand-in."""
    if (SHIPPED / "model.safetensors").is_file():
        model, tok, info = _load(SHIPPED, device)
        return Pretrained(model, tok, "shipped", SHIPPED, info)
    if not allow_fallback:
        raise FileNotFoundError(f"the pretrained checkpoint is missing from {SHIPPED}.")
    from .train import latest_checkpoint

    folder = cache_dir() / "quick-shakespeare-char"
    ckpt = latest_checkpoint(folder) if folder.is_dir() else None
    if ckpt is None or not (ckpt / "info.json").is_file():
        print(f"The pretrained checkpoint is missing from {SHIPPED}; training a small stand-in on the CPU (about a minute)...")
        ckpt = quick_cpu_model(folder)
    model, tok, info = _load(ckpt, device)
    return Pretrained(model, tok, "quick CPU run", ckpt, info)


# ============================================================================ the text and the loss the model is measured on

VAL_FRACTION = 0.1  # chapter 05 trains on the first 90% of the corpus and validates on the rest


def corpus_text(tokenizer: CharTokenizer, *, replacement: str = " ") -> str:
    """The training corpus (Tiny Shakespeare) in the character model's alphabet.

    With the real corpus this is the text itself. With the offline fallback corpus
    (`course.data`), characters outside the model's 65-character alphabet are
    replaced by ``replacement`` and a notice says how many, so every chapter that
    uses the model still runs (with other numbers than the book's).
    """
    from .data import tinyshakespeare

    corpus = tinyshakespeare()
    text = corpus.text
    if corpus.is_fallback:
        if replacement not in tokenizer.stoi:
            raise ValueError(f"the replacement {replacement!r} is itself not in the model's vocabulary.")
        missing = sum(c not in tokenizer.stoi for c in text)
        text = "".join(c if c in tokenizer.stoi else replacement for c in text)
        print(f"NOTICE: the fallback corpus is mapped to the model's alphabet: {missing:,} of its "
              f"{len(text):,} characters are outside it and became {replacement!r}.")
    return text


def validation_text(tokenizer: CharTokenizer) -> str:
    """The validation split the model was measured on: the last 10% of `corpus_text`."""
    from .data import train_val_split

    return train_val_split(corpus_text(tokenizer), VAL_FRACTION)[1]


def validation_loss(model: GPT, tokenizer: CharTokenizer, text: str | None = None, *, batch_size: int = 32) -> float:
    """THE validation loss of a character model, in nats per character.

    The mean negative log-likelihood over the whole validation split (or ``text``):
    every character but the first is predicted exactly once, in consecutive
    non-overlapping windows of the model's context (``block_size``), each from the
    characters before it in its window. This is what chapters 05, 06 and 08 quote
    for the shipped model; the training log's value is an estimate of the same
    quantity from random windows.
    """
    from .sampling import evaluate_nll

    text = validation_text(tokenizer) if text is None else text
    return evaluate_nll(model, tokenizer.encode(text), stride=model.config.block_size, batch_size=batch_size)[0]
