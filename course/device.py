"""Devices, dtypes, seeding and the environment report (chapter 00; used by every chapter).

* `pick_device()` chooses cuda > mps > cpu; the environment variable
  ``COURSE_DEVICE`` (``cpu``, ``cuda``, ``cuda:1``, ``mps``) overrides the choice.
* `pick_dtype(device)` chooses the training dtype: bfloat16 where the hardware
  runs it fast (CUDA GPUs with bf16 support), float32 elsewhere.
* `seed_everything(seed)` seeds Python, NumPy and PyTorch (all devices).
* `environment_report()` gathers versions, device and threads for chapter 00.
"""

from __future__ import annotations

import os
import platform
import random
import sys
from typing import Any

import numpy as np
import torch

ENV_DEVICE = "COURSE_DEVICE"


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def pick_device(prefer: str | None = None) -> torch.device:
    """The best available device: cuda > mps > cpu, unless ``prefer`` or ``$COURSE_DEVICE`` says otherwise."""
    wanted = prefer or os.environ.get(ENV_DEVICE)
    if wanted:
        device = torch.device(wanted)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(
                f"Device {wanted!r} was requested (via {'prefer' if prefer else ENV_DEVICE}) "
                "but CUDA is not available here. Use 'cpu', or unset the variable."
            )
        if device.type == "mps" and not _mps_available():
            raise RuntimeError(f"Device {wanted!r} was requested but MPS is not available here. Use 'cpu'.")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(device: torch.device | str) -> torch.dtype:
    """bfloat16 on CUDA GPUs that support it (Ampere and newer), float32 elsewhere.

    bfloat16 on a CPU is supported but usually slower than float32, and MPS
    support is partial, so both train in float32.
    """
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def seed_everything(seed: int) -> None:
    """Seed Python's `random`, NumPy's global generator and PyTorch on every device."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}.")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds CUDA and MPS generators


def environment_report() -> dict[str, Any]:
    """Versions, device and threads: what chapter 00 prints so you can compare with the book."""
    device = pick_device()
    report: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "dtype": str(pick_dtype(device)).replace("torch.", ""),
        "cuda_available": torch.cuda.is_available(),
        "mps_available": _mps_available(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        report["gpu"] = props.name
        report["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
    return report


def format_report(report: dict[str, Any]) -> str:
    width = max(len(k) for k in report)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in report.items())
