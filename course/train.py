"""Pretraining a GPT (chapter 05; chapter 07 fine-tunes and chapter 08 scales with the same trainer).

    from course.train import TrainConfig, Trainer, cpu_preset
    result = Trainer(cpu_preset(out_dir="runs/cpu")).train()

or from a shell (also under ``torchrun --nproc_per_node=N`` for data parallelism):

    python -m course.train --preset cpu --out-dir runs/cpu
    python -m course.train --preset gpu --out-dir runs/gpu --max-iters 5000

What it does, each piece small enough to read:

* **Data.** Tokens live in one flat tensor (or a memory-mapped ``.bin`` file, for
  corpora larger than memory). A batch is random windows of ``block_size + 1``
  tokens; inputs are the first ``block_size``, targets the last (shifted by one).
  Every optimizer step draws the indices of the *global* batch (all micro-batches
  of all processes) from one seeded generator, and each process takes its slice:
  1 process x batch 12 sees exactly the data of 2 processes x batch 6, or of
  1 process x batch 6 x 2 accumulation steps.
* **Optimisation.** AdamW with weight decay on matrices only, not on biases or
  norm gains (`param_groups` says why), linear warmup then cosine decay
  (`lr_at`), gradient clipping,
  gradient accumulation, evaluation every ``eval_interval`` steps on fixed
  validation batches.
* **Speed.** bf16 autocast, ``torch.compile``, fused AdamW and TF32 on CUDA only;
  plain float32 elsewhere.
* **Checkpoints** (`course.checkpoint`). A folder per checkpoint: weights as
  safetensors, optimizer, step and RNG states in a weights-only torch file
  (loaded with ``weights_only=True``: no pickled code runs), the config as JSON.
  Everything is written under unique temporary names and renamed into place, and
  ``latest.json`` only ever points at a complete folder; a run deletes only its
  own older checkpoints. ``resume=True`` continues exactly where the run stopped:
  on CPU the losses equal those of an uninterrupted run. Ctrl-C
  (KeyboardInterrupt) saves a checkpoint before stopping; a step it cuts short is
  undone first (its batch is drawn again after resuming), so that holds for an
  interrupted run too.
* **Progress.** A ``tqdm.auto`` bar with loss, learning rate and tokens/s, and a
  JSONL log of every metric (``metrics.jsonl``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from .checkpoint import (  # noqa: F401  (save_checkpoint ... load_tokenizer: also importable from here)
    CONFIG as CHECKPOINT_CONFIG,
    LATEST,
    STATE as CHECKPOINT_STATE,
    WEIGHTS as CHECKPOINT_WEIGHTS,
    atomic_write,
    atomic_write_text,
    latest_checkpoint,
    load_checkpoint,
    load_model,
    load_tokenizer,
    read_pointer,
    rng_states,
    save_checkpoint,
    set_rng_states,
)
from .data import train_val_split
from .device import pick_device, pick_dtype, seed_everything
from .model import GPT, GPTConfig


# ============================================================================ configuration


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
    lr_decay_iters: int | None = None  # default: max_iters
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0  # 0 turns clipping off
    # evaluation and logging
    eval_interval: int = 250
    eval_iters: int = 20  # fixed batches for each evaluation
    log_interval: int = 10
    sample_interval: int = 0  # 0: no samples during training
    sample_tokens: int = 200
    # system
    seed: int = 1337
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
        if self.tokenizer not in ("char", "bpe"):
            raise ValueError(f"tokenizer must be 'char' or 'bpe', got {self.tokenizer!r}.")
        for name in ("batch_size", "grad_accum", "max_iters", "eval_iters"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.dtype not in ("auto", "float32", "bfloat16"):
            raise ValueError(f"dtype must be 'auto', 'float32' or 'bfloat16', got {self.dtype!r}.")
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr ({self.min_lr}) must not exceed lr ({self.lr}).")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown TrainConfig fields: {sorted(unknown)}")
        return cls(**d)


def nanogpt_cpu_config(**overrides: Any) -> TrainConfig:
    """nanoGPT's CPU example on Tiny Shakespeare: 4 layers, 4 heads, 128 wide, context 64, batch 12, 2,000 steps."""
    base = dict(
        model=GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0),
        batch_size=12, max_iters=2000, lr=1e-3, min_lr=1e-4, warmup_iters=100, lr_decay_iters=2000,
        weight_decay=0.1, beta2=0.99, eval_interval=250, eval_iters=20,
    )
    base.update(overrides)
    return TrainConfig(**base)


