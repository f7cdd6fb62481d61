"""Benchmark for chapter 08: a linear layer in float32, int8 weight-only (ours) and a fused int8 kernel.

One ``nn.Linear(1024, 4096)`` (a GPT-2-small-sized MLP layer, 4.2M weights) on
the CPU, for a batch of 1 row (decoding one token) and of 256 rows (a prompt or
a training batch). Our `Int8Linear` converts its int8 weights to float at every
call, so it saves memory, not time. The third variant feeds the *same* int8
weights and per-channel scales to ``torch._weight_int8pack_mm``, PyTorch's fused
weight-only int8 matrix multiply for the CPU (a private ATen operator: it is
used where the installed torch has it, and the results say whether it did),
which applies the scales inside the kernel instead of building a float copy of
the weights. PyTorch's older dynamic quantization API is deprecated and not
used. Each time is the median of ``REPEATS`` runs after a warm-up; outputs are
checked against the float layer. Writes benchmarks/results/quantize.json. Run:
``python benchmarks/bench_quantize.py`` (about 20 seconds on 2 cores).
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
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from course.quantize import Int8Linear, serialized_bytes  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "quantize.json"
REPEATS = 20
ROWS = (1, 256)
FUSED_OP = "_weight_int8pack_mm"


class FusedInt8Linear(nn.Module):
    """The weights and scales of an `Int8Linear`, multiplied by PyTorch's fused int8 weight-only kernel."""

    def __init__(self, layer: Int8Linear) -> None:
        super().__init__()
        self.register_buffer("qweight", layer.qweight.contiguous())
        self.register_buffer("scale", layer.scale.clone())
        self.register_buffer("bias", None if layer.bias is None else layer.bias.clone())

    def forward(self, x: Tensor) -> Tensor:
        flat = x.reshape(-1, x.shape[-1]).contiguous()
        y = getattr(torch, FUSED_OP)(flat, self.qweight, self.scale.to(x.dtype)).reshape(*x.shape[:-1], -1)
        return y if self.bias is None else y + self.bias.to(x.dtype)


def fused_int8(layer: Int8Linear) -> tuple[nn.Module | None, str]:
    """`FusedInt8Linear` of ``layer`` where this torch has the fused kernel and it runs, else (None, why)."""
    if not hasattr(torch, FUSED_OP):
        return None, f"torch.{FUSED_OP} is not in torch {torch.__version__}"
    fused = FusedInt8Linear(layer)
    try:
        fused(torch.zeros(1, layer.in_features))
    except Exception as err:  # an unsupported CPU or build
        return None, f"torch.{FUSED_OP} failed: {type(err).__name__}: {err}"
    return fused, f"torch.{FUSED_OP}"


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
    ours = Int8Linear.from_linear(layer)
    layers = {"float32": layer, "int8 weight-only (ours)": ours}
    fused, how = fused_int8(ours)
    if fused is not None:
        layers["int8 fused kernel"] = fused
    result: dict = {"machine": {"cpu_count": os.cpu_count(), "threads": torch.get_num_threads(), "torch": torch.__version__,
                                "platform": platform.platform()}, "fused_int8_kernel": how, "rows": {}}
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
