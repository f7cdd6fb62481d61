"""The small training runs behind chapter 09's scaling laws and tokenizer comparison.

A *run* trains a fresh GPT of a given size on a given number of training tokens
with the course `Trainer` (chapter 05), then scores it on the whole validation
split in bits per character (`course.scaling.bits_per_char`), the unit that lets
models with different tokenizers be compared. Every run of a grid shares one
recipe, so the only things that change are the model size N and the data D:

* the model: ``n_layer`` blocks, ``n_embd`` wide, heads of 16 dimensions,
  a context of `BLOCK` tokens, no dropout (the runs see each token a few times
  at most), tied embeddings;
* the data: batches of `BATCH` windows; the number of steps is D divided by
  the tokens per step, so D is the number of training tokens (windows overlap
  the corpus at random: a run longer than one epoch sees text again);
* the optimiser: AdamW, learning rate `LR` with a warmup of 10% of the steps
  (at most 100), cosine decay to a tenth by the last step: every run ends its
  schedule, as Chinchilla's IsoFLOP runs do (a point in the middle of a longer
  run is not the same as a shorter run).

``N`` is the non-embedding parameter count and the training FLOPs are
``GPT.flops_per_token()`` (chapter 04: 6·N plus attention's 12·L·T·d) times D.
`benchmarks/scaling_grid.py` runs the full grid and writes
``benchmarks/results/scaling.json``; the chapter re-runs a part of it live.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Sequence

import torch

from .model import GPT, GPTConfig
from .evaluate import validation_bpc
from .token_data import Dataset

BLOCK = 128  # tokens per window
BATCH = 8  # windows per step
LR = 2e-3
HEAD_DIM = 16

# The model sizes of the grid: (n_layer, n_embd), about 8 thousand to 1.6 million non-embedding parameters
SIZES: tuple[tuple[int, int], ...] = ((2, 16), (2, 32), (2, 48), (3, 64), (4, 96), (4, 128), (5, 160))


def grid_model(n_layer: int, n_embd: int, vocab_size: int, block_size: int = BLOCK) -> GPTConfig:
    """The architecture of a grid run: ``n_layer`` blocks, ``n_embd`` wide, heads of `HEAD_DIM` dimensions."""
    if n_embd % HEAD_DIM:
        raise ValueError(f"n_embd must be a multiple of the head dimension {HEAD_DIM}; got {n_embd}.")
    return GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer, n_head=n_embd // HEAD_DIM,
                     n_embd=n_embd, dropout=0.0)


def model_facts(config: GPTConfig) -> dict[str, int]:
    """Parameters (all, and non-embedding N) and training FLOPs per token of an architecture (built on the meta device)."""
    with torch.device("meta"):
        model = GPT(config)
    return {"params": model.num_parameters(), "n_params": model.num_parameters(non_embedding=True),
            "flops_per_token": model.flops_per_token()}


def tokens_for_flops(config: GPTConfig, flops: float) -> int:
    """The training tokens that spend ``flops`` on this architecture: C / flops_per_token."""
    return int(round(flops / model_facts(config)["flops_per_token"]))


@dataclass
class RunResult:
    n_layer: int
    n_embd: int
    vocab_size: int
    params: int  # all parameters
    n_params: int  # non-embedding parameters (N)
    tokens: int  # training tokens actually used (D): steps x batch x block
    steps: int
    flops: float  # training FLOPs: flops_per_token x tokens
    val_loss: float  # nats per token over the whole validation split
    val_bpc: float  # bits per character of the same text
    train_loss: float  # the last logged training loss (a batch estimate)
    seconds: float
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def steps_for(tokens: int, batch_size: int = BATCH, block_size: int = BLOCK) -> int:
    per_step = batch_size * block_size
    steps = tokens // per_step
    if steps < 10:
        raise ValueError(f"{tokens:,} tokens are {steps} steps of {per_step} tokens; a run needs at least 10.")
    return steps


def run(data: Dataset, val_text: str, n_layer: int, n_embd: int, tokens: int, *, seed: int = 0, lr: float = LR,
        batch_size: int = BATCH, block_size: int = BLOCK, threads: int | None = None) -> RunResult:
    """Train one grid point from scratch and score it on ``val_text`` (the validation split, as text)."""
    from .train import Trainer
    from .train_config import TrainConfig

    vocab = data.tokenizer.vocab_size
    arch = grid_model(n_layer, n_embd, vocab, block_size)
    steps = steps_for(tokens, batch_size, block_size)
    config = TrainConfig(
        model=arch, batch_size=batch_size, max_iters=steps, lr=lr, min_lr=lr / 10,
        warmup_iters=min(100, steps // 10), eval_interval=0, eval_iters=1, log_interval=max(1, steps // 20),
        seed=seed, device="cpu", dtype="float32", compile=False, progress=False, threads=threads,
    )
    start = time.perf_counter()
    trainer = Trainer(config, data)
    result = trainer.train()
    bpc, nats, _, _ = validation_bpc(trainer.model, data.tokenizer, val_text)
    facts = model_facts(arch)
    used = steps * batch_size * block_size
    return RunResult(
        n_layer=n_layer, n_embd=n_embd, vocab_size=vocab, params=facts["params"], n_params=facts["n_params"],
        tokens=used, steps=steps, flops=float(facts["flops_per_token"]) * used, val_loss=nats, val_bpc=bpc,
        train_loss=result.history["loss"][-1], seconds=time.perf_counter() - start, seed=seed,
    )


def isoflop_plan(budgets: Iterable[float], sizes: Sequence[tuple[int, int]] = SIZES, vocab_size: int = 65, *,
                 min_tokens: int = 250_000, max_tokens: int = 12_000_000) -> list[dict[str, Any]]:
    """The runs of an IsoFLOP grid: every size at every budget, D = C / flops_per_token, within the token limits.

    Runs whose D falls outside ``[min_tokens, max_tokens]`` are left out (too few
    steps to learn anything, or more compute than the grid can afford).
    """
    plan = []
    for flops in budgets:
        for n_layer, n_embd in sizes:
            tokens = tokens_for_flops(grid_model(n_layer, n_embd, vocab_size), flops)
            if min_tokens <= tokens <= max_tokens:
                plan.append({"flops_budget": float(flops), "n_layer": n_layer, "n_embd": n_embd, "tokens": tokens})
    return plan


def group_by(rows: Iterable[dict[str, Any]], key: str) -> dict[Any, list[dict[str, Any]]]:
    """Rows with the same ``key``, in order of first appearance."""
    out: dict[Any, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r[key], []).append(r)
    return out


def log_interp(x: float, xs: Sequence[float], ys: Sequence[float]) -> float:
    """Linear interpolation of ln y against ln x (all positive) at ``x``; ``x`` must lie within ``xs``."""
    import numpy as np

    lx, ly = np.log(np.asarray(xs, dtype=np.float64)), np.log(np.asarray(ys, dtype=np.float64))
    order = np.argsort(lx)
    u = math.log(x)
    if not lx.min() <= u <= lx.max():
        raise ValueError(f"{x:.4g} lies outside the range {math.exp(lx.min()):.4g}..{math.exp(lx.max()):.4g}.")
    return float(np.exp(np.interp(u, lx[order], ly[order])))


__all__ = ["BATCH", "BLOCK", "LR", "RunResult", "SIZES", "grid_model", "group_by", "isoflop_plan", "log_interp",
           "model_facts", "run", "steps_for", "tokens_for_flops"]
