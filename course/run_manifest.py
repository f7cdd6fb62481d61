"""The run folder describes itself (chapter 05): ``run.json``, written when a run starts, checked on resume.

A checkpoint says how the model was trained (its config.json); it does not say on
*what*. Resuming a run on other data, with another tokenizer, or with a model of
another shape would go on silently (or fail deep inside PyTorch). So a run writes,
when it starts in an ``out_dir``, a manifest:

- ``config``: the training configuration it started with;
- ``data``: a fingerprint of the training data (corpus and its SHA-256, tokenizer
  and its vocabulary, the sizes of both splits, a hash of their first and last
  tokens), or ``None`` for a custom sampler (chapter 07's tasks);
- ``model``: the model's class, parameter count and configuration;
- ``course_version``: the version of the course that wrote it.

On resume, `check_resume` compares the manifest with the run about to continue:
different data or a different model stop it with what differs and the two ways on
(``force=True`` / ``--force`` to continue anyway, or a new ``out_dir``).
Hyperparameter changes are the checkpoint's business (`course.train_support.resume_changes`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__

MANIFEST = "run.json"
_SAMPLE = 65_536  # tokens hashed at each end of each split: the whole file for the course's corpora


def data_fingerprint(data: Any) -> dict[str, Any] | None:
    """What identifies a `course.token_data.Dataset` (None for no dataset: a custom sampler)."""
    if data is None:
        return None
    recipe = dict(getattr(data, "recipe", None) or {})
    fingerprint: dict[str, Any] = {
        "corpus": getattr(data, "corpus_name", None),
        "corpus_sha256": recipe.get("corpus_sha256"),
        "tokenizer": type(data.tokenizer).__name__,
        "vocab_size": getattr(data.tokenizer, "vocab_size", None),
    }
    for name in ("train", "val"):
        tokens = getattr(data, name).tokens  # a tensor, or a memory-mapped array (only the ends are read)
        ids = tokens if isinstance(tokens, np.ndarray) else tokens.detach().cpu().numpy()
        head, tail = ids[:_SAMPLE], ids[-_SAMPLE:]
        digest = hashlib.sha256(np.ascontiguousarray(head, dtype=np.int64).tobytes())
        digest.update(np.ascontiguousarray(tail, dtype=np.int64).tobytes())
        fingerprint[f"{name}_tokens"] = int(len(ids))
        fingerprint[f"{name}_sha256"] = digest.hexdigest()
    return fingerprint


def model_fingerprint(model: Any) -> dict[str, Any]:
    """The model's class, parameter count and (for a `GPT`) configuration."""
    config = getattr(model, "config", None)
    return {
        "class": type(model).__name__,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "config": asdict(config) if is_dataclass(config) else None,
    }


def make_manifest(config: Any, data: Any, model: Any) -> dict[str, Any]:
    """The manifest of a run about to start (see the module docstring)."""
    return {
        "course_version": __version__,
        "config": asdict(config) if is_dataclass(config) else dict(config),
        "data": data_fingerprint(data),
        "model": model_fingerprint(model),
    }


def read_manifest(out_dir: str | Path) -> dict[str, Any] | None:
    """The manifest in ``out_dir`` (None if there is none); a damaged one is an error that says so."""
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} cannot be read ({type(err).__name__}): the run folder is damaged; "
                         "start the run in a new out_dir") from None
    if not isinstance(manifest, dict):
        raise ValueError(f"{path} is not a run manifest (a JSON object): start the run in a new out_dir")
    return manifest


def write_manifest(out_dir: str | Path, manifest: dict[str, Any]) -> Path:
    """Write ``run.json`` atomically (a half-written manifest never replaces a whole one)."""
    from .checkpoint import atomic_write_text

    path = Path(out_dir) / MANIFEST
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(manifest, indent=1, default=str))
    return path


def _differences(kind: str, then: Any, now: Any) -> list[str]:
    if then == now:
        return []
    if not isinstance(then, dict) or not isinstance(now, dict):
        return [f"{kind}: {then!r} then, {now!r} now"]
    return [f"{kind} {key}: {then.get(key)!r} then, {now.get(key)!r} now"
            for key in sorted(set(then) | set(now)) if then.get(key) != now.get(key)]


def check_resume(out_dir: str | Path, manifest: dict[str, Any], force: bool = False) -> list[str]:
    """Compare the run folder's manifest with the run about to resume there; returns what differs.

    Different data or a different model raise ValueError (what differs, and how to go on) unless
    ``force``. A folder without a manifest (a run of an older version) passes: there is nothing to check.
    """
    then = read_manifest(out_dir)
    if then is None:
        return []
    differences = _differences("data", then.get("data"), manifest["data"])
    model_then, model_now = dict(then.get("model") or {}), dict(manifest["model"])
    if model_then.get("class") == "GPT" and isinstance(model_then.get("config"), dict):
        from .model import GPTConfig  # a manifest written before a field existed: that field had its default

        model_then["config"] = asdict(GPTConfig.from_dict(model_then["config"]))
    differences += _differences("model", model_then, model_now)
    if differences and not force:
        raise ValueError(
            f"resume: the run in {out_dir} was started on other data or with another model "
            f"({'; '.join(differences)}). To continue it anyway, pass force=True (command line: --force); "
            "to train this data or model from the start, use a new out_dir.")
    return differences
