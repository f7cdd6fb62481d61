"""Benchmark for chapter 04: naive attention vs PyTorch's fused SDPA, time and peak memory against length.

Both compute causal softmax(QKᵀ/√d)·V on (batch=1, heads=8, time=T, head_dim=64)
float32 tensors, forward only, without gradients:

* ``naive``: `course.attention.naive_attention`, which materialises the
  (B, H, T, T) scores and weights;
* ``sdpa``: ``torch.nn.functional.scaled_dot_product_attention(..., is_causal=True)``,
  which on a CPU runs a fused, blocked kernel that never holds the whole T x T
  matrix (on a CUDA GPU it dispatches to FlashAttention).

Time: the best of several calls after a warm-up call (the minimum is the least
disturbed by other programs sharing the CPU; on a shared machine a median is not).

Peak memory, how it is measured. On the CPU: the PyTorch profiler with
``profile_memory=True`` records every allocation (on the operator that made it)
and every free of PyTorch's CPU allocator, with timestamps; replaying them in
order gives the largest number of bytes held at once during the call (the output
included, the inputs not). These are exact byte counts of tensors, not the
process's resident memory. On a GPU: ``torch.cuda.max_memory_allocated`` above
the memory held before the call. Beside the measurement, each row records the
size of one (B, H, T, T) float32 matrix, the O(T²) term the naive version must
hold (it holds two at once: the masked scores and the weights). Each row also
names the aten kernels the profiler saw, so you can see which SDPA backend ran.

Writes benchmarks/results/attention.json (chapter 04 reads it). Run with
``python benchmarks/bench_attention.py`` (about a minute on 2 CPU cores); on a
machine with CUDA it also measures the GPU, to longer sequences.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from course.attention import naive_attention  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "attention.json"
BATCH, HEADS, HEAD_DIM = 1, 8, 64
CPU_LENGTHS = (128, 256, 512, 1024, 2048, 4096)
GPU_LENGTHS = (512, 1024, 2048, 4096, 8192, 16384)

METHODS: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "naive": lambda q, k, v: naive_attention(q, k, v, causal=True)[0],
    "sdpa": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
}


def cpu_peak_bytes(fn: Callable[[], object]) -> tuple[int, list[str]]:
    """Most bytes held at once by PyTorch's CPU allocator while ``fn`` runs (see the module docstring),
    and the names of the attention kernels that ran."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        result = fn()
    del result
    # Allocations sit on the operator that made them (self_cpu_memory_usage > 0); frees are
    # "[memory]" events with a negative size. Each allocation is counted once (self, not total).
    events = sorted(prof.events(), key=lambda e: e.time_range.start)
    held = peak = 0
    for event in events:
        held += event.self_cpu_memory_usage
        peak = max(peak, held)
    kernels = sorted({e.name for e in events if "attention" in e.name or e.name in ("aten::bmm", "aten::_softmax")})
    return peak, kernels


def cuda_peak_bytes(fn: Callable[[], object]) -> int:
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    result = fn()
    torch.cuda.synchronize()
    del result
    return torch.cuda.max_memory_allocated() - base


def best_seconds(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(device: torch.device, lengths: tuple[int, ...], log: Callable[[str], None]) -> list[dict]:
    rows = []
    dtype = torch.float32 if device.type == "cpu" else torch.float16
    for t in lengths:
        g = torch.Generator(device=device).manual_seed(t)
        q, k, v = (torch.randn(BATCH, HEADS, t, HEAD_DIM, generator=g, device=device, dtype=dtype) for _ in range(3))
        weights_bytes = BATCH * HEADS * t * t * q.element_size()
        for name, method in METHODS.items():
            def call() -> torch.Tensor:
                with torch.no_grad():
                    return method(q, k, v)

            repeats = 5 if (device.type == "cpu" and t >= 2048) else 20
            seconds = best_seconds(call, device, repeats)
            if device.type == "cpu":
                peak, kernels = cpu_peak_bytes(call)
            else:
                peak, kernels = cuda_peak_bytes(call), []
                if name == "sdpa":
                    from torch.profiler import ProfilerActivity, profile

                    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                        call()
                    kernels = sorted({e.name for e in prof.events() if "attention" in e.name})
            rows.append(dict(device=device.type, method=name, seq_len=t, dtype=str(dtype).replace("torch.", ""),
                             time_ms=seconds * 1e3, timing=f"best of {repeats}", peak_bytes=int(peak),
                             weights_bytes=weights_bytes, output_bytes=q.numel() * q.element_size(),
                             kernels=kernels))
            log(f"{device.type:4s} T={t:6d} {name:5s} {seconds * 1e3:9.2f} ms  peak {peak / 2**20:9.1f} MiB  "
                f"(one T x T matrix: {weights_bytes / 2**20:.1f} MiB)")
        del q, k, v
    return rows


def main() -> None:
    def log(line: str) -> None:
        print(line, flush=True)

    torch.manual_seed(0)
    rows = measure(torch.device("cpu"), CPU_LENGTHS, log)
    gpu = None
    if torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(0)
        rows += measure(torch.device("cuda"), GPU_LENGTHS, log)
    for row in rows:
        if row["method"] == "naive":
            fused = next(r for r in rows if r["method"] == "sdpa" and r["seq_len"] == row["seq_len"]
                         and r["device"] == row["device"])
            log(f"{row['device']:4s} T={row['seq_len']:6d}: SDPA is {row['time_ms'] / fused['time_ms']:.1f}x faster "
                f"and peaks at {fused['peak_bytes'] / row['peak_bytes']:.3f} of the naive version's memory")
    result = {
        "what": "causal attention forward, no grad: naive (materialised T x T) vs torch SDPA",
        "shape": {"batch": BATCH, "heads": HEADS, "head_dim": HEAD_DIM},
        "memory_method": {
            "cpu": "torch.profiler(profile_memory=True): allocations and frees of the CPU allocator replayed "
                   "in time order; peak bytes held during the call, output included, inputs excluded",
            "cuda": "torch.cuda.max_memory_allocated() minus memory_allocated() before the call",
        },
        "machine": {
            "platform": platform.platform(), "processor": platform.machine(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "gpu": gpu,
        },
        "rows": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    log(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
