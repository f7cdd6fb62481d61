"""Training figures (chapter 05): loss curves and the learning-rate schedule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from matplotlib.figure import Figure

from . import PALETTE, new_figure


def run_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records of the newest run in a metrics.jsonl log.

    The trainer writes ``{"event": "start", "step": s}`` each time it starts: at
    step 0 a new run begins (an out_dir may hold the logs of earlier runs); at a
    later step the run goes on (a resume), and what was logged beyond step ``s``
    before it (after the checkpoint it resumed from) is dropped. A log without
    start records (older ones) is one run.
    """
    starts = [i for i, r in enumerate(records) if r.get("event") == "start"]
    fresh = [i for i in starts if _step(records[i]) == 0]
    begin = fresh[-1] if fresh else (starts[0] if starts else 0)
    kept: list[dict[str, Any]] = []
    for record in records[begin:]:
        if record.get("event") == "start":
            kept = [k for k in kept if _step(k) <= _step(record)]
        else:
            kept.append(record)
    return kept


def _step(record: dict[str, Any]) -> int:
    return int(record.get("step", 0))


def read_metrics(path: str | Path) -> dict[str, list]:
    """A metrics.jsonl log's newest run (`run_records`) as a history dict (the keys of `course.train.TrainResult.history`)."""
    history: dict[str, list] = {k: [] for k in ("step", "loss", "lr", "eval_step", "val_loss", "train_loss")}
    records = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    for record in run_records(records):
        if "loss" in record:
            for k in ("step", "loss", "lr"):
                history[k].append(record[k])
        if "val_loss" in record:
            history["eval_step"].append(record["step"])
            history["val_loss"].append(record["val_loss"])
            history["train_loss"].append(record["train_loss"])
    return history


def loss_curves(history: Mapping[str, list], title: str = "", *, baseline: float | None = None, ax: Any = None) -> Figure:
    """Training loss per logged step (thin), train and validation loss at each evaluation (thick)."""
    if ax is None:
        fig, ax = new_figure(6.4, 3.6)
    else:
        fig = ax.figure
    ax.plot(history["step"], history["loss"], color=PALETTE[0], alpha=0.3, lw=1, label="training batch loss")
    if history.get("eval_step"):
        ax.plot(history["eval_step"], history["train_loss"], "o-", color=PALETTE[0], lw=2, ms=3, label="train (fixed batches)")
        ax.plot(history["eval_step"], history["val_loss"], "o-", color=PALETTE[5], lw=2, ms=3, label="validation")
    if baseline is not None:
        ax.axhline(baseline, color="gray", ls="--", lw=1, label=f"reference {baseline:.2f}")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy loss (nats per token)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return fig


def lr_schedule(steps: list[int], lrs: list[float], warmup: int, title: str = "learning-rate schedule") -> Figure:
    fig, ax = new_figure(6.4, 3.0)
    ax.plot(steps, lrs, color=PALETTE[2], lw=2)
    ax.axvline(warmup, color="gray", ls=":", lw=1)
    ax.text(warmup, max(lrs) * 0.5, " end of warmup", fontsize=8, color="gray")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return fig
