"""Pretraining a GPT: the training loop (chapter 05; chapter 07 fine-tunes and chapter 08 scales with it).

    from course.train import Trainer
    from course.train_config import cpu_preset
    result = Trainer(cpu_preset(out_dir="runs/cpu")).train()

or ``python -m course.train --preset cpu --out-dir runs/cpu`` (also under ``torchrun``).

This is chapter 05's hand-written loop, made reusable. One optimizer step
(`Trainer.train_step`) is nanoGPT's: set the step's learning rate, forward and
backward each micro-batch, clip the gradient norm, AdamW step. `Trainer.train`
repeats it and, every so many steps, logs, evaluates on fixed batches, samples
and saves a checkpoint. What a real run needs around the loop (devices and
processes, DDP, resuming, undoing a step cut short by Ctrl-C, catching a
diverging loss, the progress bar, ``metrics.jsonl``) is `course.train_support`,
one call each here.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from .checkpoint import save_checkpoint
from .distributed import mean_over_processes
from .evaluate import eval_mode
from .model import GPT, GPTConfig
from .run_manifest import make_manifest, read_manifest, write_manifest
from .schedule import lr_at, make_optimizer
from .token_data import BatchSampler, Dataset, fixed_batches
from .train_config import TrainConfig, every
from .train_support import (MetricsLog, StepInterrupted, autocast, autocast_dtype, check_batch_ids, check_data_ids,
                            check_finite, gradient_sync,
                            interrupts_deferred, progress_bar, resume, setup_system, sized_to_tokenizer,
                            training_data, undone_on_error, wrap_model)


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


class Trainer:
    """Trains a `GPT` on a `Dataset` according to a `TrainConfig`.

    The same loop serves other tasks (chapter 07): pass a ``sampler`` (anything
    with ``step_batches(micro_batch, grad_accum, world_size, rank)`` and a
    ``generator`` attribute, whose state is checkpointed), fixed ``val_batches``
    (and optionally ``train_eval_batches``), and a ``loss_fn(model, x, y)``.
    Parameters with ``requires_grad=False`` are not trained (LoRA, frozen bodies).
    ``resume=True`` in the config continues the run in ``out_dir``; a resume with
    other settings is refused unless ``config_changes="apply"``, and one on other
    data or with another model unless ``force=True``.
    """

    def __init__(self, config: TrainConfig, data: Dataset | None = None, model: nn.Module | None = None, *,
                 sampler: Any = None, val_batches: Sequence[tuple[Tensor, Tensor]] | None = None,
                 train_eval_batches: Sequence[tuple[Tensor, Tensor]] | None = None,
                 loss_fn: LossFn = language_model_loss, config_changes: str = "refuse", force: bool = False) -> None:
        if config_changes not in ("refuse", "apply"):
            raise ValueError(f"config_changes must be 'refuse' or 'apply', got {config_changes!r}.")
        if sampler is not None and (val_batches is None or model is None):
            raise ValueError("with a custom sampler, also pass the model and val_batches (fixed evaluation batches).")
        self.config = c = replace(config)  # our own copy: the caller's config is never changed
        self.loss_fn, self.config_changes, self.force = loss_fn, config_changes, force
        self.device, self.dist = setup_system(c)
        self.data = training_data(c, data, self.dist, needed=sampler is None)
        if model is None:  # a new GPT, its vocabulary sized to the tokenizer's
            self.config = c = sized_to_tokenizer(c, self.data)
            model = GPT(c.model)
        elif isinstance(getattr(model, "config", None), GPTConfig):  # the checkpoints' config.json describes this model
            self.config = c = replace(c, model=model.config)
        self.vocab_size: int | None = getattr(getattr(model, "config", None), "vocab_size", None)
        check_data_ids(self.data, self.vocab_size)  # once, here, so that a GPU never sees a bad id
        self.model = model.to(self.device)
        self.autocast_dtype = autocast_dtype(c, self.device)
        self.optimizer = make_optimizer(self.model, c, self.device)
        self._setup_batches(sampler, val_batches, train_eval_batches)
        self.step, self.tokens_seen = 0, 0  # tokens: of every process, since this trainer was made
        self.history: dict[str, list] = {k: [] for k in ("step", "loss", "lr", "eval_step", "val_loss", "train_loss")}
        self.checkpoints: list[str] = []  # this run's checkpoint folders in out_dir, oldest first: the only ones it deletes
        self.log = MetricsLog(c.out_dir, self.dist)
        self.manifest = make_manifest(c, self.data, self.model)  # run.json: what this run started with
        resumed = c.resume and resume(self)
        if c.out_dir and self.dist.is_main and not (resumed and read_manifest(c.out_dir)):
            write_manifest(c.out_dir, self.manifest)
        self.forward_model = wrap_model(self.model, c, self.device, self.dist)  # what the step calls

    def _setup_batches(self, sampler: Any, val_batches: Any, train_eval_batches: Any) -> None:
        """Random training windows, and fixed evaluation batches (seeds: seed, seed + 1, seed + 2 on every process)."""
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
            check_batch_ids(x, self.vocab_size, "an evaluation batch")

    # -------------------------------------------------------------- one step

    def train_step(self) -> float:
        """One optimizer step (all micro-batches); returns the mean loss over the global batch.

        All or nothing: interrupted (Ctrl-C) before the update, the step is undone
        (random states and gradients as before it, so a checkpoint saved now resumes
        exactly); a Ctrl-C during the update is held back until the step is complete,
        then raised as `StepInterrupted` (a KeyboardInterrupt carrying the loss).
        """
        c = self.config
        with undone_on_error(self):
            lr = lr_at(self.step, c)  # warmup, then cosine decay
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            batches = self.sampler.step_batches(c.batch_size, c.grad_accum, self.dist.world_size, self.dist.rank)
            loss_sum = torch.zeros((), device=self.device)
            for i, (x, y) in enumerate(batches):  # gradient accumulation: the gradients add up over micro-batches
                if self.check_batches:
                    check_batch_ids(x, self.vocab_size, "a training batch of the sampler")
                x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
                with gradient_sync(self.forward_model, self.dist, last=i == len(batches) - 1), \
                        autocast(self.device, self.autocast_dtype):
                    loss = self.loss_fn(self.forward_model, x, y)
                    (loss / c.grad_accum).backward()
                loss_sum += loss.detach()
                self.tokens_seen += x.numel() * self.dist.world_size
            if c.grad_clip > 0:  # scale the whole gradient down when its norm exceeds grad_clip
                norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip)
            else:
                norm = torch.nn.utils.get_total_norm([p.grad for p in self.model.parameters() if p.grad is not None])
            check_finite(self, loss_sum / c.grad_accum, norm)  # a NaN or inf never reaches the weights
        with interrupts_deferred() as interrupted:  # half an update would leave weights and optimizer state out of step
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
        mean = mean_over_processes(loss_sum / c.grad_accum, self.dist)
        if interrupted:
            raise StepInterrupted(float(mean))
        return float(mean)

    # -------------------------------------------------------------- evaluating, sampling, saving

    @torch.no_grad()
    def evaluate(self, batches: Sequence[tuple[Tensor, Tensor]] | None = None) -> float:
        """Mean loss over fixed batches (validation by default), with dropout off."""
        batches = self.val_batches if batches is None else batches
        if not batches:
            raise ValueError("no batches to evaluate on: pass at least one (x, y) batch.")
        total = 0.0
        with eval_mode(self.model):
            for x, y in batches:
                with autocast(self.device, self.autocast_dtype):
                    total += float(self.loss_fn(self.model, x.to(self.device), y.to(self.device)))
        return total / len(batches)

    def sample(self, prompt: str = "\n", tokens: int | None = None, seed: int = 0) -> str:
        """A sample from the current model through `course.sampling.generate` (temperature 1, seeded), decoded to text."""
        from .sampling import generate

        if self.data is None:
            raise ValueError("this trainer has no tokenizer (it was given a custom sampler): decode samples yourself.")
        tok = self.data.tokenizer
        ids = torch.tensor([tok.encode(prompt)], dtype=torch.long)
        out = generate(self.model, ids, tokens or self.config.sample_tokens, generator=torch.Generator(self.device).manual_seed(seed))
        return tok.decode(out[0, ids.shape[1]:].tolist())

    def save(self) -> Path | None:
        """A checkpoint of everything needed to resume (process 0, when out_dir is set); older ones rotate out."""
        c = self.config
        if not c.out_dir or not self.dist.is_main:
            return None
        return save_checkpoint(c.out_dir, self.step, self.model, self.optimizer, self.sampler, c,
                               self.data.tokenizer if self.data is not None else None, self.history,
                               c.keep_checkpoints, run=self.checkpoints)

    # -------------------------------------------------------------- the loop

    def train(self, max_iters: int | None = None, *, on_eval: Callable[["Trainer", float], None] | None = None) -> TrainResult:
        """Train until step ``max_iters`` (default: the config's), evaluating and checkpointing on the way.

        Every ``*_interval`` steps (0: never) it logs, evaluates, samples and saves;
        the last step is always logged and evaluated, and saved when ``out_dir`` is set.
        Ctrl-C stops after saving a checkpoint (``result.interrupted``).
        """
        c = self.config
        end = c.max_iters if max_iters is None else max_iters
        self.model.train()
        bar = progress_bar(c, self.dist, end, self.step)
        start, start_step, start_tokens = time.perf_counter(), self.step, self.tokens_seen
        interrupted = False
        # at step 0 a new run in metrics.jsonl (the file may hold older ones), later a continuation
        self.log.write({"event": "start", "step": self.step, "max_iters": end})
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
                    self.log.write({"step": step, "sample": self.sample()})
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
        return TrainResult(history=self.history, final_val_loss=val_losses[-1] if val_losses else float("nan"),
                           seconds=seconds, tokens_per_second=(self.tokens_seen - start_tokens) / max(seconds, 1e-9),
                           steps=self.step - start_step, interrupted=interrupted, checkpoint=checkpoint)

    def _record_loss(self, step: int, loss: float, elapsed: float, tokens: int, bar: Any) -> None:
        tps = tokens / max(elapsed, 1e-9)
        lr = lr_at(step - 1, self.config)
        for k, v in (("step", step), ("loss", loss), ("lr", lr)):
            self.history[k].append(v)
        self.log.write({"step": step, "loss": round(loss, 5), "lr": lr, "tokens_per_s": round(tps), "time_s": round(elapsed, 2)})
        bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.1e}", tok_s=f"{tps:,.0f}", refresh=False)

    def _record_evaluation(self, step: int, on_eval: Callable[["Trainer", float], None] | None) -> None:
        val = self.evaluate()
        train_eval = self.evaluate(self.train_eval_batches) if self.train_eval_batches else float("nan")
        for k, v in (("eval_step", step), ("val_loss", val), ("train_loss", train_eval)):
            self.history[k].append(v)
        self.log.write({"step": step, "val_loss": round(val, 5), "train_loss": round(train_eval, 5)})
        if on_eval is not None:
            on_eval(self, val)


if __name__ == "__main__":  # python -m course.train: the command line lives in course.train_cli
    from course.train_cli import main

    sys.exit(main())