def cpu_preset(**overrides: Any) -> TrainConfig:
    """The chapter's CPU run: a few minutes on 2 cores, validation loss under 1.70 on Tiny Shakespeare."""
    base = dict(
        model=GPTConfig(vocab_size=65, block_size=128, n_layer=4, n_head=4, n_embd=128, dropout=0.0),
        batch_size=16, max_iters=2500, lr=2e-3, min_lr=2e-4, warmup_iters=100, lr_decay_iters=2500,
        weight_decay=0.1, beta2=0.99, eval_interval=250, eval_iters=20,
    )
    base.update(overrides)
    return TrainConfig(**base)


def gpu_preset(**overrides: Any) -> TrainConfig:
    """nanoGPT's "baby GPT" for one GPU: 6 layers, 6 heads, 384 wide, context 256 (about 10.7M parameters)."""
    base = dict(
        model=GPTConfig(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384, dropout=0.2, attn_dropout=0.2),
        batch_size=64, max_iters=5000, lr=1e-3, min_lr=1e-4, warmup_iters=100, lr_decay_iters=5000,
        weight_decay=0.1, beta2=0.99, eval_interval=250, eval_iters=200,
    )
    base.update(overrides)
    return TrainConfig(**base)


PRESETS: dict[str, Callable[..., TrainConfig]] = {"cpu": cpu_preset, "gpu": gpu_preset, "nanogpt-cpu": nanogpt_cpu_config}


# ============================================================================ schedule and optimizer


def lr_at(step: int, config: TrainConfig) -> float:
    """Linear warmup from 0 to ``lr`` over ``warmup_iters`` steps, then cosine decay to ``min_lr``."""
    decay_iters = config.lr_decay_iters or config.max_iters
    if step < config.warmup_iters:
        return config.lr * (step + 1) / (config.warmup_iters + 1)
    if step >= decay_iters:
        return config.min_lr
    progress = (step - config.warmup_iters) / max(1, decay_iters - config.warmup_iters)
    return config.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (config.lr - config.min_lr)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices (linear and embedding weights), none on vectors (biases, norm gains).

    Decay pulls weights towards 0. For a matrix that is a useful prior (no single
    direction grows without bound); for a bias or a norm's gain, 0 is not a
    natural value, so decaying them only hurts.
    """
    decay, no_decay = [], []
    for p in model.parameters():  # shared (tied) tensors appear once
        if not p.requires_grad:
            continue
        (decay if p.dim() >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    extra = {"fused": True} if device.type == "cuda" else {}
    return torch.optim.AdamW(
        param_groups(model, config.weight_decay), lr=config.lr, betas=(config.beta1, config.beta2), **extra
    )


# ============================================================================ data


class TokenData:
    """A flat sequence of token ids to draw training windows from: an int tensor, or a memory-mapped .bin file."""

    def __init__(self, tokens: Tensor | np.ndarray) -> None:
        if isinstance(tokens, Tensor):
            tokens = tokens.cpu().numpy()
        if tokens.ndim != 1:
            raise ValueError(f"tokens must be one flat sequence, got shape {tokens.shape}.")
        self.tokens = tokens

    @classmethod
    def from_bin(cls, path: str | Path, dtype: Any = np.uint16) -> "TokenData":
        """Memory-map a file of raw token ids: nothing is read until a batch needs it."""
        return cls(np.memmap(path, dtype=dtype, mode="r"))

    def to_bin(self, path: str | Path) -> Path:
        """Write the ids as raw integers (uint16 when they fit, else uint32), atomically."""
        dtype = np.uint16 if int(self.tokens.max(initial=0)) < 2**16 else np.uint32
        return atomic_write(path, np.asarray(self.tokens, dtype=dtype).tofile)

    def __len__(self) -> int:
        return len(self.tokens)

    def windows(self, starts: Tensor, block_size: int) -> tuple[Tensor, Tensor]:
        """Inputs and targets (shifted by one) for windows starting at ``starts``."""
        offsets = starts.numpy()[:, None] + np.arange(block_size + 1)
        chunk = torch.from_numpy(np.asarray(self.tokens[offsets], dtype=np.int64))
        return chunk[:, :-1], chunk[:, 1:]


class BatchSampler:
    """Random training windows; its generator's state is the data position saved in checkpoints."""

    def __init__(self, data: TokenData, block_size: int, seed: int) -> None:
        if len(data) <= block_size:
            raise ValueError(f"the data has {len(data)} tokens, too few for windows of block_size={block_size} + 1.")
        self.data, self.block_size = data, block_size
        self.generator = torch.Generator().manual_seed(seed)

    def starts(self, n: int) -> Tensor:
        return torch.randint(len(self.data) - self.block_size, (n,), generator=self.generator)

    def step_batches(self, micro_batch: int, grad_accum: int, world_size: int = 1, rank: int = 0) -> list[tuple[Tensor, Tensor]]:
        """The micro-batches of one optimizer step for process ``rank``: a slice of the global batch."""
        starts = self.starts(micro_batch * grad_accum * world_size).view(grad_accum, world_size, micro_batch)
        return [self.data.windows(starts[i, rank], self.block_size) for i in range(grad_accum)]


