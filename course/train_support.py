"""What the training loop stands on (infrastructure of `course.train`, chapters 05, 07 and 08).

`course.train.Trainer` is the loop a learner reads; everything here is what a
real run needs around it, each called from the loop in one line:

* set-up: `setup_system` (device, CPU threads, ``torchrun``'s process group,
  seeds, TF32), `training_data` (token files in ``data_dir``, rebuilt when made by
  another recipe), `sized_to_tokenizer`, `check_data_ids` / `check_batch_ids`
  (ids beyond the vocabulary), `autocast_dtype` / `autocast`, `wrap_model` (``torch.compile``
  on CUDA, DistributedDataParallel under ``torchrun``), `gradient_sync` (DDP
  all-reduces only on a step's last micro-batch);
* resuming: `resume` continues from ``out_dir``'s latest checkpoint after
  checking its data and model (`course.run_manifest`) and its settings
  (`resume_changes`: listed, then refused or applied, never silently kept);
* a step is all or nothing: `undone_on_error` restores the random states and the
  token count and drops the gradients when a step fails before its update (so a
  checkpoint saved after a Ctrl-C resumes exactly); `interrupts_deferred` holds
  Ctrl-C back during the update, which then raises `StepInterrupted`;
  `check_finite` raises `TrainingDiverged` before a NaN or inf reaches the weights;
* records: `MetricsLog` (``metrics.jsonl``, process 0 only, a "start" line per
  run or continuation) and `progress_bar` (``tqdm.auto``; none when
  ``COURSE_NO_PROGRESS=1``, as in the book's executed copies).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import Tensor, nn

from .checkpoint import CONFIG as CHECKPOINT_CONFIG, load_checkpoint, read_pointer, rng_states, saved_config, set_rng_states
from .device import pick_device, pick_dtype, seed_everything
from .distributed import DistInfo, barrier, init_distributed, rank_seed, reseed_after_resume
from .run_manifest import check_resume
from .token_data import Dataset, check_ids, load_token_files, prepare_data, stale_token_files, write_token_files
from .train_config import TrainConfig

# The functions that take a ``trainer`` take a `course.train.Trainer` (typed Any: course.train imports this module).
Trainer = Any

# ============================================================================ set-up


def setup_system(config: TrainConfig) -> tuple[torch.device, DistInfo]:
    """The device, CPU threads, the process group (under torchrun) and the seeds (process r: seed + r)."""
    device = pick_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    dist = init_distributed(device.type)
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    seed_everything(rank_seed(config.seed, dist.rank))
    return device, dist


def training_data(config: TrainConfig, data: Dataset | None, dist: DistInfo, needed: bool) -> Dataset | None:
    """The given dataset, else token files in ``data_dir`` (written once, by process 0), else the corpus if ``needed``."""
    if data is None and config.data_dir:
        why = stale_token_files(config, config.data_dir) if dist.is_main else None
        if why is not None:  # none yet (""), or made by another recipe: never train on stale files
            if why:
                print(f"data_dir {config.data_dir}: {why}; writing the token files again", file=sys.stderr)
            write_token_files(prepare_data(config), config.data_dir)
        barrier(dist)  # the other processes wait until the files are written
        data = load_token_files(config.data_dir)
    return prepare_data(config) if data is None and needed else data


def check_data_ids(data: Dataset | None, vocab_size: int | None) -> None:
    """Every id of both splits fits the model's vocabulary (checked once, before training)."""
    if vocab_size is not None and data is not None:
        data.train.check_vocab(vocab_size, "the training data")
        data.val.check_vocab(vocab_size, "the validation data")


def check_batch_ids(x: Tensor, vocab_size: int | None, what: str) -> None:
    """The ids of a batch on the CPU fit the vocabulary (on a GPU, a bad id would fail inside a kernel)."""
    if vocab_size is not None and not x.is_floating_point() and x.device.type == "cpu":
        check_ids(x, vocab_size, what)


def autocast_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """bf16 autocast on CUDA by default (dtype "auto"); on the CPU only when asked for (dtype="bfloat16", chapter 08)."""
    want = pick_dtype(device) if config.dtype == "auto" else getattr(torch, config.dtype)
    asked = config.dtype == "bfloat16" and device.type == "cpu"
    return want if want == torch.bfloat16 and (device.type == "cuda" or asked) else None


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext() if dtype is None else torch.autocast(device_type=device.type, dtype=dtype)


