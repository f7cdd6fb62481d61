"""Benchmark for chapter 06: generation speed with and without the KV cache, and once the context is full.

The model has the GPU preset's architecture (`course.train_config.gpu_preset().model`:
6 layers, 6 heads, 384 wide, context 256, about 10.7M parameters), randomly
initialised (speed does not depend on the weights), float32, in eval mode, on
the CPU. Decoding is greedy, batch 1, from a one-token prompt, so generating
256 tokens ends with a full 256-token context.

* ``lengths``: tokens/s for 32, 64, 128 and 256 generated tokens, with the
  cache (one new position per step) and without (the whole sequence recomputed
  at every step). Both runs must produce the same tokens.
* ``full_context``: starting from a full 256-token prompt, 64 more tokens, so
  every step overflows the context. ``slide`` keeps the last 256 tokens (an exact
  sliding window); the cache cannot be shifted (its keys carry their absolute
  positions), so it is rebuilt at each step: as slow as recomputing. ``halve``
  drops the oldest half once the context is full, rebuilds the cache from the
  128 tokens left, and then decodes with the cache until the context fills up
  again: one rebuild per 128 tokens.

Each measurement is the median of ``REPEATS`` runs after a warm-up run, all in
one process. Writes benchmarks/results/sampling.json (chapter 06 reads it).
Run with ``python benchmarks/bench_sampling.py`` (about a minute on 2 CPU cores).
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

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from course.model import GPT  # noqa: E402
from course.sampling import generate, kv_cache_bytes  # noqa: E402
from course.train_config import gpu_preset  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "sampling.json"
LENGTHS = (32, 64, 128, 256)
FULL_CONTEXT_TOKENS = 64
REPEATS = 3


def _timed(model: GPT, prompt: torch.Tensor, n: int, **kwargs) -> tuple[float, torch.Tensor]:
    times, out = [], None
    for _ in range(REPEATS):
        start = time.perf_counter()
        out = generate(model, prompt, n, greedy=True, **kwargs)
        times.append(time.perf_counter() - start)
    assert out is not None
    return statistics.median(times), out


def main() -> None:
    torch.manual_seed(0)
    config = gpu_preset().model
    model = GPT(config).eval()
    prompt = torch.zeros(1, 1, dtype=torch.long)
    generate(model, prompt, 8, greedy=True)  # warm-up: first calls allocate and pick kernels
    generate(model, prompt, 8, greedy=True, use_cache=False)

    rows = []
    for n in LENGTHS:
        t_cached, a = _timed(model, prompt, n, use_cache=True)
        t_full, b = _timed(model, prompt, n, use_cache=False)
        assert torch.equal(a, b), f"cached and uncached generation differ at {n} tokens"
        rows.append({
            "new_tokens": n, "context_at_end": 1 + n - 1,
            "cached_s": t_cached, "uncached_s": t_full,
            "cached_tokens_per_s": n / t_cached, "uncached_tokens_per_s": n / t_full,
            "speedup": t_full / t_cached,
        })
        print(f"{n:4d} tokens: cached {n / t_cached:8.1f} tok/s, recompute {n / t_full:8.1f} tok/s, speed-up {t_full / t_cached:5.1f}x")

    full_prompt = torch.randint(0, config.vocab_size, (1, config.block_size), generator=torch.Generator().manual_seed(0))
    full = {}
    for name, kwargs in (("slide, cached", dict(overflow="slide", use_cache=True)),
                         ("slide, uncached", dict(overflow="slide", use_cache=False)),
                         ("halve, cached", dict(overflow="halve", use_cache=True))):
        seconds, _ = _timed(model, full_prompt, FULL_CONTEXT_TOKENS, **kwargs)
        full[name] = {"seconds": seconds, "tokens_per_s": FULL_CONTEXT_TOKENS / seconds}
        print(f"full context, {name:16s}: {FULL_CONTEXT_TOKENS / seconds:8.1f} tok/s")

    result = {
        "what": "greedy generation, batch 1, tokens/s with the KV cache vs recomputing the whole sequence at every step",
        "model": {**config.to_dict(), "parameters": model.num_parameters(), "init": "random (seed 0)", "dtype": "float32"},
        "kv_cache_bytes_full_context": kv_cache_bytes(config, config.block_size),
        "repeats": REPEATS, "statistic": "median",
        "machine": {
            "platform": platform.platform(), "processor": platform.machine(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "load_average_1min": os.getloadavg()[0],
        },
        "lengths": rows,
        "full_context": {"prompt_tokens": config.block_size, "new_tokens": FULL_CONTEXT_TOKENS, **full},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
