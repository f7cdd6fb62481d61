"""The command line of the trainer (chapter 05; chapter 08 runs it under ``torchrun``).

    python -m course.train --preset cpu --out-dir runs/cpu
    python -m course.train --preset gpu --out-dir runs/gpu --max-iters 5000
    torchrun --nproc_per_node=2 -m course.train --preset cpu --device cpu

Every `TrainConfig` field is an option (``--max-iters``), every `GPTConfig` field
one with ``--model-`` in front (``--model-n-layer``); a preset gives the rest.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any, Callable, Sequence

from .model import GPTConfig
from .train import Trainer
from .train_config import PRESETS, TrainConfig


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m course.train", description="Pretrain a small GPT on Tiny Shakespeare.")
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    p.add_argument("--apply-config-changes", action="store_true",
                   help="with --resume true: train on with settings that differ from the checkpoint's (listed); "
                        "without it such a resume stops and lists them")
    p.add_argument("--force", action="store_true",
                   help="with --resume true: continue even if the data or the model differ from those the run "
                        "started with (out_dir/run.json); without it such a resume stops and says what differs")
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
    """The `TrainConfig` of a command line: the preset, then every option given."""
    args = vars(_parser().parse_args(argv))
    args.pop("apply_config_changes")  # not settings of the run: `main` passes them to the Trainer
    args.pop("force")
    preset = PRESETS[args.pop("preset")]()
    model_over = {k[len("model_"):]: v for k, v in args.items() if k.startswith("model_") and v is not None}
    over = {k: v for k, v in args.items() if not k.startswith("model_") and v is not None}
    d = preset.to_dict()
    d.update(over)
    d["model"] = {**d["model"], **model_over}
    return TrainConfig.from_dict(d)


def main(argv: Sequence[str] | None = None) -> int:
    """Train as the command line says; the exit status is 130 after Ctrl-C (a checkpoint was saved), else 0."""
    import torch.distributed as dist

    config = config_from_args(argv)
    args = _parser().parse_args(argv)
    trainer = Trainer(config, config_changes="apply" if args.apply_config_changes else "refuse", force=args.force)
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
    import sys

    sys.exit(main())
