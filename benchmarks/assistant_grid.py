"""The grid of instruction-tuning runs behind chapter 11: `make assistant-grid`.

    python benchmarks/assistant_grid.py            # the full grid (its minutes are in the results file)
    python benchmarks/assistant_grid.py --quick    # a tiny grid into /tmp, to check the script (about 2 minutes)

Every run is `tools/train_assistant.py` (the shipped assistant's recipe: chapter 07's fine-tuning settings on
the task mixture of `course.assistant_tasks`, loss on the assistant's tokens only), with its own seed and output
folder under ``runs/assistant-grid/``. Six parts:

* ``base``: the pretrained character model, grown to the chat vocabulary (new rows: the mean) and **not** trained
  on conversations, prompted in the chat format: exact match per task on 30 validation questions per task (fewer
  than the others: it never ends its turn, so every reply runs to the limit of 160 tokens). Greedy decoding and a
  deterministic model: one evaluation, there is no seed to vary.
* ``grow``: how the new embedding rows start (`course.chat_format.grow_model`: ``mean``, ``normal``, ``zeros``).
  Before any training, the loss of the grown model on Tiny Shakespeare's validation split (old characters only:
  what growing did to the pretrained model); then a short run of each init, three seeds, with the validation loss
  of the mixture every tenth of it.
* ``main``: the recipe from the pretrained model and from random weights (``--init scratch``), three seeds each:
  exact match per task on 100 validation questions per task (greedy, calculator on), turn endings, and the
  validation loss curve of each task.
* ``digits``: arithmetic by the number of digits of both operands (1 to 5; the training mixture has 1-3 for + and
  -, 1-2 for * answered by heart and 2-4 for * answered with the calculator, worded alike): ``add``, ``subtract``,
  and multiplication with the calculator **on** (the engine runs the call) and **off** (the engine never lets the
  model open a call: it must answer by itself). For every model of ``main`` and the shipped assistant.
* ``long``: the shipped assistant's own recipe (3,000 steps, the length at which it learned to use the calculator)
  with seeds 1 and 2 (seed 0 is the shipped assistant): exact match per task, the curve, and ``digits``, so the
  calculator's effect is measured over three seeds. Its plan is ``LONG``, kept apart from ``FULL``.
* ``test``: the test split, scored once, at the end, for every model of ``main`` and the shipped assistant.

Results go to ``benchmarks/results/assistant.json`` after every part of every run, so an interrupted grid continues
where it stopped (``--fresh`` starts over). Chapter 11 reads the file; it trains only a short run live.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import torch  # noqa: E402

import train_assistant  # noqa: E402  (tools/train_assistant.py)
from course.assistant_tasks import Arithmetic, default_tasks  # noqa: E402
from course.chat_engine import reply  # noqa: E402
from course.chat_format import GROW_INITS, ChatTokenizer, grow_model  # noqa: E402
from course.checkpoint import load_model, load_tokenizer  # noqa: E402
from course.data import tinyshakespeare, validation_text  # noqa: E402
from course.device import seed_everything  # noqa: E402
from course.evals import accuracy  # noqa: E402
from course.evaluate import validation_loss  # noqa: E402
from course.pretrained import SHIPPED_ASSISTANT, load_pretrained  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "assistant.json"
FULL = {
    "seeds": [0, 1, 2],
    "main_steps": 600,
    "main_per_task": 100,
    "base_per_task": 30,  # the base model never ends its turn: each reply runs to 160 tokens
    "curve_per_task": 4,
    "grow_steps": 60,
    "digits": [1, 2, 3, 4, 5],
    "digit_questions": 30,
    "base_digit_questions": 10,
    "test_per_task": 100,
    "run_dir": "runs/assistant-grid",  # relative to the repository: the results file must not name a machine's path
}
LONG = {  # the shipped assistant's recipe (3,000 steps) with two more seeds: seed 0 *is* the shipped assistant
    "seeds": [1, 2],
    "steps": 3000,
    "per_task": 100,
    "curve_per_task": 12,
}
QUICK = {**FULL, "seeds": [0], "main_steps": 4, "main_per_task": 2, "base_per_task": 1, "curve_per_task": 0,
         "grow_steps": 2, "digits": [1, 2], "digit_questions": 2, "base_digit_questions": 1, "test_per_task": 2, "run_dir": "/tmp/assistant-grid-quick"}
DIGIT_CELLS = {  # name: (operation, the multiply_tool task's reference reply (a call; the same wording), calculator allowed)
    "add": ("+", False, True),
    "subtract": ("-", False, True),
    "multiply_tool_on": ("*", True, True),
    "multiply_tool_off": ("*", True, False),
}


def save(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    tmp.replace(path)


def load_assistant_from(folder: Path):
    model, _ = load_model(folder, device="cpu")
    return model.float().eval(), load_tokenizer(folder)


def digit_scores(model, tok, digits: list[int], n: int) -> dict[str, dict[str, dict]]:
    """Exact match of each `DIGIT_CELLS` cell at each number of digits, on ``n`` validation questions (greedy)."""
    out: dict[str, dict[str, dict]] = {}
    for cell, (op, phrasing, tools) in DIGIT_CELLS.items():
        out[cell] = {}
        for d in digits:
            task = Arithmetic(op, d, tool=phrasing)
            outcomes, calls, items = [], 0, set()
            for i in range(n):
                ex = task.make(30_000 + i, "validation")
                r = reply(model, tok, ex.prompt, max_new_tokens=160, tools=tools)
                outcomes.append(task.score(r.text, ex))
                calls += bool(r.tool_calls)
                items.add(ex.key)
            acc = accuracy(outcomes)
            out[cell][str(d)] = {"correct": acc.correct, "n": acc.total, "low": round(acc.low, 4),
                                 "high": round(acc.high, 4), "tool_calls": calls, "distinct_items": len(items)}
    return out


def train(name: str, cfg: dict, argv: list[str]) -> Path:
    """One run of tools/train_assistant.py into runs/assistant-grid/<name>/out (its run folder beside it)."""
    base = ROOT / cfg["run_dir"] / name
    out = base / "out"
    if out.exists():
        shutil.rmtree(out)
    code = train_assistant.main(argv + ["--run-dir", str(base / "run"), "--out", str(out)])
    if code != 0:
        raise SystemExit(f"{name}: tools/train_assistant.py failed with exit code {code}")
    shutil.rmtree(base / "run", ignore_errors=True)  # its checkpoints: the model is in out/
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a tiny grid into /tmp: checks the script, nothing else")
    ap.add_argument("--fresh", action="store_true", help="start over instead of continuing the results file")
    ap.add_argument("--out", type=Path, default=None, help="results file (default benchmarks/results/assistant.json)")
    args = ap.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    path = args.out or (Path("/tmp/assistant-grid-quick.json") if args.quick else RESULTS)
    if tinyshakespeare().is_fallback:
        print("Tiny Shakespeare is not available: the grid must run on it.", file=sys.stderr)
        return 2
    results = {} if args.fresh or not path.exists() else json.loads(path.read_text())
    if results.get("config") not in (None, cfg):
        print(f"{path} was made with another plan: continuing would mix two grids. Use --fresh.", file=sys.stderr)
        return 2
    results["config"] = cfg
    results.setdefault("seconds", {})
    results["machine"] = {"cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
                          "threads": torch.get_num_threads()}
    seeds, t_all = cfg["seeds"], time.perf_counter()

    def timed(key: str, start: float) -> None:
        results["seconds"][key] = round(time.perf_counter() - start, 1)
        save(results, path)

    pre = load_pretrained(allow_fallback=False)
    tok = ChatTokenizer.for_shipped_model()
    tasks = default_tasks()

    if "base" not in results:  # the pretrained model in the chat format, before any instruction tuning
        t = time.perf_counter()
        seed_everything(0)
        base = grow_model(pre.model, tok.vocab_size, "mean").eval()
        results["base"] = {
            "validation": train_assistant.task_scores(base, tok, tasks, cfg["base_per_task"], seed=0),
            "digits": digit_scores(base, tok, cfg["digits"], cfg["base_digit_questions"]),
        }
        timed("base", t)

    grow = results.setdefault("grow", {"shakespeare_loss": {}, "runs": {}})
    if not grow["shakespeare_loss"]:  # what growing does to the pretrained model, before any training
        text = validation_text(pre.tokenizer)
        losses = {"before": validation_loss(pre.model, pre.tokenizer, text)}
        for init in GROW_INITS:
            for seed in seeds if init == "normal" else seeds[:1]:
                grown = grow_model(pre.model, tok.vocab_size, init, seed=seed).eval()
                losses[f"{init}/{seed}"] = validation_loss(grown, tok, text)
        grow["shakespeare_loss"] = {k: round(v, 5) for k, v in losses.items()}
        save(results, path)
    for init in GROW_INITS:
        for seed in seeds:
            key = f"{init}/{seed}"
            if key in grow["runs"]:
                continue
            t = time.perf_counter()
            out = train(f"grow-{init}-{seed}", cfg, ["--steps", str(cfg["grow_steps"]), "--seed", str(seed),
                                                     "--grow-init", init, "--per-task", "0", "--curve-per-task", "0"])
            curve = json.loads((out / "curve.json").read_text())
            grow["runs"][key] = [{"step": c["step"], "val_loss": c["val_loss"]} for c in curve]
            timed(f"grow/{key}", t)

    main_runs = results.setdefault("main", {})
    for init in ("pretrained", "scratch"):
        for seed in seeds:
            key = f"{init}/{seed}"
            if key in main_runs:
                continue
            t = time.perf_counter()
            out = train(f"{init}-{seed}", cfg, ["--steps", str(cfg["main_steps"]), "--seed", str(seed), "--init", init,
                                                "--per-task", str(cfg["main_per_task"]),
                                                "--curve-per-task", str(cfg["curve_per_task"])])
            info = json.loads((out / "info.json").read_text())
            curve = json.loads((out / "curve.json").read_text())
            model, mtok = load_assistant_from(out)
            main_runs[key] = {
                "validation": info["exact_match"],
                "final_val_loss": info["final_val_loss"],
                "cpu_seconds": info["cpu_seconds"],
                "curve": [{k: c[k] for k in ("step", "val_loss", "task_val_loss")} for c in curve],
                "digits": digit_scores(model, mtok, cfg["digits"], cfg["digit_questions"]),
            }
            timed(f"main/{key}", t)

    if "shipped_digits" not in results:
        t = time.perf_counter()
        model, mtok = load_assistant_from(SHIPPED_ASSISTANT)
        results["shipped_digits"] = digit_scores(model, mtok, cfg["digits"], cfg["digit_questions"])
        timed("shipped_digits", t)

    if not args.quick:  # the shipped recipe's length, two more seeds (about 34 minutes each); --quick skips it
        long = results.setdefault("long", {"config": LONG, "runs": {}})
        if long["config"] != LONG:
            print(f"{path}'s long runs were made with another plan. Use --fresh.", file=sys.stderr)
            return 2
        for seed in LONG["seeds"]:
            key = str(seed)
            if key in long["runs"]:
                continue
            t = time.perf_counter()
            out = train(f"long-{seed}", cfg, ["--steps", str(LONG["steps"]), "--seed", str(seed),
                                              "--per-task", str(LONG["per_task"]),
                                              "--curve-per-task", str(LONG["curve_per_task"])])
            info = json.loads((out / "info.json").read_text())
            curve = json.loads((out / "curve.json").read_text())
            model, mtok = load_assistant_from(out)
            long["runs"][key] = {
                "validation": info["exact_match"],
                "final_val_loss": info["final_val_loss"],
                "cpu_seconds": info["cpu_seconds"],
                "curve": curve,
                "digits": digit_scores(model, mtok, cfg["digits"], cfg["digit_questions"]),
            }
            timed(f"long/{key}", t)

    test = results.setdefault("test", {})  # the test split: once, at the very end
    for key in [*main_runs, "shipped"]:
        if key in test:
            continue
        t = time.perf_counter()
        if key == "shipped":
            folder = SHIPPED_ASSISTANT
        else:
            init, seed = key.split("/")
            folder = ROOT / cfg["run_dir"] / f"{init}-{seed}" / "out"
        model, mtok = load_assistant_from(folder)
        test[key] = train_assistant.task_scores(model, mtok, default_tasks(), cfg["test_per_task"], seed=0,
                                                split="test")
        timed(f"test/{key}", t)
    results["total_seconds_this_call"] = round(time.perf_counter() - t_all, 1)
    save(results, path)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
