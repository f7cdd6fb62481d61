"""Pretraining a GPT: the training loop (chapter 05; chapter 07 fine-tunes and chapter 08 scales with it).

    from course.train import Trainer, cpu_preset
    result = Trainer(cpu_preset(out_dir="runs/cpu")).train()

or from a shell (also under ``torchrun --nproc_per_node=N`` for data parallelism):

    python -m course.train --preset cpu --out-dir runs/cpu
    python -m course.train --preset gpu --out-dir runs/gpu --max-iters 5000

This module is the loop; each other concern has its own module (all their names
can still be imported from here):

* `course.train_config`: `TrainConfig`, the presets (overrides of one base), the
  rule of the ``*_interval`` settings (0 = off during the run).
* `course.token_data`: token ids in memory or memory-mapped ``.bin`` files, random
  training windows (`BatchSampler`), fixed evaluation batches.
* `course.schedule`: warmup + cosine learning rate (`lr_at`), AdamW with weight
  decay on matrices only (`param_groups`).
* `course.distributed`: ``torchrun``'s process group and per-process seeds.
* `course.checkpoint`: atomic checkpoints and exact resumption.
* `course.run_manifest`: ``run.json``, what a run in ``out_dir`` started with
  (config, a fingerprint of the data, the model), checked on every resume.
* `course.train_cli`: the command line (``python -m course.train`` runs its ``main``).

One optimizer step (`Trainer.train_step`) is nanoGPT's: set the step's learning
rate, forward and backward each micro-batch (DDP all-reduces on the last one),
clip the gradient norm, AdamW step. Around it, `Trainer.train` logs, evaluates
on fixed batches, samples and checkpoints. On CUDA: bf16 autocast,
``torch.compile``, fused AdamW and TF32; plain float32 elsewhere. ``resume=True``
continues exactly where a run stopped (on CPU the losses equal those of an
uninterrupted run); Ctrl-C saves a checkpoint before stopping, undoing a step it
cuts short first. Progress: a ``tqdm.auto`` bar (none when ``COURSE_NO_PROGRESS=1``,
as in the book's executed copies), and a JSONL log of every metric
(``metrics.jsonl`` in ``out_dir``). The `Trainer` never changes the config it is
given: ``trainer.config`` is its own copy (with the tokenizer's vocabulary size).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
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
    saved_config,
    set_rng_states,
)
from .device import pick_device, pick_dtype, seed_everything
from .evaluate import eval_mode
from .distributed import DistInfo, barrier, init_distributed, mean_over_processes, rank_seed, reseed_after_resume  # noqa: F401
from .model import GPT, GPTConfig  # noqa: F401
from .run_manifest import check_resume, make_manifest, read_manifest, write_manifest
from .schedule import lr_at, make_optimizer, param_groups  # noqa: F401
from .token_data import (  # noqa: F401
    BatchSampler,
    Dataset,
    TokenData,
    check_ids,
    fixed_batches,
    load_token_files,
    prepare_data,
    stale_token_files,
    token_dtype,
    write_token_files,
)
from .train_config import PRESETS, TrainConfig, cpu_preset, every, gpu_preset, nanogpt_cpu_config, preset  # noqa: F401


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
        config_changes: str = "refuse",
        force: bool = False,
    ) -> None:
        if config_changes not in ("refuse", "apply"):
            raise ValueError(f"config_changes must be 'refuse' or 'apply', got {config_changes!r}.")
        self.config_changes = config_changes
        self.force = force  # resume even on other data or with another model (`course.run_manifest`)
        if sampler is not None and (val_batches is None or model is None):
            raise ValueError("with a custom sampler, also pass the model and val_batches (fixed evaluation batches).")
        self.config = replace(config)  # our own copy: the caller's config is never changed
        self.loss_fn = loss_fn
        self._setup_system()
        self.data = self._setup_data(data, needed=sampler is None)
        self.model = self._setup_model(model)
        self.optimizer = make_optimizer(self.model, self.config, self.device)
        self._setup_batches(sampler, val_batches, train_eval_batches)
        self.step = 0
        self.tokens_seen = 0  # input tokens of every process, since this trainer was made
        self.history: dict[str, list] = {k: [] for k in ("step", "loss", "lr", "eval_step", "val_loss", "train_loss")}
        self.checkpoints: list[str] = []  # this run's checkpoint folders in out_dir, oldest first: the only ones it deletes
        self.manifest = make_manifest(self.config, self.data, self.model)
        resumed = self.config.resume and self._resume()
        if self.config.out_dir and self.dist.is_main and not (resumed and read_manifest(self.config.out_dir)):
            write_manifest(self.config.out_dir, self.manifest)  # a new run (or an older run's folder): run.json
        self.forward_model = self._wrap_model()

    # -------------------------------------------------------------- set-up, in order

    def _setup_system(self) -> None:
        """Device, CPU threads, the process group (under torchrun), seeds (process r: seed + r)."""
        c = self.config
        self.device = pick_device(c.device)
        if c.threads:
            torch.set_num_threads(c.threads)
        self.dist = init_distributed(self.device.type)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(self.device)
        seed_everything(rank_seed(c.seed, self.dist.rank))

    def _setup_data(self, data: Dataset | None, needed: bool) -> Dataset | None:
        """The given dataset, else token files in ``data_dir`` (written once, by process 0), else the corpus if ``needed``."""
        c = self.config
        if data is None and c.data_dir:
            why = stale_token_files(c, c.data_dir) if self.dist.is_main else None
            if why is not None:  # none yet (""), or made by another recipe: never train on stale files
                if why:
                    print(f"data_dir {c.data_dir}: {why}; writing the token files again", file=sys.stderr)
                write_token_files(prepare_data(c), c.data_dir)
            barrier(self.dist)  # the other processes wait until the files are written
            data = load_token_files(c.data_dir)
        return prepare_data(c) if data is None and needed else data

    def _setup_model(self, model: nn.Module | None) -> nn.Module:
        """The given model, or a new `GPT` sized to the tokenizer's vocabulary; on the device; ids checked against it."""
        c = self.config
        vocab = getattr(self.data.tokenizer, "vocab_size", None) if self.data is not None else None
        if model is None:
            if vocab is not None and vocab != c.model.vocab_size:
                self.config = c = replace(c, model=replace(c.model, vocab_size=vocab))
            model = GPT(c.model)
        self.vocab_size: int | None = getattr(getattr(model, "config", None), "vocab_size", None)
        if self.vocab_size is not None and self.data is not None:  # once here, so that a GPU never sees a bad id
            self.data.train.check_vocab(self.vocab_size, "the training data")
            self.data.val.check_vocab(self.vocab_size, "the validation data")
        model = model.to(self.device)
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        want = pick_dtype(self.device) if c.dtype == "auto" else getattr(torch, c.dtype)
        # bf16 autocast: on CUDA by default ("auto"); on the CPU only when asked for (dtype="bfloat16", chapter 08)
        asked = c.dtype == "bfloat16" and self.device.type == "cpu"
        self.autocast_dtype = want if want == torch.bfloat16 and (self.device.type == "cuda" or asked) else None
        return model

    def _setup_batches(self, sampler: Any, val_batches: Any, train_eval_batches: Any) -> None:
        """The training sampler and the fixed evaluation batches (seeds: seed, seed + 1, seed + 2 on every process)."""
        c = self.config
        self.check_batches = sampler is not None and self.vocab_size is not None  # a custom sampler's ids: checked per batch
        if sampler is None:
            block = self.model.config.block_size
            sampler = BatchSampler(self.data.train, block, c.seed, what="the training split")
            val_batches = val_batches or fixed_batches(self.data.val, block, c.batch_size, c.eval_iters, c.seed + 1,
                                                       what="the validation split")
            train_eval_batches = train_eval_batches or fixed_batches(self.data.train, block, c.batch_size, c.eval_iters,
                                                                     c.seed + 2, what="the training split")
        self.sampler = sampler
        self.val_batches = list(val_batches)
        if not self.val_batches:  # found now, not after the whole run when the last evaluation divides by zero
            raise ValueError("val_batches is empty: pass at least one (x, y) batch to evaluate on "
                             "(the trainer evaluates at the end of every run).")
        self.train_eval_batches = list(train_eval_batches) if train_eval_batches else self.val_batches[:0]
        for x, _ in self.val_batches + self.train_eval_batches:
            self._check_ids(x, "an evaluation batch")

    def _resume(self) -> bool:
        """Continue from out_dir's latest checkpoint, if there is one (True); its data and model checked first."""
        c = self.config
        if not c.out_dir:
            raise ValueError("resume=True needs out_dir (where the checkpoints are).")
        pointer = read_pointer(c.out_dir)  # a corrupt or dangling latest.json raises CheckpointError
        if pointer is None:
            if self.dist.is_main:
                print(f"resume: no checkpoint in {c.out_dir} yet; starting from step 0", file=sys.stderr)
            return False
        differences = check_resume(c.out_dir, self.manifest, force=self.force)  # other data or model: stop
        if differences and self.dist.is_main:
            print(f"resume (forced): {'; '.join(differences)}", file=sys.stderr)
        folder = Path(c.out_dir) / pointer.checkpoint
        ckpt = load_checkpoint(self.model, self.optimizer, folder, generator=self.sampler.generator, device=self.device)
        changes = resume_changes(folder, c)  # after loading: a damaged checkpoint is reported as such first
        if changes and self.config_changes == "refuse":
            raise ValueError(
                f"resume: this config differs from the one {folder.name} was trained with: {'; '.join(changes)}. "
                "To train on with the new values, pass config_changes='apply' (command line: --apply-config-changes); "
                f"to continue the run as it was, use the checkpoint's own values ({folder / CHECKPOINT_CONFIG}); "
                "to start a new run, use another out_dir."
            )
        if changes:  # the optimizer state just loaded carries the old weight decay and betas: replace them
            if self.dist.is_main:
                print(f"resume: applying the changed settings: {'; '.join(changes)}", file=sys.stderr)
            for group in self.optimizer.param_groups:
                group["betas"] = (c.beta1, c.beta2)
            self.optimizer.param_groups[0]["weight_decay"] = c.weight_decay  # `param_groups`: decay first, then none
        self.history, self.step = ckpt.history, ckpt.step
        self.checkpoints = pointer.run  # the run goes on: its older checkpoints are still its own
        reseed_after_resume(c.seed, self.dist, self.step)  # the checkpoint holds process 0's random states
        return True

    def _wrap_model(self) -> nn.Module:
        """What the training step calls: the model, compiled on CUDA, wrapped in DDP under torchrun."""
        c = self.config
        compile_it = c.compile if c.compile is not None else self.device.type == "cuda"
        forward_model: nn.Module = torch.compile(self.model) if compile_it else self.model
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            forward_model = DistributedDataParallel(forward_model, device_ids=ids)  # copies process 0's weights
        return forward_model

    # -------------------------------------------------------------- pieces

    def _check_ids(self, x: Tensor, what: str) -> None:
        if self.vocab_size is not None and not x.is_floating_point() and x.device.type == "cpu":
            check_ids(x, self.vocab_size, what)

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    @torch.no_grad()
    def evaluate(self, batches: Sequence[tuple[Tensor, Tensor]] | None = None) -> float:
        """Mean loss over fixed batches (validation by default), with dropout off."""
        batches = self.val_batches if batches is None else batches
        if not batches:
            raise ValueError("no batches to evaluate on: pass at least one (x, y) batch.")
        total = 0.0
        with eval_mode(self.model):
            for x, y in batches:
                with self._autocast():
                    loss = self.loss_fn(self.model, x.to(self.device), y.to(self.device))
                total += float(loss)
        return total / len(batches)

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
        """A sample from the current model through `course.sampling.generate` (temperature 1, seeded), decoded to text."""
        from .sampling import generate

        if self.data is None:
            raise ValueError("this trainer has no tokenizer (it was given a custom sampler): decode samples yourself.")
        tok = self.data.tokenizer
        ids = torch.tensor([tok.encode(prompt)], dtype=torch.long)
        out = generate(self.model, ids, tokens or self.config.sample_tokens, generator=torch.Generator(self.device).manual_seed(seed))
        return tok.decode(out[0, ids.shape[1]:].tolist())

    # -------------------------------------------------------------- one step, and the loop

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
                if self.check_batches:
                    self._check_ids(x, "a training batch of the sampler")
                x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
                sync = not self.dist.enabled or i == len(batches) - 1  # DDP: all-reduce only on the last micro-batch
                ctx = contextlib.nullcontext() if sync else self.forward_model.no_sync()  # type: ignore[operator]
                with ctx, self._autocast():
                    loss = self.loss_fn(self.forward_model, x, y)
                    (loss / c.grad_accum).backward()
                loss_sum += loss.detach()
                self.tokens_seen += x.numel() * self.dist.world_size
            if c.grad_clip > 0:
                norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip)
            else:
                norm = torch.nn.utils.get_total_norm([p.grad for p in self.model.parameters() if p.grad is not None])
            # Never let a NaN or inf into the weights. The norm is of the all-reduced gradients, the same on every
            # process under DDP; the loss is this process's own, so only a single process stops on it.
            if not torch.isfinite(norm) or (not self.dist.enabled and not torch.isfinite(loss_sum)):
                raise TrainingDiverged(self.step + 1, float(loss_sum / c.grad_accum), float(norm),
                                       self.checkpoints[-1] if self.checkpoints else None)
        except BaseException:
            set_rng_states(before[0], self.sampler.generator)
            self.tokens_seen = before[1]
            self.optimizer.zero_grad(set_to_none=True)
            raise
        with _interrupts_deferred() as interrupted:  # half an update would leave weights and optimizer state out of step
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
        mean = mean_over_processes(loss_sum / c.grad_accum, self.dist)
        if interrupted:
            raise StepInterrupted(float(mean))
        return float(mean)

    def train(self, max_iters: int | None = None, *, on_eval: Callable[["Trainer", float], None] | None = None) -> TrainResult:
        """Train until step ``max_iters`` (default: the config's), evaluating and checkpointing on the way.

        Every ``*_interval`` steps (0: never) it logs, evaluates, samples and saves;
        the last step is always logged and evaluated, and saved when ``out_dir`` is set.
        """
        from tqdm.auto import tqdm

        c = self.config
        end = c.max_iters if max_iters is None else max_iters
        self.model.train()
        # COURSE_NO_PROGRESS=1 (set when the book's notebooks are executed): a notebook bar is a live widget,
        # and a stored copy would show it frozen at "0%"; the log lines say what happened instead.
        show = c.progress and self.dist.is_main and os.environ.get("COURSE_NO_PROGRESS") != "1"
        bar = tqdm(total=end, initial=self.step, disable=not show, desc="training", dynamic_ncols=True)
        start, start_step, start_tokens = time.perf_counter(), self.step, self.tokens_seen
        interrupted, checkpoint = False, None
        # marks where this part of the run starts in metrics.jsonl: at step 0 a new run (the file may hold older
        # ones), later a continuation (course.plots.training.read_metrics reads the newest run, resumes included)
        self._log({"event": "start", "step": self.step, "max_iters": end})
        try:
            while self.step < end:
                stop = None
                try:
                    loss = self.train_step()
                except StepInterrupted as err:  # Ctrl-C during the update: record the complete step, then stop
                    loss, stop = err.loss, err
                step, last = self.step, self.step == end
                if every(step, c.log_interval) or last:
                    self._record_loss(step, loss, time.perf_counter() - start, self.tokens_seen - start_tokens, bar)
                bar.update(1)
                if every(step, c.eval_interval) or last:
                    self._record_evaluation(step, on_eval)
                if every(step, c.sample_interval) and self.dist.is_main:
                    self._log({"step": step, "sample": self.sample()})
                if stop is not None:
                    raise stop
                if every(step, c.checkpoint_interval) and not last:
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
        val_losses = self.history["val_loss"]
        return TrainResult(
            history=self.history,
            final_val_loss=val_losses[-1] if val_losses else float("nan"),
            seconds=seconds,
            tokens_per_second=(self.tokens_seen - start_tokens) / max(seconds, 1e-9),
            steps=self.step - start_step,
            interrupted=interrupted,
            checkpoint=checkpoint,
        )

    def _record_loss(self, step: int, loss: float, elapsed: float, tokens: int, bar: Any) -> None:
        tps = tokens / max(elapsed, 1e-9)
        lr = lr_at(step - 1, self.config)
        for k, v in (("step", step), ("loss", loss), ("lr", lr)):
            self.history[k].append(v)
        self._log({"step": step, "loss": round(loss, 5), "lr": lr, "tokens_per_s": round(tps), "time_s": round(elapsed, 2)})
        bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.1e}", tok_s=f"{tps:,.0f}", refresh=False)

    def _record_evaluation(self, step: int, on_eval: Callable[["Trainer", float], None] | None) -> None:
        val = self.evaluate()
        train_eval = self.evaluate(self.train_eval_batches) if self.train_eval_batches else float("nan")
        for k, v in (("eval_step", step), ("val_loss", val), ("train_loss", train_eval)):
            self.history[k].append(v)
        self._log({"step": step, "val_loss": round(val, 5), "train_loss": round(train_eval, 5)})
        if on_eval is not None:
            on_eval(self, val)


if __name__ == "__main__":  # python -m course.train: the command line lives in course.train_cli
    from course.train_cli import main

    sys.exit(main())
