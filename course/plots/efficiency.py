"""Figures of chapter 08 (efficiency and scale): precision curves, DDP vs one process, memory, quantization, pruning."""

from __future__ import annotations

from typing import Mapping, Sequence

from matplotlib.figure import Figure

from . import PALETTE, new_figure


def compare_curves(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], title: str, *, ylabel: str = "training loss",
                   difference: bool = True) -> Figure:
    """Loss curves ``{label: (steps, losses)}`` on one axis; with ``difference``, the gap to the first curve below."""
    if not curves:
        raise ValueError("curves is empty: pass {label: (steps, losses)}.")
    rows = 2 if difference and len(curves) > 1 else 1
    fig, axes = new_figure(6.4, 4.6 if rows == 2 else 3.4, nrows=rows, sharex=True,
                           gridspec_kw={"height_ratios": [3, 1.3]} if rows == 2 else None)
    ax = axes[0] if rows == 2 else axes
    styles = ["-", "--", ":", "-."]
    items = list(curves.items())
    for i, (label, (steps, losses)) in enumerate(items):
        ax.plot(steps, losses, styles[i % 4], color=PALETTE[i % len(PALETTE)], lw=1.8, label=label)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    if rows == 2:
        base_steps, base = items[0][1]
        for i, (label, (steps, losses)) in enumerate(items[1:], start=1):
            if list(steps) != list(base_steps):
                raise ValueError(f"curve {label!r} is logged at other steps than {items[0][0]!r}: cannot subtract them.")
            axes[1].plot(steps, [a - b for a, b in zip(losses, base)], color=PALETTE[i % len(PALETTE)], lw=1.2,
                         label=f"{label} − {items[0][0]}")
        axes[1].axhline(0, color="gray", lw=0.8)
        axes[1].set_ylabel("difference")
        axes[1].set_xlabel("step")
        axes[1].legend(fontsize=8)
        axes[1].grid(alpha=0.3)
    else:
        ax.set_xlabel("step")
    return fig


def memory_bars(rows: Mapping[str, Mapping[str, float]], title: str = "Training memory (fp32 + AdamW)") -> Figure:
    """Grouped horizontal bars in GiB, one group per model: ``{model: {part: bytes}}``, on a log scale
    (sizes span orders of magnitude; stacked bars would mislead on a log axis)."""
    if not rows:
        raise ValueError("rows is empty: pass {model: {part: bytes}}.")
    names = list(rows)
    parts = list(next(iter(rows.values())))
    fig, ax = new_figure(6.8, 0.75 * len(rows) + 1.4)
    height = 0.8 / len(parts)
    for i, part in enumerate(parts):
        ys = [g + (i - (len(parts) - 1) / 2) * height for g in range(len(names))]
        ax.barh(ys, [rows[n][part] / 2**30 for n in names], height=height, color=PALETTE[i % len(PALETTE)], label=part)
    ax.set_yticks(range(len(names)), names)
    ax.set_xscale("log")
    ax.set_xlabel("GiB (log scale)")
    ax.invert_yaxis()
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title)
    return fig


def pruning_curves(sparsities: Sequence[float], losses: Mapping[str, Sequence[float]], *, reference: float | None = None,
                   reference_label: str = "unpruned model") -> Figure:
    """Validation loss against the fraction of linear weights set to zero, one line per pruning scope."""
    fig, ax = new_figure(6.0, 3.6)
    for i, (label, values) in enumerate(losses.items()):
        if len(values) != len(sparsities):
            raise ValueError(f"{label!r} has {len(values)} losses for {len(sparsities)} sparsities.")
        ax.plot([100 * s for s in sparsities], values, "o-", color=PALETTE[i], lw=2, label=label)
    if reference is not None:
        ax.axhline(reference, color="gray", ls="--", lw=1, label=reference_label)
    ax.set_xlabel("sparsity of the linear layers (%)")
    ax.set_ylabel("validation loss")
    ax.set_title("Magnitude pruning without retraining")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def quantization_error(w, deq8, deq4, title: str = "Quantization error of one weight row") -> Figure:
    """Original weights of one row against their int8 and int4 reconstructions (errors in the lower panel)."""
    fig, axes = new_figure(6.8, 4.2, nrows=2, sharex=True)
    idx = range(len(w))
    axes[0].plot(idx, w, color=PALETTE[7], lw=1.0, label="float32")
    axes[0].plot(idx, deq4, color=PALETTE[5], lw=0.9, drawstyle="steps-mid", label="int4 (group 32)")
    axes[0].plot(idx, deq8, color=PALETTE[0], lw=0.9, ls="--", label="int8 (per row)")
    axes[0].set_ylabel("weight")
    axes[0].legend(fontsize=8)
    axes[0].set_title(title)
    axes[1].plot(idx, [a - b for a, b in zip(deq4, w)], color=PALETTE[5], lw=0.8, label="int4 − float")
    axes[1].plot(idx, [a - b for a, b in zip(deq8, w)], color=PALETTE[0], lw=0.8, label="int8 − float")
    axes[1].set_ylabel("error")
    axes[1].set_xlabel("input feature")
    axes[1].legend(fontsize=8)
    return fig
