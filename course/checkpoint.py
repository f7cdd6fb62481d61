"""Checkpoints: saving a training run and resuming it exactly (chapter 05).

A run's ``out_dir`` holds one folder per checkpoint and a pointer to the newest::

    runs/cpu/
        latest.json      {"checkpoint": "ckpt_0002500", "step": 2500, "run": ["ckpt_0002250", "ckpt_0002500"]}
        ckpt_0002250/
        ckpt_0002500/
            model.safetensors   the weights (plain tensors: loading runs no code)
            state.pt            optimizer state, step, history, RNG states (loaded with weights_only=True)
            config.json         the TrainConfig
            tokenizer.json      the tokenizer, when the run has one

Four rules keep it safe:

* **Atomic writes.** Every file and folder is written under a unique temporary
  name (`tempfile`) in its target folder and then renamed into place, so a crash
  never leaves a half-written file under a real name and two writers never share
  a temporary name.
* **The pointer never dangles.** ``latest.json`` moves to a folder only once the
  folder is complete, and a folder is removed only after the pointer has moved
  away from it. Saving a step again writes a new folder (under a new unique name
  when ``ckpt_<step>`` exists), moves the pointer, and only then removes the old one.
* **A run deletes only its own checkpoints.** ``latest.json`` lists the run's
  folders (``"run"``, carried on when a run resumes); of these, ones from earlier
  steps beyond the newest ``keep`` are deleted. The folder just written, newer
  steps and another run's folders are never touched.
* **Damage is loud.** A corrupt or dangling pointer, or a damaged file, raises
  `CheckpointError` saying what to do: resuming never silently restarts from step 0.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

WEIGHTS = "model.safetensors"
STATE = "state.pt"
CONFIG = "config.json"
TOKENIZER = "tokenizer.json"
LATEST = "latest.json"
_NAME = re.compile(r"ckpt_(\d+)(\.\w+)?")  # ckpt_0000250, or ckpt_0000250.k2x9_a when that step was saved again


class CheckpointError(RuntimeError):
    """A checkpoint, or the ``latest.json`` pointing at it, cannot be used; the message says what to do."""


# ============================================================================ atomic writes


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """``write(tmp)`` to a file in a unique temporary folder next to ``path``, then rename it to ``path`` (atomic).

    (A temporary folder rather than `tempfile.mkstemp`: the file gets the usual permissions, not 0600.)
    """
    path = Path(path)
    folder = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        write(folder / path.name)
        os.replace(folder / path.name, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


# ============================================================================ RNG states


def rng_states(generator: torch.Generator, cuda: bool | None = None) -> dict[str, torch.Tensor]:
    """Every random state a training step draws from: PyTorch's (CPU, and CUDA if ``cuda``) and the sampler's ``generator``."""
    states = {"torch": torch.get_rng_state(), "sampler": generator.get_state()}
    if torch.cuda.is_available() if cuda is None else cuda:
        states["cuda"] = torch.cuda.get_rng_state()
    return states


def set_rng_states(states: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> None:
    torch.set_rng_state(states["torch"])
    if generator is not None:
        generator.set_state(states["sampler"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state(states["cuda"])


# ============================================================================ the pointer


@dataclass
class Pointer:
    """What ``latest.json`` says: the newest checkpoint folder, its step, and the run's folders (oldest first)."""

    checkpoint: str
    step: int
    run: list[str]


def step_of(name: str) -> int:
    """The step of a checkpoint folder's name: 250 for ``ckpt_0000250`` and ``ckpt_0000250.k2x9_a``."""
    match = _NAME.fullmatch(name)
    if match is None:
        raise ValueError(f"{name!r} is not a checkpoint folder name (ckpt_<step>).")
    return int(match.group(1))


def complete_checkpoints(out_dir: str | Path) -> list[str]:
    """The complete checkpoint folders in ``out_dir``, oldest step first (the pointer may name any of them)."""
    out = Path(out_dir)
    names = [p.name for p in out.glob("ckpt_*") if _NAME.fullmatch(p.name) and not _missing(p, (WEIGHTS, STATE, CONFIG))]
    return sorted(names, key=lambda n: (step_of(n), n))


def _missing(folder: Path, names: tuple[str, ...]) -> list[str]:
    return [n for n in names if not (folder / n).is_file()]


def _what_to_do(out: Path, damaged: str | None = None) -> str:
    folders = [n for n in complete_checkpoints(out) if n != damaged]
    if folders:
        fix = (f"To resume from a complete checkpoint (here: {', '.join(folders[-5:])}), point {LATEST} at it: "
               f"course.checkpoint.point_latest({str(out)!r}, {folders[-1]!r}); ")
    else:
        fix = f"{out} holds no complete checkpoint folder; "
    return fix + f"to start again from step 0, delete {out / LATEST} or use another out_dir."


