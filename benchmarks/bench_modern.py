"""Benchmark for chapter 13: tiled attention and mixture-of-experts dispatch, side by side in one run.

Attention, forward and backward, causal, (batch=1, heads=4, T, head_dim=64) float32:

* ``naive``: `course.attention.naive_attention` (the whole T x T matrix, chapter 04);
* ``tiled``: `course.flash_attention.tiled_attention` (blocks of 128 queries x 128 keys, a Python loop);
* ``sdpa``: ``F.scaled_dot_product_attention`` (PyTorch's fused kernel).

Recorded: the best of several forward+backward calls, the bytes autograd keeps for the
backward pass (`course.memory.saved_for_backward_bytes`), and the peak bytes
held by PyTorch's CPU allocator during the forward pass (`bench_attention.cpu_peak_bytes`).

Mixture of experts, forward and backward on 4,096 tokens of width 128: `course.moe.MoE`
with 8 experts of hidden width 512, top-2, dispatched by a loop over experts and by one
batched matrix product, against a dense MLP with the same active parameters (hidden
1,024) and one with the same total parameters (hidden 4,096). Tokens per second.

Writes benchmarks/results/modern_kernels.json. About a minute on 2 CPU cores:
``python benchmarks/bench_modern.py``.
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
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_attention import cpu_peak_bytes  # noqa: E402

from course.attention import naive_attention  # noqa: E402
from course.flash_attention import tiled_attention  # noqa: E402
from course.memory import saved_for_backward_bytes  # noqa: E402
from course.moe import MoE  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "modern_kernels.json"
HEADS, HEAD_DIM, BLOCK = 4, 64, 128
LENGTHS = (256, 512, 1024, 2048)
ATTENTION: dict[str, Callable[..., torch.Tensor]] = {
    "naive": lambda q, k, v: naive_attention(q, k, v, causal=True)[0],
    "tiled": lambda q, k, v: tiled_attention(q, k, v, causal=True, block_q=BLOCK, block_k=BLOCK),
    "sdpa": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
}
TOKENS, WIDTH, EXPERTS, EXPERT_HIDDEN, TOP_K = 4096, 128, 8, 512, 2


def best_seconds(fn: Callable[[], object], repeats: int = 3) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def attention_rows() -> list[dict]:
    rows = []
    for t in LENGTHS:
        g = torch.Generator().manual_seed(0)
        q, k, v = (torch.randn(1, HEADS, t, HEAD_DIM, generator=g, requires_grad=True) for _ in range(3))
        grad = torch.randn(1, HEADS, t, HEAD_DIM, generator=g)
        row: dict = {"T": t}
        for name, fn in ATTENTION.items():
            def step(fn=fn) -> None:
                out = fn(q, k, v)
                torch.autograd.grad(out, (q, k, v), grad)
            row[name] = {
                "seconds": round(best_seconds(step), 5),
                "saved_bytes": saved_for_backward_bytes(fn, q, k, v),
                "forward_peak_bytes": cpu_peak_bytes(lambda fn=fn: fn(q.detach(), k.detach(), v.detach()))[0],
            }
            print(f"T={t:5d} {name:6}: {row[name]['seconds'] * 1e3:8.1f} ms, saved {row[name]['saved_bytes'] / 2**20:7.2f} MiB",
                  flush=True)
        row["tiled_over_sdpa_time"] = round(row["tiled"]["seconds"] / row["sdpa"]["seconds"], 2)
        row["naive_over_tiled_saved"] = round(row["naive"]["saved_bytes"] / row["tiled"]["saved_bytes"], 1)
        rows.append(row)
    return rows


def moe_rows() -> dict:
    torch.manual_seed(0)
    x = torch.randn(TOKENS, WIDTH)
    layers = {
        "moe_loop": MoE(WIDTH, EXPERT_HIDDEN, EXPERTS, TOP_K, dispatch="loop"),
        "moe_batched": MoE(WIDTH, EXPERT_HIDDEN, EXPERTS, TOP_K, dispatch="batched"),
        "dense_same_active": torch.nn.Sequential(torch.nn.Linear(WIDTH, TOP_K * EXPERT_HIDDEN), torch.nn.GELU(),
                                                 torch.nn.Linear(TOP_K * EXPERT_HIDDEN, WIDTH)),
        "dense_same_total": torch.nn.Sequential(torch.nn.Linear(WIDTH, EXPERTS * EXPERT_HIDDEN), torch.nn.GELU(),
                                                torch.nn.Linear(EXPERTS * EXPERT_HIDDEN, WIDTH)),
    }
    layers["moe_batched"].load_state_dict(layers["moe_loop"].state_dict())
    out: dict = {"tokens": TOKENS, "width": WIDTH, "experts": EXPERTS, "expert_hidden": EXPERT_HIDDEN, "top_k": TOP_K}
    for name, layer in layers.items():
        def step(layer=layer) -> None:
            layer.zero_grad(set_to_none=True)
            layer(x).square().mean().backward()
        seconds = best_seconds(step)
        out[name] = {"seconds": round(seconds, 5), "tokens_per_second": round(TOKENS / seconds),
                     "parameters": sum(p.numel() for p in layer.parameters())}
        print(f"{name:18}: {TOKENS / seconds:10,.0f} tokens/s, {out[name]['parameters']:,} parameters", flush=True)
    out["loop_over_batched_time"] = round(out["moe_loop"]["seconds"] / out["moe_batched"]["seconds"], 2)
    out["batched_over_dense_active_time"] = round(out["moe_batched"]["seconds"] / out["dense_same_active"]["seconds"], 2)
    return out


def main() -> None:
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    results = {
        "machine": {"cores": os.cpu_count(), "threads": torch.get_num_threads(), "python": platform.python_version(),
                    "torch": torch.__version__, "processor": platform.processor() or platform.machine()},
        "attention": {"heads": HEADS, "head_dim": HEAD_DIM, "block": BLOCK, "rows": attention_rows()},
        "moe": moe_rows(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
