"""The grid of training runs behind chapter 13: `make modern-grid`.

    python benchmarks/modern_grid.py            # the full grid (its minutes are in the results file)
    python benchmarks/modern_grid.py --quick    # a tiny grid into _build/, to check the script (about a minute)

Every run uses the recipe of `course.modern_runs` (character-level Tiny Shakespeare, the Trainer, AdamW, cosine
schedule, validation bits per character) with three seeds. Parts, in order:

* ``blocks``: GPT-2's block turned into Llama's one change at a time (`course.modern_runs.BLOCK_STEPS`: RMSNorm,
  SwiGLU at the same parameter count, RoPE, no biases), each change kept in the next.
* ``moe``: a mixture of experts (8 GELU experts of width 256, top-2) with and without the load-balancing loss,
  against a dense MLP with the same active parameters (width 512) and one with the same total (width 2,048); the
  experts' load on the evaluation batches every `LOAD_EVERY` steps.
* ``long``: learned positions, RoPE and ALiBi trained on a context of `LONG_TRAIN` characters, then read
  `LONG_EVAL` characters: the loss at each position, RoPE extrapolated, position-interpolated, NTK-scaled and with a
  sliding window of the trained length.
* ``gqa``: the Llama block with 2 and 1 key/value heads (4 is the ``blocks`` part's last model), trained from
  scratch; and the trained 4-head models mean-pooled to 2 and 1 heads (Ainslie et al. 2023), scored before and
  after a short uptraining of `UPTRAIN_FRACTION` of the steps.
* ``decode``: KV-cache bytes and time per generated token at a long context, for 8, 2 and 1 key/value heads of a
  wider, untrained model (timing needs no training).
* ``spec``: speculative decoding with the shipped character model (chapter 05) as target and small drafts trained
  here: acceptance rate, tokens per target call and wall-clock speed-up against draft size and draft length,
  greedy and sampled.

Results go to ``benchmarks/results/modern.json`` after every run, so an interrupted grid continues where it stopped
(``--fresh`` starts over). Trained Llama-block models are kept under ``runs/modern-grid/`` for the ``gqa`` part.
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
from course.evaluate import validation_bpc  # noqa: E402
from course.gqa import pool_kv_heads  # noqa: E402
from course.long_context import extend_context, loss_by_position  # noqa: E402
from course.model import GPT, GPTConfig  # noqa: E402
from course.modern_runs import BLOCK_STEPS, block_config, expert_loads, train_run  # noqa: E402
from course.pretrained import load_pretrained  # noqa: E402
from course.speculative import speculative_generate  # noqa: E402
from course.token_data import prepare_data  # noqa: E402
from course.train_config import TrainConfig  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "modern.json"
RUNS = ROOT / "runs" / "modern-grid"
SEEDS = (0, 1, 2)
LONG_TRAIN, LONG_EVAL = 64, 256
UPTRAIN_FRACTION = 0.1
LOAD_EVERY = 25

FULL = {"steps": 1000, "moe_steps": 600, "long_steps": 600, "long_windows": 64, "spec_prompts": 12,
        "spec_tokens": 64, "spec_gammas": [1, 2, 4, 6], "draft_steps": 1000, "decode_context": 1536,
        "decode_tokens": 32, "seeds": list(SEEDS)}
QUICK = {"steps": 12, "moe_steps": 12, "long_steps": 12, "long_windows": 4, "spec_prompts": 2, "spec_tokens": 8,
         "spec_gammas": [1, 2], "draft_steps": 12, "decode_context": 64, "decode_tokens": 4, "seeds": [0]}
DRAFTS = {"tiny": dict(n_layer=1, n_head=2, n_embd=32), "small": dict(n_layer=2, n_head=4, n_embd=64),
          "medium": dict(n_layer=3, n_head=4, n_embd=128)}
MOE_VARIANTS = {
    "dense_active": dict(mlp_hidden=512),  # the MLP each token runs in the MoE: 2 experts of 256
    "moe": dict(n_experts=8, moe_top_k=2, mlp_hidden=256, moe_balance=0.01),
    "moe_no_balance": dict(n_experts=8, moe_top_k=2, mlp_hidden=256, moe_balance=0.0),
    "dense_total": dict(mlp_hidden=2048),  # all 8 experts' width in one MLP
}
LONG_VARIANTS = ("learned", "rope", "alibi")


def plan_keys(grid: dict) -> list[str]:
    """The key of every run of a grid, in the order they run (the results file holds one row per key)."""
    seeds = grid["seeds"]
    keys = [f"blocks/{step}/{s}" for step in BLOCK_STEPS for s in seeds]
    keys += [f"moe/{name}/{s}" for name in MOE_VARIANTS for s in seeds]
    keys += [f"long/{v}/{s}" for v in LONG_VARIANTS for s in seeds]
    keys += [f"gqa/{kind}-{k}/{s}" for k in (2, 1) for s in seeds for kind in ("scratch", "pooled")]
    keys += [f"decode/{k}" for k in (8, 2, 1)]
    keys += [f"spec/draft/{name}" for name in DRAFTS]
    for t in (0.0, 1.0):
        keys += [f"spec/baseline/{t}"] + [f"spec/{name}/{g}/{t}" for name in DRAFTS for g in grid["spec_gammas"]]
    return keys


def machine() -> dict:
    return {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "processor": platform.processor() or platform.machine()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a tiny grid that checks the script")
    ap.add_argument("--out", type=Path, default=None, help="results file (default benchmarks/results/modern.json; "
                                                           "with --quick: _build/modern-quick.json)")
    ap.add_argument("--fresh", action="store_true", help="start over instead of continuing the results file")
    ap.add_argument("--parts", default="blocks,moe,long,gqa,decode,spec", help="which parts to run now")
    args = ap.parse_args(argv)
    grid = QUICK if args.quick else FULL
    out = args.out or (ROOT / "_build" / "modern-quick.json" if args.quick else RESULTS)
    runs_dir = ROOT / "_build" / "modern-quick-runs" if args.quick else RUNS
    runs_dir.mkdir(parents=True, exist_ok=True)

    corpus = tinyshakespeare()
    if corpus.is_fallback and not args.quick:
        print("Tiny Shakespeare is not available: the full grid is only meaningful on it.", file=sys.stderr)
        return 2
    text = corpus.text
    val_text = train_val_split(text, 0.1)[1]
    data = prepare_data(TrainConfig(tokenizer="char"), text)
    vocab = data.tokenizer.vocab_size
    results: dict = {"runs": []}
    if out.is_file() and not args.fresh:
        results = json.loads(out.read_text())
    done = {r["key"] for r in results["runs"]}
    parts = set(args.parts.split(","))
    started = time.perf_counter()

    def save(row: dict) -> None:
        results["runs"].append(row)
        done.add(row["key"])
        results.update(description="chapter 13's grid: benchmarks/modern_grid.py (recipe: course/modern_runs.py)",
                       machine=machine(), corpus=corpus.name, grid=grid)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1) + "\n")
        shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()
                 if k in ("key", "val_bpc", "seconds", "bpc_before", "acceptance", "speedup")}
        print(f"[{time.perf_counter() - started:6.0f} s] {shown}", flush=True)

    seeds = grid["seeds"]
    if "blocks" in parts:
        for step in BLOCK_STEPS:
            for seed in seeds:
                key = f"blocks/{step}/{seed}"
                if key in done:
                    continue
                row, model = train_run(data, val_text, block_config(step, vocab), steps=grid["steps"], seed=seed)
                if step == BLOCK_STEPS[-1]:  # the Llama block: kept for the gqa part's pooling
                    torch.save(model.state_dict(), runs_dir / f"llama-{seed}.pt")
                save({"key": key, "part": "blocks", "variant": step, **row})

    if "moe" in parts:
        base = dict(norm="rmsnorm", positional="rope")  # a GELU MLP (the experts are GELU MLPs), RMSNorm, RoPE
        for name, changes in MOE_VARIANTS.items():
            for seed in seeds:
                key = f"moe/{name}/{seed}"
                if key in done:
                    continue
                loads: list[dict] = []

                def record(trainer, val_loss, loads=loads):  # noqa: ANN001
                    loads.append({"step": trainer.step, "load": expert_loads(trainer.model)})

                config = block_config("rmsnorm", vocab, **{**base, **changes})
                row, model = train_run(data, val_text, config, steps=grid["moe_steps"], seed=seed,
                                       eval_interval=LOAD_EVERY if config.n_experts else 0,
                                       on_eval=record if config.n_experts else None)
                save({"key": key, "part": "moe", "variant": name, **row, "loads": loads})

    if "long" in parts:
        tokens = torch.tensor(data.tokenizer.encode(val_text))
        for variant in LONG_VARIANTS:
            for seed in seeds:
                key = f"long/{variant}/{seed}"
                if key in done:
                    continue
                config = block_config("no_bias", vocab, block_size=LONG_TRAIN, positional=variant)
                row, model = train_run(data, val_text, config, steps=grid["long_steps"], seed=seed, batch_size=32)
                model.eval()
                curves = {}
                n = grid["long_windows"]
                if variant == "learned":
                    curves["trained"] = loss_by_position(model, tokens, LONG_TRAIN, n).tolist()
                else:
                    methods = {"none": ("none", None), "window": ("none", LONG_TRAIN)}
                    if variant == "rope":
                        methods.update(interpolate=("interpolate", None), ntk=("ntk", None))
                    for label, (method, window) in methods.items():
                        longer = extend_context(model, LONG_EVAL, method, window=window)
                        curves[label] = loss_by_position(longer, tokens, LONG_EVAL, n).tolist()
                save({"key": key, "part": "long", "variant": variant, **row, "curves": curves})

    if "gqa" in parts:
        llama = block_config(BLOCK_STEPS[-1], vocab)
        for n_kv in (2, 1):
            for seed in seeds:
                key = f"gqa/scratch-{n_kv}/{seed}"
                if key not in done:
                    row, _ = train_run(data, val_text, block_config(BLOCK_STEPS[-1], vocab, n_kv_head=n_kv),
                                       steps=grid["steps"], seed=seed)
                    save({"key": key, "part": "gqa", "variant": f"scratch-{n_kv}", "n_kv_head": n_kv, **row})
                key = f"gqa/pooled-{n_kv}/{seed}"
                if key in done:
                    continue
                teacher = GPT(llama)
                teacher.load_state_dict(torch.load(runs_dir / f"llama-{seed}.pt"))
                pooled = pool_kv_heads(teacher.eval(), n_kv)
                before = validation_bpc(pooled, data.tokenizer, val_text)[0]
                steps = max(2, round(UPTRAIN_FRACTION * grid["steps"]))
                row, _ = train_run(data, val_text, pooled.config, model=pooled.train(), steps=steps, seed=seed,
                                   lr=1e-3)
                save({"key": key, "part": "gqa", "variant": f"pooled-{n_kv}", "n_kv_head": n_kv, "bpc_before": before,
                      **row})

    if "decode" in parts:
        ctx, new = grid["decode_context"], grid["decode_tokens"]
        for n_kv in (8, 2, 1):
            key = f"decode/{n_kv}"
            if key in done:
                continue
            torch.manual_seed(0)
            config = GPTConfig(vocab_size=vocab, block_size=ctx + new, n_layer=4, n_head=8, n_embd=512,
                               positional="rope", norm="rmsnorm", mlp="swiglu", bias=False, n_kv_head=n_kv)
            model = GPT(config).eval()
            prompt = torch.randint(0, vocab, (1, ctx), generator=torch.Generator().manual_seed(0))
            times = []
            with torch.no_grad():
                for _ in range(3):  # the best of three: the least disturbed by other work on the machine
                    cache = model.new_cache()
                    logits = model(prompt, cache=cache)[0]
                    t0 = time.perf_counter()
                    for _ in range(new):
                        nxt = logits[:, -1:].argmax(-1)
                        logits = model(nxt, cache=cache)[0]
                    times.append((time.perf_counter() - t0) / new)
            save({"key": key, "part": "decode", "n_kv_head": n_kv, "context": ctx, "cache_bytes": cache.nbytes(),
                  "cache_bytes_per_token": cache.nbytes() / cache.length, "ms_per_token": 1000 * min(times),
                  "params": model.num_parameters()})

    if "spec" in parts:
        target, tokenizer = load_pretrained()
        target.eval()
        if tokenizer.encode(val_text[:2000]) != data.tokenizer.encode(val_text[:2000]):
            raise RuntimeError("the shipped model's tokenizer and the grid's differ: drafts would not share its ids.")
        drafts = {}
        for name, shape in DRAFTS.items():
            path = runs_dir / f"draft-{name}.pt"
            config = GPTConfig(vocab_size=vocab, block_size=target.config.block_size, dropout=0.0, **shape)
            key = f"spec/draft/{name}"
            if key not in done or not path.is_file():
                row, model = train_run(data, val_text, config, steps=grid["draft_steps"], seed=0)
                torch.save(model.state_dict(), path)
                if key not in done:
                    save({"key": key, "part": "spec", "variant": f"draft-{name}", **row})
            model = GPT(config)
            model.load_state_dict(torch.load(path))
            drafts[name] = model.eval()
        prompt_len, new = 64, grid["spec_tokens"]
        g = torch.Generator().manual_seed(0)
        tokens = data.tokenizer.encode(val_text)
        starts = torch.randint(0, len(tokens) - prompt_len, (grid["spec_prompts"],), generator=g).tolist()
        prompts = [tokens[s:s + prompt_len] for s in starts]

        def plain(ids: list[int], temperature: float, gen: torch.Generator) -> list[int]:
            seq = list(ids)  # the target alone, re-reading the context each step as speculative_generate does
            with torch.no_grad():
                for _ in range(new):
                    logits = target(torch.tensor([seq]))[0][0, -1]
                    if temperature == 0:
                        seq.append(int(logits.argmax()))
                    else:
                        seq.append(int(torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=gen)))
            return seq

        for temperature in (0.0, 1.0):
            key = f"spec/baseline/{temperature}"
            if key not in done:
                t0 = time.perf_counter()
                for i, p in enumerate(prompts):
                    plain(p, temperature, torch.Generator().manual_seed(i))
                save({"key": key, "part": "spec", "variant": "target alone", "temperature": temperature,
                      "seconds": time.perf_counter() - t0, "tokens": new * len(prompts)})
            base_seconds = next(r["seconds"] for r in results["runs"] if r["key"] == key)
            for name, draft in drafts.items():
                for gamma in grid["spec_gammas"]:
                    key = f"spec/{name}/{gamma}/{temperature}"
                    if key in done:
                        continue
                    t0 = time.perf_counter()
                    per_prompt = []
                    with torch.no_grad():
                        for i, p in enumerate(prompts):
                            _, stats = speculative_generate(target, draft, p, new, gamma=gamma, temperature=temperature,
                                                            generator=torch.Generator().manual_seed(i))
                            per_prompt.append({"drafted": stats.drafted, "accepted": stats.accepted,
                                               "target_calls": stats.target_calls, "emitted": stats.emitted})
                    seconds = time.perf_counter() - t0
                    drafted = sum(r["drafted"] for r in per_prompt)
                    accepted = sum(r["accepted"] for r in per_prompt)
                    calls = sum(r["target_calls"] for r in per_prompt)
                    save({"key": key, "part": "spec", "variant": name, "gamma": gamma, "temperature": temperature,
                          "acceptance": accepted / drafted, "tokens_per_call": new * len(prompts) / calls,
                          "seconds": seconds, "speedup": base_seconds / seconds, "per_prompt": per_prompt,
                          "draft_params": draft.num_parameters(), "target_params": target.num_parameters()})

    results["seconds_this_call"] = time.perf_counter() - started
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"done in {time.perf_counter() - started:.0f} s: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