def wrap_model(model: nn.Module, config: TrainConfig, device: torch.device, dist: DistInfo) -> nn.Module:
    """What the training step calls: the model, compiled on CUDA, wrapped in DDP under torchrun."""
    compile_it = config.compile if config.compile is not None else device.type == "cuda"
    forward_model: nn.Module = torch.compile(model) if compile_it else model
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        forward_model = DistributedDataParallel(forward_model, device_ids=ids)  # copies process 0's weights
    return forward_model


def gradient_sync(forward_model: nn.Module, dist: DistInfo, last: bool) -> contextlib.AbstractContextManager:
    """Under DDP, gradients are all-reduced only on a step's last micro-batch (``no_sync`` on the others)."""
    if not dist.enabled or last:
        return contextlib.nullcontext()
    return forward_model.no_sync()  # type: ignore[operator]


# ============================================================================ resuming

# What a resumed run must share with the run it continues, unless told to apply changes. The intervals,
# max_iters (beyond what it changes in the schedule), out_dir and the system settings may differ freely.
RESUME_SETTINGS = ("model", "tokenizer", "bpe_vocab_size", "val_fraction", "batch_size", "grad_accum", "lr", "min_lr",
                   "warmup_iters", "decay_iters", "weight_decay", "beta1", "beta2", "grad_clip", "seed", "dtype")


def resume_changes(folder: str | Path, config: TrainConfig) -> list[str]:
    """The settings of ``config`` that differ from those checkpoint ``folder`` was trained with ("name: old -> new")."""
    saved = saved_config(folder)
    old, new = saved.to_dict(), config.to_dict()
    old["decay_iters"], new["decay_iters"] = saved.decay_iters, config.decay_iters
    if saved.tokenizer == "char" and config.tokenizer == "char":
        old["bpe_vocab_size"] = new["bpe_vocab_size"]  # unused by a character tokenizer
    changes = []
    for k in RESUME_SETTINGS:
        if k == "model":  # the vocabulary size is set from the tokenizer, not compared here
            changes += [f"model.{m}: {old[k].get(m)!r} -> {v!r}" for m, v in new[k].items()
                        if m != "vocab_size" and old[k].get(m) != v]
        elif old[k] != new[k]:
            changes.append(f"{k}: {old[k]!r} -> {new[k]!r}")
    return changes


def resume(trainer: Trainer) -> bool:
    """Continue from out_dir's latest checkpoint, if there is one (True); its data, model and settings checked first."""
    c, dist = trainer.config, trainer.dist
    if not c.out_dir:
        raise ValueError("resume=True needs out_dir (where the checkpoints are).")
    pointer = read_pointer(c.out_dir)  # a corrupt or dangling latest.json raises CheckpointError
    if pointer is None:
        if dist.is_main:
            print(f"resume: no checkpoint in {c.out_dir} yet; starting from step 0", file=sys.stderr)
        return False
    differences = check_resume(c.out_dir, trainer.manifest, force=trainer.force)  # other data or model: stop
    if differences and dist.is_main:
        print(f"resume (forced): {'; '.join(differences)}", file=sys.stderr)
    folder = Path(c.out_dir) / pointer.checkpoint
    ckpt = load_checkpoint(trainer.model, trainer.optimizer, folder, generator=trainer.sampler.generator,
                           device=trainer.device)
    changes = resume_changes(folder, c)  # after loading: a damaged checkpoint is reported as such first
    if changes and trainer.config_changes == "refuse":
        raise ValueError(
            f"resume: this config differs from the one {folder.name} was trained with: {'; '.join(changes)}. "
            "To train on with the new values, pass config_changes='apply' (command line: --apply-config-changes); "
            f"to continue the run as it was, use the checkpoint's own values ({folder / CHECKPOINT_CONFIG}); "
            "to start a new run, use another out_dir."
        )
    if changes:  # the optimizer state just loaded carries the old weight decay and betas: replace them
        if dist.is_main:
            print(f"resume: applying the changed settings: {'; '.join(changes)}", file=sys.stderr)
        for group in trainer.optimizer.param_groups:
            group["betas"] = (c.beta1, c.beta2)
        trainer.optimizer.param_groups[0]["weight_decay"] = c.weight_decay  # `param_groups`: decay first, then none
    trainer.history, trainer.step = ckpt.history, ckpt.step
    trainer.checkpoints = pointer.run  # the run goes on: its older checkpoints are still its own
    reseed_after_resume(c.seed, dist, trainer.step)  # the checkpoint holds process 0's random states
    return True