def fixed_batches(data: TokenData, block_size: int, batch_size: int, n: int, seed: int) -> list[tuple[Tensor, Tensor]]:
    """``n`` batches drawn once: evaluating on the same batches makes every evaluation comparable."""
    sampler = BatchSampler(data, block_size, seed)
    return [data.windows(sampler.starts(batch_size), block_size) for _ in range(n)]


@dataclass
class Dataset:
    """Train and validation tokens plus the tokenizer that made them."""

    train: TokenData
    val: TokenData
    tokenizer: Any
    corpus_name: str


def prepare_data(config: TrainConfig, text: str | None = None) -> Dataset:
    """Tokenize Tiny Shakespeare (or ``text``) and split it 90/10 into train and validation."""
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
    return Dataset(train, val, tokenizer, name)


def write_token_files(dataset: Dataset, folder: str | Path) -> Path:
    """Save a dataset as train.bin, val.bin (raw token ids) and tokenizer.json, for memory-mapping.

    Each file is written atomically, meta.json last: a folder with meta.json is complete.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dataset.train.to_bin(folder / "train.bin")
    dataset.val.to_bin(folder / "val.bin")
    atomic_write(folder / "tokenizer.json", dataset.tokenizer.save)
    meta = {"corpus": dataset.corpus_name, "dtype": str(np.asarray(dataset.train.tokens[:0]).dtype),
            "bin_dtype": "uint16" if dataset.tokenizer.vocab_size < 2**16 else "uint32",
            "tokenizer": type(dataset.tokenizer).__name__}
    atomic_write_text(folder / "meta.json", json.dumps(meta))
    return folder


def load_token_files(folder: str | Path) -> Dataset:
    """Memory-map train.bin and val.bin written by `write_token_files`; nothing is read until a batch needs it."""
    from .tokenizers import BPETokenizer, CharTokenizer

    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text())
    dtype = np.uint16 if meta["bin_dtype"] == "uint16" else np.uint32
    cls = CharTokenizer if meta["tokenizer"] == "CharTokenizer" else BPETokenizer
    return Dataset(
        TokenData.from_bin(folder / "train.bin", dtype), TokenData.from_bin(folder / "val.bin", dtype),
        cls.load(folder / "tokenizer.json"), meta["corpus"],
    )


# ============================================================================ distributed


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group when launched by ``torchrun`` (RANK and WORLD_SIZE set); else a single process."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


# ============================================================================ the trainer


@dataclass
class TrainResult:
    history: dict[str, list]  # "step", "loss", "lr" per log interval; "eval_step", "val_loss", "train_loss"
    final_val_loss: float
    seconds: float
    tokens_per_second: float
    steps: int
    interrupted: bool = False
    checkpoint: Path | None = None


LossFn = Callable[[nn.Module, Tensor, Tensor], Tensor]


def language_model_loss(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """The default loss: next-token cross-entropy (targets equal to -100 are ignored)."""
    return model(x, y)[1]


class StepInterrupted(KeyboardInterrupt):
    """Ctrl-C during an optimizer update, raised once the step is complete; ``loss`` is the step's loss."""

    def __init__(self, loss: float) -> None:
        super().__init__(f"interrupted after a complete step (loss {loss})")
        self.loss = loss


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[list[int]]:
    """Hold back Ctrl-C (SIGINT) while the block runs; the list it gives is not empty afterwards if one came."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield received  # only the main thread can set handlers; and someone else handles SIGINT here
        return
    signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield received
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


class Trainer:
    """Trains a `GPT` on a `Dataset` according to a `TrainConfig`.

    The same loop serves other tasks (chapter 07): pass a ``sampler`` (anything
    with ``step_batches(micro_batch, grad_accum, world_size, rank)`` and a
    ``generator`` attribute, whose state is checkpointed), fixed ``val_batches``
    (and optionally ``train_eval_batches``), and a ``loss_fn(model, x, y)``.
    Parameters with ``requires_grad=False`` are not trained (LoRA, frozen bodies).
    """

    def __init__(
        self,
        config: TrainConfig,
        data: Dataset | None = None,
        model: nn.Module | None = None,
        *,
        sampler: Any = None,
        val_batches: Sequence[tuple[Tensor, Tensor]] | None = None,
        train_eval_batches: Sequence[tuple[Tensor, Tensor]] | None = None,
        loss_fn: LossFn = language_model_loss,
    ) -> None:
        self.config = c = config
        self.device = pick_device(c.device)
        if c.threads:
            torch.set_num_threads(c.threads)
        self.dist = init_distributed(self.device.type)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(self.device)
        seed_everything(c.seed)
        if data is None and c.data_dir:
            if self.dist.is_main and not (Path(c.data_dir) / "meta.json").is_file():
                write_token_files(prepare_data(c), c.data_dir)
            if self.dist.enabled:
                dist.barrier()  # the other processes wait until the files are written
            data = load_token_files(c.data_dir)
        if sampler is not None and (val_batches is None or model is None):
            raise ValueError("with a custom sampler, also pass the model and val_batches (fixed evaluation batches).")
        if data is None and sampler is None:
            data = prepare_data(c)
        self.data = data
        self.loss_fn = loss_fn
        vocab = getattr(data.tokenizer, "vocab_size", None) if data is not None else None
        if model is None:
            if vocab is not None and vocab != c.model.vocab_size:
                c.model = GPTConfig.from_dict({**c.model.to_dict(), "vocab_size": vocab})
            model = GPT(c.model)
        self.model = model.to(self.device)
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        want = pick_dtype(self.device) if c.dtype == "auto" else getattr(torch, c.dtype)
        # bf16 autocast: on CUDA by default ("auto"); on the CPU only when asked for (dtype="bfloat16", chapter 08)
        asked = c.dtype == "bfloat16" and self.device.type == "cpu"
        self.autocast_dtype = want if want == torch.bfloat16 and (self.device.type == "cuda" or asked) else None
        self.optimizer = make_optimizer(self.model, c, self.device)
        if sampler is None:
            assert data is not None
            block = self.model.config.block_size
            sampler = BatchSampler(data.train, block, c.seed)
            val_batches = val_batches or fixed_batches(data.val, block, c.batch_size, c.eval_iters, c.seed + 1)
            train_eval_batches = train_eval_batches or fixed_batches(data.train, block, c.batch_size, c.eval_iters, c.seed + 2)
        self.sampler = sampler
        self.val_batches = list(val_batches)  # type: ignore[arg-type]
        self.train_eval_batches = list(train_eval_batches) if train_eval_batches else self.val_batches[:0]
        self.step = 0
        self.tokens_seen = 0  # input tokens of every process, since this trainer was made
        self.history: dict[str, list] = {k: [] for k in ("step", "loss", "lr", "eval_step", "val_loss", "train_loss")}
        self.checkpoints: list[str] = []  # this run's checkpoint folders in out_dir, oldest first: the only ones it deletes
        if c.resume:
            self._resume()
        compile_it = c.compile if c.compile is not None else self.device.type == "cuda"
        self.forward_model: nn.Module = torch.compile(self.model) if compile_it else self.model
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.forward_model = DistributedDataParallel(self.forward_model, device_ids=ids)

    # -------------------------------------------------------------- pieces

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    @torch.no_grad()
    def evaluate(self, batches: Sequence[tuple[Tensor, Tensor]] | None = None) -> float:
        """Mean loss over fixed batches (validation by default), with dropout off."""
        batches = self.val_batches if batches is None else batches
        was_training = self.model.training
        self.model.eval()
        total = 0.0
        for x, y in batches:
            with self._autocast():
                loss = self.loss_fn(self.model, x.to(self.device), y.to(self.device))
            total += float(loss)
        self.model.train(was_training)
        return total / len(batches)

    def _resume(self) -> None:
        c = self.config
        if not c.out_dir:
            raise ValueError("resume=True needs out_dir (where the checkpoints are).")
        pointer = read_pointer(c.out_dir)  # a corrupt or dangling latest.json raises CheckpointError
        if pointer is None:
            if self.dist.is_main:
                print(f"resume: no checkpoint in {c.out_dir} yet; starting from step 0", file=sys.stderr)
            return
        folder = Path(c.out_dir) / pointer.checkpoint
        ckpt = load_checkpoint(self.model, self.optimizer, folder, generator=self.sampler.generator, device=self.device)
        self.history, self.step = ckpt.history, ckpt.step
        self.checkpoints = pointer.run  # the run goes on: its older checkpoints are still its own

    def save(self) -> Path | None:
        c = self.config
        if not c.out_dir or not self.dist.is_main:
            return None
        return save_checkpoint(
            c.out_dir, self.step, self.model, self.optimizer, self.sampler, c,
            self.data.tokenizer if self.data is not None else None, self.history, c.keep_checkpoints,
            run=self.checkpoints,
        )

    def _log(self, record: dict[str, Any]) -> None:
        if self.config.out_dir and self.dist.is_main:
            Path(self.config.out_dir).mkdir(parents=True, exist_ok=True)
            with open(Path(self.config.out_dir) / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    def sample(self, prompt: str = "\n", tokens: int | None = None, seed: int = 0) -> str:
        """A sample from the current model (temperature 1, seeded), decoded to text."""
        from .sampling import generate

        if self.data is None:
            raise ValueError("this trainer has no tokenizer (it was given a custom sampler): decode samples yourself.")
        tok = self.data.tokenizer
        ids = torch.tensor([tok.encode(prompt)], dtype=torch.long)
        out = generate(self.model, ids, tokens or self.config.sample_tokens, generator=torch.Generator(self.device).manual_seed(seed))
        return tok.decode(out[0, ids.shape[1]:].tolist())

    def train_step(self) -> float:
        """One optimizer step (all micro-batches); returns the mean loss over the global batch.

        All or nothing: interrupted (Ctrl-C) before the update, the step is undone
        (random states and gradients as before it, so a checkpoint saved now resumes
        exactly); a Ctrl-C during the update is held back until the step is complete,
        then raised as `StepInterrupted` (a KeyboardInterrupt carrying the loss).
        """
        c = self.config
        before = rng_states(self.sampler.generator, cuda=self.device.type == "cuda"), self.tokens_seen
        try:
            lr = lr_at(self.step, c)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            batches = self.sampler.step_batches(c.batch_size, c.grad_accum, self.dist.world_size, self.dist.rank)
            loss_sum = torch.zeros((), device=self.device)
            for i, (x, y) in enumerate(batches):
                x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
                sync = not self.dist.enabled or i == len(batches) - 1  # DDP: all-reduce only on the last micro-batch
                ctx = contextlib.nullcontext() if sync else self.forward_model.no_sync()  # type: ignore[operator]
                with ctx, self._autocast():
                    loss = self.loss_fn(self.forward_model, x, y)
                    (loss / c.grad_accum).backward()
                loss_sum += loss.detach()
                self.tokens_seen += x.numel() * self.dist.world_size
            if c.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip)
        except BaseException:
            set_rng_states(before[0], self.sampler.generator)
            self.tokens_seen = before[1]
            self.optimizer.zero_grad(set_to_none=True)
            raise
        with _interrupts_deferred() as interrupted:  # half an update would leave weights and optimizer state out of step
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
        mean = loss_sum / c.grad_accum
        if self.dist.enabled:
            dist.all_reduce(mean, op=dist.ReduceOp.AVG)
        if interrupted:
            raise StepInterrupted(float(mean))
        return float(mean)

    # -------------------------------------------------------------- the loop

    def train(self, max_iters: int | None = None, *, on_eval: Callable[["Trainer", float], None] | None = None) -> TrainResult:
        """Train until step ``max_iters`` (default: the config's), evaluating and checkpointing on the way."""
        from tqdm.auto import tqdm

        c = self.config
        end = c.max_iters if max_iters is None else max_iters
        self.model.train()
        bar = tqdm(total=end, initial=self.step, disable=not (c.progress and self.dist.is_main), desc="training", dynamic_ncols=True)
        start, start_step, start_tokens = time.perf_counter(), self.step, self.tokens_seen
        interrupted, checkpoint = False, None
        try:
            while self.step < end:
                stop = None
                try:
                    loss = self.train_step()
                except StepInterrupted as err:  # Ctrl-C during the update: record the complete step, then stop
                    loss, stop = err.loss, err
                step = self.step
                if step % c.log_interval == 0 or step == end:
                    elapsed = time.perf_counter() - start
                    tps = (self.tokens_seen - start_tokens) / max(elapsed, 1e-9)
                    lr = lr_at(step - 1, c)
                    for k, v in (("step", step), ("loss", loss), ("lr", lr)):
                        self.history[k].append(v)
                    self._log({"step": step, "loss": round(loss, 5), "lr": lr, "tokens_per_s": round(tps), "time_s": round(elapsed, 2)})
                    bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.1e}", tok_s=f"{tps:,.0f}", refresh=False)
                bar.update(1)
                if step % c.eval_interval == 0 or step == end:
                    val = self.evaluate()
                    train_eval = self.evaluate(self.train_eval_batches) if self.train_eval_batches else float("nan")
                    for k, v in (("eval_step", step), ("val_loss", val), ("train_loss", train_eval)):
                        self.history[k].append(v)
                    self._log({"step": step, "val_loss": round(val, 5), "train_loss": round(train_eval, 5)})
                    if on_eval is not None:
                        on_eval(self, val)
                if c.sample_interval and step % c.sample_interval == 0 and self.dist.is_main:
                    self._log({"step": step, "sample": self.sample()})
                if stop is not None:
                    raise stop
                if c.checkpoint_interval and step % c.checkpoint_interval == 0 and step != end:
                    self.save()
        except KeyboardInterrupt:
            interrupted = True
            if self.dist.is_main:
                print(f"\ninterrupted at step {self.step}: saving a checkpoint before stopping", file=sys.stderr)
        finally:
            bar.close()
        seconds = time.perf_counter() - start
        checkpoint = self.save()
        if interrupted and checkpoint is not None:
            print(f"checkpoint saved to {checkpoint}; continue with resume=True", file=sys.stderr)
        steps = self.step - start_step
        val_losses = self.history["val_loss"]
        return TrainResult(
            history=self.history,
            final_val_loss=val_losses[-1] if val_losses else float("nan"),
            seconds=seconds,
            tokens_per_second=(self.tokens_seen - start_tokens) / max(seconds, 1e-9),
            steps=steps,
            interrupted=interrupted,
            checkpoint=checkpoint,
        )