def read_pointer(out_dir: str | Path) -> Pointer | None:
    """``out_dir``'s ``latest.json``, checked: None when there is none, `CheckpointError` when corrupt or dangling."""
    out = Path(out_dir)
    file = out / LATEST
    if not file.is_file():
        return None
    try:
        d = json.loads(file.read_text(encoding="utf-8"))
        pointer = Pointer(d["checkpoint"], int(d["step"]), list(d.get("run", [d["checkpoint"]])))
        for name in (pointer.checkpoint, *pointer.run):
            step_of(name)  # a folder name in out_dir, nothing else
    except (ValueError, KeyError, TypeError, AttributeError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise CheckpointError(f"{file} is corrupt ({type(err).__name__}: {err}). " + _what_to_do(out)) from None
    folder = out / pointer.checkpoint
    missing = _missing(folder, (WEIGHTS, STATE, CONFIG))
    if missing:
        state = "missing" if not folder.is_dir() else f"incomplete (no {', '.join(missing)})"
        raise CheckpointError(f"{file} points at {pointer.checkpoint}, which is {state}. " + _what_to_do(out))
    return pointer


def _write_pointer(out: Path, pointer: Pointer) -> None:
    atomic_write_text(out / LATEST, json.dumps({"checkpoint": pointer.checkpoint, "step": pointer.step, "run": pointer.run}))


def point_latest(out_dir: str | Path, checkpoint: str) -> Path:
    """Point ``latest.json`` at the complete checkpoint folder ``checkpoint`` (its name in ``out_dir``)."""
    out = Path(out_dir)
    name = Path(checkpoint).name
    missing = _missing(out / name, (WEIGHTS, STATE, CONFIG))
    if missing:
        raise CheckpointError(f"{out / name} is not a complete checkpoint folder (no {', '.join(missing)}).")
    _write_pointer(out, Pointer(name, step_of(name), [name]))
    return out / name


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The folder ``latest.json`` points at; None when there is no pointer yet; `CheckpointError` when it is broken."""
    pointer = read_pointer(out_dir)
    return None if pointer is None else Path(out_dir) / pointer.checkpoint


# ============================================================================ saving


def _rename_into_place(tmp: Path, final: Path) -> Path:
    """Rename the finished folder ``tmp`` to ``final``, or to a new unique name if ``final`` is taken."""
    if not os.path.lexists(final):
        try:
            os.rename(tmp, final)
            return final
        except OSError:  # another writer took the name meanwhile
            pass
    unique = final.with_name(tmp.name.lstrip("."))  # ckpt_0000250.k2x9_a: unique, from tempfile
    os.rename(tmp, unique)
    return unique


def save_checkpoint(
    out_dir: str | Path, step: int, model: nn.Module, optimizer: torch.optim.Optimizer, sampler: Any,
    config: Any, tokenizer: Any, history: dict[str, list], keep: int = 2, *, run: list[str] | None = None,
) -> Path:
    """Write checkpoint ``step`` as a complete folder, point ``latest.json`` at it, then delete old ones.

    ``run`` names the folders this run saved before, oldest first (the `Trainer`
    keeps this list, and takes it over from ``latest.json`` when it resumes); it is
    updated in place. Of these, an earlier save of the same step and all but the
    newest ``keep - 1`` of the earlier steps are deleted (``keep=0``: none).
    Without ``run`` nothing is deleted. ``sampler`` is anything with a
    ``generator``; ``config`` anything with ``to_dict()``.
    """
    from safetensors.torch import save_model

    bad = [name for name, t in model.state_dict().items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:  # a diverged model must not rotate the good checkpoints away
        raise CheckpointError(f"refusing to save step {step}: {len(bad)} weight tensor(s) hold NaN or inf "
                              f"(e.g. {bad[0]}). The checkpoints already in {out_dir} are untouched; resume from the "
                              "last one with a lower learning rate.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".ckpt_{step:07d}.", dir=out))
    try:
        save_model(model, str(tmp / WEIGHTS))  # handles the tied head/embedding
        state = {"step": step, "optimizer": optimizer.state_dict(), "rng": rng_states(sampler.generator), "history": history}
        torch.save(state, tmp / STATE)
        (tmp / CONFIG).write_text(json.dumps(config.to_dict(), indent=2))
        if tokenizer is not None and hasattr(tokenizer, "save"):
            tokenizer.save(tmp / TOKENIZER)
        final = _rename_into_place(tmp, out / f"ckpt_{step:07d}")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    earlier = [n for n in run or [] if n != final.name]
    older = [n for n in earlier if step_of(n) < step]
    drop = [n for n in earlier if step_of(n) == step] + (older[: max(0, len(older) - keep + 1)] if keep > 0 else [])
    kept = [n for n in earlier if n not in drop] + [final.name]
    _write_pointer(out, Pointer(final.name, step, kept))
    if run is not None:
        run[:] = kept
        for name in drop:  # only now: the pointer has moved away from them
            shutil.rmtree(out / name, ignore_errors=True)
    return final


# ============================================================================ loading


@dataclass
class Checkpoint:
    """What `load_checkpoint` restored besides the model, optimizer and RNG states."""

    step: int
    history: dict[str, list]
    folder: Path


def _checkpoint_folder(path: str | Path, needs: tuple[str, ...]) -> Path:
    """A checkpoint folder, or the one an out_dir's ``latest.json`` points at."""
    folder = Path(path)
    if (folder / LATEST).is_file():
        folder = folder / read_pointer(folder).checkpoint  # type: ignore[union-attr]
    missing = _missing(folder, needs)
    if missing:
        raise FileNotFoundError(f"{folder} is not a checkpoint folder: {missing[0]} is missing.")
    return folder


def _damaged(file: Path, err: BaseException) -> CheckpointError:
    out = file.parent.parent
    where = _what_to_do(out, file.parent.name) if (out / LATEST).is_file() else "Use another checkpoint folder, or train again."
    return CheckpointError(f"{file} cannot be read ({type(err).__name__}: {err}): the checkpoint is damaged "
                           f"(a truncated or partly written file). " + where)


def _load_weights(model: nn.Module, file: Path, device: str | torch.device) -> None:
    from safetensors import SafetensorError
    from safetensors.torch import load_model as load_safetensors

    try:
        _check_architecture(model, file)
        load_safetensors(model, str(file), device=str(device))  # strict: a different architecture still raises
    except (SafetensorError, OSError) as err:
        raise _damaged(file, err) from None


def _check_architecture(model: nn.Module, file: Path) -> None:
    """A clear error when the file's tensors are not the model's (names and shapes), before PyTorch's long one."""
    from safetensors import safe_open

    with safe_open(str(file), framework="pt") as f:
        stored = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
    wanted = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    shared = [n for n in wanted if n in stored and stored[n] != wanted[n]]
    # the tied output head is saved once (safetensors drops the duplicate): a name missing from the file is fine
    # as long as the tensors the file has are the model's
    extra = [n for n in stored if n not in wanted]
    if not shared and not extra:
        return
    if shared:
        n = shared[0]
        example = f"{n} is {stored[n]} in the file but {wanted[n]} in the model"
    else:
        example = f"the file has {extra[0]}, which the model does not"
    raise CheckpointError(
        f"{file} holds the weights of another architecture ({len(shared) + len(extra)} tensor(s) differ: {example}). "
        f"Build the model from the checkpoint's own {CONFIG} (course.checkpoint.load_model does), "
        "or load a checkpoint saved from this model's configuration."
    )


def load_checkpoint(
    model: nn.Module, optimizer: torch.optim.Optimizer | None, path: str | Path, *,
    generator: torch.Generator | None = None, device: str | torch.device | None = None,
) -> Checkpoint:
    """Restore a run from a checkpoint folder (or, given an out_dir, the folder ``latest.json`` points at).

    Loads the weights into ``model`` (on ``device``, default: where the model is),
    the optimizer state into ``optimizer`` (None: skipped), and PyTorch's RNG
    states, and the sampler's into ``generator`` when given; returns the step and
    the history. Both files are read before anything is changed.
    """
    folder = _checkpoint_folder(path, (WEIGHTS, STATE, CONFIG))
    try:
        state = torch.load(folder / STATE, map_location="cpu", weights_only=True)
        step, history, optimizer_state, rng = int(state["step"]), state["history"], state["optimizer"], state["rng"]
    except Exception as err:  # truncated: EOFError, RuntimeError (zip), OSError; KeyError for a foreign file
        raise _damaged(folder / STATE, err) from None
    device = device if device is not None else next(model.parameters()).device
    _load_weights(model, folder / WEIGHTS, device)
    if optimizer is not None:
        optimizer.load_state_dict(optimizer_state)
    set_rng_states(rng, generator)
    return Checkpoint(step, history, folder)


def saved_config(folder: str | Path) -> Any:
    """The `TrainConfig` a checkpoint folder was saved with; `CheckpointError` when its config.json is damaged."""
    from .train_config import TrainConfig

    file = Path(folder) / CONFIG
    try:
        return TrainConfig.from_dict(json.loads(file.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise _damaged(file, err) from None


def load_model(checkpoint: str | Path, device: str | torch.device = "cpu") -> tuple[Any, Any]:
    """A trained `GPT` (in eval mode) and its `TrainConfig`, from a checkpoint folder or an out_dir (safetensors only)."""
    from .model import GPT
    from .train_config import TrainConfig

    folder = _checkpoint_folder(checkpoint, (WEIGHTS, CONFIG))
    config = saved_config(folder)
    model = GPT(config.model)
    _load_weights(model, folder / WEIGHTS, device)
    return model.to(device).eval(), config


def load_tokenizer(checkpoint: str | Path) -> Any:
    """The tokenizer saved with a checkpoint (a folder or an out_dir)."""
    from .tokenizers import load_tokenizer_file

    folder = _checkpoint_folder(checkpoint, (CONFIG, TOKENIZER))
    try:  # the kind comes from the file's own "format" field, as everywhere in the course
        return load_tokenizer_file(folder / TOKENIZER)
    except (ValueError, KeyError, TypeError) as err:  # TokenizerFileError and JSONDecodeError are ValueErrors
        raise _damaged(folder / TOKENIZER, err) from None
