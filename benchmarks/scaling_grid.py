"""The grid of small training runs behind chapter 09 (scaling laws and the tokenizer comparison).

    python benchmarks/scaling_grid.py            # the full grid, about 40 minutes on 2 cores
    python benchmarks/scaling_grid.py --quick    # a tiny grid, to check the script (seconds)

Four parts, each a list of runs of `course.scaling_runs.run` (the recipe is in
that module's docstring), all on Tiny Shakespeare's training split and scored in
bits per character on the whole validation split:

* ``isoflop``: every model size at three compute budgets C, with D = C / FLOPs per
  token (chapter 04's formula), character tokens. Fits: the IsoFLOP parabolas.
* ``fixed_tokens``: every model size on the same number of tokens. Fit: L(N).
  (L(D) comes from one size across the budgets of the other two parts.)
* ``vocab``: one model body on the same number of tokens (the same steps) with
  the character tokenizer and byte-level BPE of 512 to 16384 tokens, two seeds each.
* ``vocab_flops``: the same, on the same training compute instead: a larger
  vocabulary costs more FLOPs per token (its output layer), so it gets fewer tokens.

Results go to ``benchmarks/results/scaling.json`` after every run, so an
interrupted or enlarged grid continues where it stopped (runs already there are
skipped; ``--fresh`` starts over; runs no longer in the plan are dropped). The chapter plots this file and re-runs the smallest
budget live.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from course.data import tinyshakespeare, train_val_split  # noqa: E402
from course.scaling_runs import SIZES, grid_model, isoflop_plan, run, tokens_for_flops  # noqa: E402
from course.token_data import prepare_data  # noqa: E402
from course.train_config import TrainConfig  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "scaling.json"
CHAR_VOCAB = 65  # Tiny Shakespeare's characters (the character tokenizer's vocabulary)

FULL = {
    "isoflop_budgets": [5e11, 1.5e12, 4.5e12],
    "isoflop_tokens": [250_000, 18_000_000],
    "fixed_tokens": 1_000_000,
    "vocab_sizes": [0, 512, 1024, 2048, 4096, 8192, 16384],  # 0: the character tokenizer
    "vocab_model": [4, 96],
    "vocab_tokens": 750_000,
    "vocab_seeds": [0, 1],
    "vocab_flops": 2.48e12,  # the character run's compute at vocab_tokens
    "sizes": [list(s) for s in SIZES],
}
QUICK = {
    "isoflop_budgets": [2e10, 4e10],
    "isoflop_tokens": [20_000, 200_000],
    "fixed_tokens": 20_480,
    "vocab_sizes": [0, 300],
    "vocab_model": [2, 32],
    "vocab_tokens": 20_480,
    "vocab_seeds": [0],
    "vocab_flops": 5.4e9,
    "sizes": [[2, 32], [2, 48], [3, 64]],
}


def plan(grid: dict) -> list[dict]:
    sizes = [tuple(s) for s in grid["sizes"]]
    lo, hi = grid["isoflop_tokens"]
    runs = [{"part": "isoflop", "vocab": 0, "seed": 0, **p}
            for p in isoflop_plan(grid["isoflop_budgets"], sizes, min_tokens=lo, max_tokens=hi)]
    runs += [{"part": "fixed_tokens", "vocab": 0, "seed": 0, "n_layer": n, "n_embd": d, "tokens": grid["fixed_tokens"]}
             for n, d in sizes]
    n, d = grid["vocab_model"]
    runs += [{"part": "vocab", "vocab": v, "seed": s, "n_layer": n, "n_embd": d, "tokens": grid["vocab_tokens"]}
             for v in grid["vocab_sizes"] for s in grid["vocab_seeds"]]
    runs += [{"part": "vocab_flops", "vocab": v, "seed": s, "n_layer": n, "n_embd": d,
              "tokens": tokens_for_flops(grid_model(n, d, v or CHAR_VOCAB), grid["vocab_flops"])}
             for v in grid["vocab_sizes"] for s in grid["vocab_seeds"]]
    return runs


def key(r: dict) -> tuple:
    """What identifies a run of the plan (a stored run's ``tokens`` are whole steps: it keeps the planned number)."""
    return (r["part"], r["vocab"], r["seed"], r["n_layer"], r["n_embd"], r.get("tokens_planned", r["tokens"]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a tiny grid that checks the script in seconds")
    ap.add_argument("--out", type=Path, default=None, help=f"results file (default {RESULTS.relative_to(ROOT)}; "
                                                           "with --quick: _build/scaling-quick.json)")
    ap.add_argument("--fresh", action="store_true", help="start over instead of continuing the results file")
    ap.add_argument("--parts", default="isoflop,fixed_tokens,vocab,vocab_flops",
                    help="which parts to run now (comma-separated; the others' runs already in the file are kept)")
    args = ap.parse_args(argv)
    grid = QUICK if args.quick else FULL
    out = args.out or (ROOT / "_build" / "scaling-quick.json" if args.quick else RESULTS)

    corpus = tinyshakespeare()
    if corpus.is_fallback and not args.quick:
        print("Tiny Shakespeare is not available: the full grid is only meaningful on it.", file=sys.stderr)
        return 2
    text = corpus.text
    val_text = train_val_split(text, 0.1)[1]
    done: dict = {"runs": []}
    if out.is_file() and not args.fresh:
        done = json.loads(out.read_text())  # runs of the plan that are already there are kept (same recipe, same key)
    finished = {key(r): r for r in done["runs"]}
    todo = plan(grid)
    parts = set(args.parts.split(","))
    datasets: dict[int, object] = {}
    started = time.perf_counter()
    for i, spec in enumerate(todo, 1):
        if key(spec) in finished or spec["part"] not in parts:
            continue
        v = spec["vocab"]
        if v not in datasets:
            cfg = TrainConfig(tokenizer="char") if v == 0 else TrainConfig(tokenizer="bpe", bpe_vocab_size=v)
            datasets[v] = prepare_data(cfg, text)
        r = run(datasets[v], val_text, spec["n_layer"], spec["n_embd"], spec["tokens"], seed=spec["seed"])
        row = {**spec, "tokens_planned": spec["tokens"], **r.to_dict(), "tokenizer": "char" if v == 0 else f"bpe-{v}",
               "train_chars_per_token": len(train_val_split(text, 0.1)[0]) / len(datasets[v].train)}
        finished[key(spec)] = row
        print(f"[{i}/{len(todo)}] {row['part']:12s} {row['tokenizer']:8s} L{row['n_layer']} d{row['n_embd']:<3d} "
              f"N={row['n_params']:>9,} D={row['tokens']:>10,} C={row['flops']:.2e}  "
              f"val {row['val_bpc']:.4f} bpc  {row['seconds']:.0f} s", flush=True)
        result = {
            "description": "chapter 09's grid: benchmarks/scaling_grid.py (recipe: course/scaling_runs.py)",
            "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                        "python": platform.python_version(), "processor": platform.processor() or platform.machine()},
            "corpus": corpus.name,
            "grid": grid,
            "runs": [finished[key(s)] for s in todo if key(s) in finished],
        }
        result["total_seconds"] = round(sum(r["seconds"] for r in result["runs"]), 1)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1) + "\n")
        tmp.replace(out)
    print(f"{len(todo)} runs in {out} ({time.perf_counter() - started:.0f} s this time)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
