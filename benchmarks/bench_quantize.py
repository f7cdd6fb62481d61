"""Benchmark for chapter 08: a linear layer in float32, int8 weight-only (ours) and PyTorch dynamic int8.

One ``nn.Linear(1024, 4096)`` (a GPT-2-small-sized MLP layer, 4.2M weights) on
the CPU, for a batch of 1 row (decoding one token) and of 256 rows (a prompt or
a training batch). Our `Int8Linear` converts its int8 weights to float at every
call, so it saves memory, not time; PyTorch's dynamic quantization multiplies
in int8 (fbgemm/onednn). Each time is the median of ``REPEATS`` runs after a
warm-up; outputs are checked against the float layer. Writes
benchmarks/results/quantize.json. Run: ``python benchmarks/bench_quantize.py``
(about 20 seconds on 2 cores).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from course.quantize import Int8Linear, serialized_bytes, torch_dynamic_int8  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "quantize.json"
REPEATS = 20
ROWS = (1, 256)


def median_seconds(fn) -> float:
    fn()
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@torch.no_grad()
def main() -> dict:
    torch.manual_seed(0)
    layer = nn.Linear(1024, 4096).eval()
    layers = {"float32": layer, "int8 weight-only (ours)": Int8Linear.from_linear(layer)}
    dynamic, how = torch_dynamic_int8(nn.Sequential(layer))
    if dynamic is not None:
        layers["int8 dynamic (PyTorch)"] = dynamic
    result: dict = {"machine": {"cpu_count": os.cpu_count(), "threads": torch.get_num_threads(), "torch": torch.__version__,
                                "platform": platform.platform()}, "dynamic_quantization": how, "rows": {}}
    result["bytes"] = {name: serialized_bytes(m) for name, m in layers.items()}
    for rows in ROWS:
        x = torch.randn(rows, 1024)
        reference = layer(x)
        entry = {}
        for name, m in layers.items():
            err = float((m(x) - reference).abs().max())
            entry[name] = {"seconds": median_seconds(lambda: m(x)), "max_abs_error": err}
        base = entry["float32"]["seconds"]
        for name in entry:
            entry[name]["time_vs_float32"] = entry[name]["seconds"] / base
        result["rows"][str(rows)] = entry
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    for rows, entry in result["rows"].items():
        print(f"batch of {rows} rows:")
        for name, e in entry.items():
            print(f"  {name:>24}: {1e6 * e['seconds']:8.1f} µs  ({e['time_vs_float32']:.2f} x float32), "
                  f"max error {e['max_abs_error']:.2e}, {result['bytes'][name] / 2**20:.2f} MiB")
    return result


if __name__ == "__main__":
    main()