# ============================================================================ a step is all or nothing


class TrainingDiverged(RuntimeError):
    """A step's loss or gradient norm is not finite. The update was not applied: the weights are those of the step before."""

    def __init__(self, step: int, loss: float, grad_norm: float, checkpoint: str | None = None) -> None:
        kept = f" The last checkpoint ({checkpoint}) is untouched." if checkpoint else ""
        super().__init__(
            f"training diverged at step {step}: the loss is {loss:.4g} and the gradient norm {grad_norm:.4g}, so the "
            f"update was not applied (the model keeps the weights of step {step - 1}).{kept} Lower the learning rate "
            "(lr), lengthen the warmup (warmup_iters), or keep gradient clipping on (grad_clip > 0); then start again "
            "or resume from the last checkpoint."
        )
        self.step, self.loss, self.grad_norm = step, loss, grad_norm


def check_finite(trainer: Trainer, loss: Tensor, norm: Tensor) -> None:
    """Never let a NaN or inf into the weights: raise `TrainingDiverged` naming the coming step.

    The norm is of the all-reduced gradients, the same on every process under DDP; the loss is this
    process's own, so only a single process stops on it."""
    if not torch.isfinite(norm) or (not trainer.dist.enabled and not torch.isfinite(loss)):
        raise TrainingDiverged(trainer.step + 1, float(loss), float(norm),
                               trainer.checkpoints[-1] if trainer.checkpoints else None)


@contextlib.contextmanager
def undone_on_error(trainer: Trainer) -> Iterator[None]:
    """A step that fails before its update (Ctrl-C, divergence) leaves no trace: random states, token count, gradients."""
    states, tokens = rng_states(trainer.sampler.generator, cuda=trainer.device.type == "cuda"), trainer.tokens_seen
    try:
        yield
    except BaseException:
        set_rng_states(states, trainer.sampler.generator)
        trainer.tokens_seen = tokens
        trainer.optimizer.zero_grad(set_to_none=True)
        raise


class StepInterrupted(KeyboardInterrupt):
    """Ctrl-C during an optimizer update, raised once the step is complete; ``loss`` is the step's loss."""

    def __init__(self, loss: float) -> None:
        super().__init__(f"interrupted after a complete step (loss {loss})")
        self.loss = loss


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[list[int]]:
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


# ============================================================================ records


class MetricsLog:
    """``metrics.jsonl`` in ``out_dir``, one JSON record per line (nothing without an out_dir, or off process 0)."""

    def __init__(self, out_dir: str | Path | None, dist: DistInfo) -> None:
        self.path = Path(out_dir) / "metrics.jsonl" if out_dir and dist.is_main else None

    def write(self, record: dict[str, Any]) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")


def progress_bar(config: TrainConfig, dist: DistInfo, total: int, initial: int) -> Any:
    """A ``tqdm.auto`` bar on process 0 (disabled by ``progress=False`` or ``COURSE_NO_PROGRESS=1``)."""
    from tqdm.auto import tqdm

    # COURSE_NO_PROGRESS=1 (set when the book's notebooks are executed): a notebook bar is a live widget,
    # and a stored copy would show it frozen at "0%"; the log lines say what happened instead.
    show = config.progress and dist.is_main and os.environ.get("COURSE_NO_PROGRESS") != "1"
    return tqdm(total=total, initial=initial, disable=not show, desc="training", dynamic_ncols=True)


def sized_to_tokenizer(config: TrainConfig, data: Dataset | None) -> TrainConfig:
    """``config`` with the model's vocabulary size set to the tokenizer's (unchanged without data)."""
    vocab = getattr(data.tokenizer, "vocab_size", None) if data is not None else None
    if vocab is None or vocab == config.model.vocab_size:
        return config
    return replace(config, model=replace(config.model, vocab_size=vocab))
