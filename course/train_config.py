"""Training configuration and presets (chapter 05; chapters 07 and 08 reuse them).

`TrainConfig` holds everything that defines a run; the model's architecture is its
``model`` field (a `course.model.GPTConfig`). The presets are *overrides of one
base*, the `TrainConfig` defaults (nanoGPT's CPU example), so what a preset changes
is written in one line::

    cpu_preset(max_iters=600)           # the chapter's CPU run, shorter
    preset("gpu", out_dir="runs/gpu")   # nanoGPT's baby GPT

No preset fixes ``lr_decay_iters``: it defaults to ``max_iters``, so a shortened run
still decays to ``min_lr`` by its last step.

Intervals share one rule: ``eval_interval``, ``log_interval``, ``sample_interval``
and ``checkpoint_interval`` do their thing every that many steps, and 0 turns it
off during the run. The last step of a run is always logged, evaluated and saved
(when ``out_dir`` is set), whatever the intervals.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from .model import GPTConfig
from .validate import dataclass_from_dict

INTERVALS = ("eval_interval", "log_interval", "sample_interval", "checkpoint_interval")


@dataclass
class TrainConfig:
    """Everything that defines a training run (the model's architecture is in ``model``)."""

    model: GPTConfig = field(default_factory=lambda: GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128))
    # data
    tokenizer: str = "char"  # "char" or "bpe" (a byte-level BPE trained on the training split)
    bpe_vocab_size: int = 512
    val_fraction: float = 0.1
    # optimisation
    batch_size: int = 12  # sequences per micro-batch per process
    grad_accum: int = 1  # micro-batches per optimizer step
    max_iters: int = 2000
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    lr_decay_iters: int | None = None  # default: max_iters (the cosine ends at min_lr on the last step)
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0  # 0 turns clipping off
    # evaluation and logging (every *_interval: 0 = off during the run; the last step always logs and evaluates)
    eval_interval: int = 250
    eval_iters: int = 20  # fixed batches for each evaluation
    log_interval: int = 10
    sample_interval: int = 0
    sample_tokens: int = 200
    # system
    seed: int = 1337  # under DDP, process r seeds its dropout with seed + r; the batches are the same for any number of processes
    device: str | None = None  # None: cuda > mps > cpu
    dtype: str = "auto"  # "auto" (bf16 on capable GPUs), "float32", "bfloat16" (also autocasts on the CPU)
    compile: bool | None = None  # None: on CUDA only
    threads: int | None = None  # CPU threads; None leaves PyTorch's default
    out_dir: str | None = None  # None: no checkpoints, no log file
    checkpoint_interval: int = 0  # 0: only at the end (and on interrupt)
    keep_checkpoints: int = 2  # this run's newest; older ones of this run are deleted, never another run's (0: keep all)
    resume: bool = False
    progress: bool = True
    data_dir: str | None = None  # a folder for memory-mapped train.bin / val.bin (written on first use)

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            self.model = GPTConfig.from_dict(self.model)
        if not isinstance(self.model, GPTConfig):
            raise TypeError(f"model must be a GPTConfig (or its dict), got {type(self.model).__name__}.")
        if self.tokenizer not in ("char", "bpe"):
            raise ValueError(f"tokenizer must be 'char' or 'bpe', got {self.tokenizer!r}.")
        for name in ("batch_size", "grad_accum", "max_iters", "eval_iters"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        for name in (*INTERVALS, "warmup_iters", "keep_checkpoints", "sample_tokens"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0 turns it off), got {getattr(self, name)}.")
        if self.lr_decay_iters is not None and self.lr_decay_iters < 1:
            raise ValueError(f"lr_decay_iters must be >= 1, or None for max_iters; got {self.lr_decay_iters}.")
        if self.dtype not in ("auto", "float32", "bfloat16"):
            raise ValueError(f"dtype must be 'auto', 'float32' or 'bfloat16', got {self.dtype!r}.")
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr ({self.min_lr}) must not exceed lr ({self.lr}).")

    @property
    def decay_iters(self) -> int:
        """The step at which the cosine reaches ``min_lr``: ``lr_decay_iters``, by default ``max_iters``."""
        return self.lr_decay_iters or self.max_iters

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        return dataclass_from_dict(cls, d)


def every(step: int, interval: int) -> bool:
    """The rule of every ``*_interval``: due at multiples of ``interval``; 0 means never."""
    return interval > 0 and step % interval == 0


# ============================================================================ presets

# Each preset: what it changes in the TrainConfig defaults ("model": what it changes in the default model).
PRESET_OVERRIDES: dict[str, dict[str, Any]] = {
    # nanoGPT's CPU example on Tiny Shakespeare: 4 layers, 4 heads, 128 wide, context 64, batch 12, 2,000 steps
    "nanogpt-cpu": {},
    # the chapter's CPU run: a few minutes on 2 cores, validation loss under 1.70 on Tiny Shakespeare
    "cpu": {"model": {"block_size": 128}, "batch_size": 16, "max_iters": 2500, "lr": 2e-3, "min_lr": 2e-4},
    # nanoGPT's "baby GPT" for one GPU: 6 layers, 6 heads, 384 wide, context 256 (about 10.7M parameters)
    "gpu": {
        "model": {"block_size": 256, "n_layer": 6, "n_head": 6, "n_embd": 384, "dropout": 0.2, "attn_dropout": 0.2},
        "batch_size": 64, "max_iters": 5000, "eval_iters": 200,
    },
}


def preset(name: str, **overrides: Any) -> TrainConfig:
    """The preset ``name`` (see `PRESET_OVERRIDES`) with ``overrides`` applied (``model=`` replaces the architecture)."""
    if name not in PRESET_OVERRIDES:
        raise ValueError(f"unknown preset {name!r}: choose one of {sorted(PRESET_OVERRIDES)}.")
    changes = dict(PRESET_OVERRIDES[name])
    model = GPTConfig.from_dict({**TrainConfig().model.to_dict(), **changes.pop("model", {})})
    return TrainConfig(**{"model": model, **changes, **overrides})


def nanogpt_cpu_config(**overrides: Any) -> TrainConfig:
    """nanoGPT's CPU example on Tiny Shakespeare: 4 layers, 4 heads, 128 wide, context 64, batch 12, 2,000 steps."""
    return preset("nanogpt-cpu", **overrides)


def cpu_preset(**overrides: Any) -> TrainConfig:
    """The chapter's CPU run: a few minutes on 2 cores, validation loss under 1.70 on Tiny Shakespeare."""
    return preset("cpu", **overrides)


def gpu_preset(**overrides: Any) -> TrainConfig:
    """nanoGPT's "baby GPT" for one GPU: 6 layers, 6 heads, 384 wide, context 256 (about 10.7M parameters)."""
    return preset("gpu", **overrides)


PRESETS: dict[str, Callable[..., TrainConfig]] = {"cpu": cpu_preset, "gpu": gpu_preset, "nanogpt-cpu": nanogpt_cpu_config}