# ============================================================================ command line


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m course.train", description="Pretrain a small GPT on Tiny Shakespeare.")
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    for f in fields(TrainConfig):
        if f.name != "model":
            p.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=None, type=_caster(str(f.type)))
    for f in fields(GPTConfig):
        if f.name != "vocab_size":  # set by the tokenizer
            p.add_argument("--model-" + f.name.replace("_", "-"), dest="model_" + f.name, default=None, type=_caster(str(f.type)))
    return p


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _caster(annotation: str) -> Callable[[str], Any]:
    """How to read a command-line value for a dataclass field annotated ``annotation``."""
    for name, caster in (("bool", _parse_bool), ("int", int), ("float", float)):
        if annotation.startswith(name):
            return caster
    return str


def config_from_args(argv: Sequence[str] | None = None) -> TrainConfig:
    args = vars(_parser().parse_args(argv))
    preset = PRESETS[args.pop("preset")]()
    model_over = {k[len("model_"):]: v for k, v in args.items() if k.startswith("model_") and v is not None}
    over = {k: v for k, v in args.items() if not k.startswith("model_") and v is not None}
    d = preset.to_dict()
    d.update(over)
    d["model"] = {**d["model"], **model_over}
    return TrainConfig.from_dict(d)


def main(argv: Sequence[str] | None = None) -> int:
    config = config_from_args(argv)
    trainer = Trainer(config)
    if trainer.dist.is_main:
        n = trainer.model.num_parameters()
        print(f"model: {n / 1e6:.2f}M parameters on {trainer.device}; {config.max_iters} steps", flush=True)
    result = trainer.train()
    if trainer.dist.is_main:
        print(
            f"done: {result.steps} steps in {result.seconds:.1f} s, {result.tokens_per_second:,.0f} tokens/s, "
            f"final validation loss {result.final_val_loss:.4f}" + (f"; checkpoint {result.checkpoint}" if result.checkpoint else "")
        )
    if trainer.dist.enabled:
        dist.destroy_process_group()
    return 130 if result.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
