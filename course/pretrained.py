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
