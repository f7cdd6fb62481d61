"""The small training runs behind chapter 13's comparisons of modern architecture choices.

Every run trains a fresh character-level GPT on Tiny Shakespeare with the course
`Trainer` (chapter 05) and one shared recipe, so that the only thing that changes
between two runs is the architecture (and the seed):

* the model: `BASE` (4 blocks of 4 heads, 128 wide, a context of 128 characters,
  no dropout); `block_config` turns GPT-2's block into Llama's one change at a time
  (`BLOCK_STEPS`), each change kept in the next;
* the data: `BATCH` windows per step for ``steps`` steps; AdamW at `LR` with a
  warmup of 10% of the steps and cosine decay to a tenth;
* the score: bits per character on the whole validation split
  (`course.evaluate.validation_bpc`). Only validation is used: nothing here is tuned
  on it (every variant gets the same learning rate), and there is no test split to spend.

`benchmarks/modern_grid.py` runs the grid (``make modern-grid``) and writes
``benchmarks/results/modern.json``; the chapter reads it and re-runs small parts live.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from torch import nn

from .evaluate import validation_bpc
from .model import GPT, GPTConfig
from .moe import MoE, expert_load
from .token_data import Dataset

BASE = dict(n_layer=4, n_head=4, n_embd=128, block_size=128, dropout=0.0)
BATCH = 16
LR = 2e-3

#: GPT-2's block turned into Llama's, one change at a time; each step keeps the ones before it.
BLOCK_STEPS: tuple[str, ...] = ("gpt2", "rmsnorm", "swiglu", "rope", "no_bias")
BLOCK_LABELS = {"gpt2": "GPT-2 block", "rmsnorm": "+ RMSNorm", "swiglu": "+ SwiGLU", "rope": "+ RoPE",
                "no_bias": "+ no biases (Llama block)"}


def swiglu_hidden(n_embd: int) -> int:
    """The SwiGLU width with the parameters of a 4x GELU MLP: 3·d·h = 2·d·4d, so h = 8d/3 (rounded)."""
    return round(8 * n_embd / 3)


def block_config(step: str, vocab_size: int, **overrides: Any) -> GPTConfig:
    """The architecture after the changes of `BLOCK_STEPS` up to and including ``step``."""
    if step not in BLOCK_STEPS:
        raise ValueError(f"step must be one of {BLOCK_STEPS}, got {step!r}.")
    done = BLOCK_STEPS[: BLOCK_STEPS.index(step) + 1]
    kw: dict[str, Any] = dict(BASE, vocab_size=vocab_size, positional="learned", norm="layernorm", mlp="gelu", bias=True)
    if "rmsnorm" in done:
        kw["norm"] = "rmsnorm"
    if "swiglu" in done:
        kw.update(mlp="swiglu", mlp_hidden=swiglu_hidden(BASE["n_embd"]))  # type: ignore[arg-type]
    if "rope" in done:
        kw["positional"] = "rope"
    if "no_bias" in done:
        kw["bias"] = False
    kw.update(overrides)
    return GPTConfig(**kw)


def expert_loads(model: nn.Module) -> list[list[float]]:
    """Each MoE layer's share of token-to-expert assignments per expert, from its last forward pass."""
    loads = []
    for m in model.modules():
        if isinstance(m, MoE) and m.last:
            loads.append(expert_load(m.last["chosen"], m.n_experts).tolist())
    return loads


def train_run(data: Dataset, val_text: str, config: GPTConfig, *, steps: int, seed: int, lr: float = LR,
              batch_size: int = BATCH, model: GPT | None = None, eval_interval: int = 0,
              on_eval: Callable[[Any, float], None] | None = None, threads: int | None = None) -> tuple[dict[str, Any], GPT]:
    """Train ``config`` (or continue ``model``) for ``steps`` steps; return (a result row, the trained model)."""
    from .train import Trainer
    from .train_config import TrainConfig

    tc = TrainConfig(
        model=config if model is None else model.config, batch_size=batch_size, max_iters=steps, lr=lr, min_lr=lr / 10,
        warmup_iters=min(100, steps // 10), eval_interval=eval_interval, eval_iters=4 if eval_interval else 1,
        log_interval=max(1, steps // 20), seed=seed, device="cpu", dtype="float32", compile=False, progress=False,
        threads=threads,
    )
    start = time.perf_counter()
    trainer = Trainer(tc, data, model=model)
    result = trainer.train(on_eval=on_eval)
    seconds = time.perf_counter() - start
    trained = trainer.model
    bpc, nats, _, _ = validation_bpc(trained, data.tokenizer, val_text)
    row = {"steps": steps, "seed": seed, "lr": lr, "batch_size": batch_size, "val_bpc": bpc, "val_loss": nats,
           "params": trained.num_parameters(), "active_params": trained.active_parameters(),
           "train_loss": result.history["loss"][-1], "seconds": seconds,
           "tokens_per_second": steps * batch_size * trained.config.block_size / seconds}
    return row, trained


__all__ = ["BASE", "BATCH", "BLOCK_LABELS", "BLOCK_STEPS", "LR", "block_config", "expert_loads", "swiglu_hidden",
           "train_run"]
