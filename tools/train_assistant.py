"""Train and ship the course's assistant (chapter 11; chapter 12 starts from it): `make assistant`.

    python tools/train_assistant.py                 # the shipped run (its minutes are in TRAINING.md)
    python tools/train_assistant.py --steps 20 --out /tmp/assistant-test --per-task 4   # a quick check of the script

* **Start**: the shipped character model (chapter 05, ``course/checkpoints/shakespeare-char``),
  its vocabulary grown by the chat tokenizer's 20 characters and 6 special tokens
  (`course.chat_format.grow_model`: every old row kept bit for bit, the new rows the mean of the old ones).
* **Data**: fresh conversations of the task mixture (`course.assistant_tasks.mixture`, every task equally
  likely), training split only, packed into rows of 256 tokens (`course.chat_data.mixture_rows`), as many
  as the run reads: no conversation is seen twice. The loss is on the assistant's tokens only.
* **Recipe**: `course.train.Trainer` with chapter 07's fine-tuning settings (`course.finetune.finetune_config`):
  AdamW, learning rate ``--lr`` with a short warmup and cosine decay to a tenth, no weight decay, gradient
  clipping at 1.0, float32, dropout off, batches of 16 rows.
* **Measured on the way** (every tenth of the run): the validation loss of the mixture and of each task, and
  exact match per task on a few validation questions (greedy, calculator on). **At the end**: exact match per
  task on ``--per-task`` validation questions, with 95% Wilson intervals, and how often a reply ended its turn.
  The test split is left for chapter 11, which scores it once.
* **Shipped** (``course/checkpoints/assistant-char``): model.safetensors (float32), config.json,
  tokenizer.json (`course.chat_format.ChatTokenizer`), the run's metrics.jsonl, curve.json (the measurements on
  the way), info.json and a generated TRAINING.md.
  ``python -m course.chat --checkpoint course/checkpoints/assistant-char`` talks to it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from course.assistant_tasks import default_tasks  # noqa: E402
from course.chat_data import ROWS_PER_BATCH, assistant_recipe, attach_tokenizer, chat_rows  # noqa: E402
from course.chat_engine import reply  # noqa: E402
from course.chat_format import GROW_INITS, ChatTokenizer, grow_model  # noqa: E402
from course.data import tinyshakespeare  # noqa: E402
from course.device import seed_everything  # noqa: E402
from course.evals import accuracy  # noqa: E402
from course.finetune import batches, set_dropout  # noqa: E402
from course.model import GPT  # noqa: E402
from course.pretrained import SHIPPED_ASSISTANT, load_pretrained  # noqa: E402
from course.sft import IGNORE  # noqa: E402
from course.train import Trainer  # noqa: E402



def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def task_scores(model, tok, tasks, per_task: int, seed: int, split: str = "validation") -> dict[str, dict]:
    """Exact match and turn endings per task on ``per_task`` questions of ``split`` (greedy, calculator on)."""
    out: dict[str, dict] = {}
    if per_task == 0:
        return out
    for name, task in tasks.items():
        outcomes, ended, calls = [], 0, 0
        for i in range(per_task):
            ex = task.make(seed + i, split)
            r = reply(model, tok, ex.prompt, max_new_tokens=160)
            outcomes.append(task.score(r.text, ex))
            ended += r.reason == "end"
            calls += bool(r.tool_calls)
        acc = accuracy(outcomes)
        out[name] = {"correct": acc.correct, "n": acc.total, "low": round(acc.low, 4), "high": round(acc.high, 4),
                     "ended": ended, "tool_calls": calls}
    return out


def task_val_batches(tok, tasks, n: int, block: int) -> dict[str, list]:
    """Fixed validation batches of each task: ``n`` conversations, unpacked, padded to the task's longest."""
    found = {}
    for name, task in tasks.items():
        examples = [task.make(10_000 + i, "validation") for i in range(n)]
        rows = chat_rows(examples, tok, block)
        width = int((rows.y != IGNORE).nonzero()[:, 1].max()) + 1  # trim the padding every row has
        found[name] = batches(rows.x[:, :width], rows.y[:, :width], 64)
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3000, help="optimizer steps of 16 rows of 256 tokens")
    ap.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (cosine decay to a tenth)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", choices=("pretrained", "scratch"), default="pretrained",
                    help="scratch: the same recipe from random weights (the comparison of chapter 11; never shipped)")
    ap.add_argument("--grow-init", choices=GROW_INITS, default="mean",
                    help="how the new embedding rows start (course.chat_format.grow_model; chapter 11 compares them)")
    ap.add_argument("--per-task", type=int, default=100, help="validation questions per task in the final evaluation")
    ap.add_argument("--curve-per-task", type=int, default=12, help="questions per task at every tenth of the run")
    ap.add_argument("--run-dir", type=Path, default=ROOT / "runs" / "assistant-char")
    ap.add_argument("--out", type=Path, default=SHIPPED_ASSISTANT, help="where the shipped checkpoint goes")
    args = ap.parse_args(argv)
    if (args.init, args.grow_init) != ("pretrained", "mean") and args.out.resolve() == SHIPPED_ASSISTANT.resolve():
        ap.error(f"--init {args.init} --grow-init {args.grow_init} trains a comparison model, not the shipped one: "
                 "give it its own --out folder.")
    if args.per_task < 0 or args.curve_per_task < 0 or args.steps < 1:
        ap.error("--steps must be >= 1, --per-task and --curve-per-task >= 0 (0 skips those evaluations).")
    if tinyshakespeare().is_fallback:
        print("Tiny Shakespeare is not available: the shipped assistant must be trained on it.", file=sys.stderr)
        return 2

    seed_everything(args.seed)
    pre = load_pretrained(allow_fallback=False)
    tok = ChatTokenizer.for_shipped_model()
    model = grow_model(pre.model, tok.vocab_size, args.grow_init, seed=args.seed)
    set_dropout(model, 0.0)
    model.config = replace(model.config, dropout=0.0, attn_dropout=0.0)  # what config.json records (the Trainer saves it)
    if args.init == "scratch":  # the same architecture and vocabulary, random weights
        model = GPT(model.config)
    block = model.config.block_size
    tasks = default_tasks()

    t0 = time.perf_counter()
    recipe = assistant_recipe(tok, block, args.steps, args.run_dir, lr=args.lr, seed=args.seed)
    train, config = recipe.train, recipe.config
    n_train = len(train.lengths) + len(train.dropped)
    per_task_val = task_val_batches(tok, tasks, 48, block)
    print(f"training: {train.summary()}; validation: {len(recipe.val):,} rows; {time.perf_counter() - t0:.0f} s",
          flush=True)
    if args.run_dir.exists():
        shutil.rmtree(args.run_dir)
    curve: list[dict] = []

    def measure(trainer: Trainer, val_loss: float) -> None:
        t = time.perf_counter()
        losses = {name: round(trainer.evaluate(b), 4) for name, b in per_task_val.items()}
        scores = task_scores(trainer.model, tok, tasks, args.curve_per_task, seed=20_000)  # eval_mode inside, restored
        curve.append({"step": trainer.step, "val_loss": round(val_loss, 4), "task_val_loss": losses,
                      "exact": {k: v["correct"] / v["n"] for k, v in scores.items()}})
        mean = sum(v["correct"] for v in scores.values()) / max(1, sum(v["n"] for v in scores.values()))
        print(f"step {trainer.step}: val loss {val_loss:.3f}; exact match on {args.curve_per_task} x {len(tasks)} "
              f"questions {mean:.1%} ({time.perf_counter() - t:.0f} s)", flush=True)

    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    trainer = Trainer(config, model=model, sampler=recipe.sampler, val_batches=recipe.val_batches)
    measure(trainer, trainer.evaluate())
    result = trainer.train(on_eval=measure)
    cpu, wall = cpu_seconds() - cpu0, time.perf_counter() - wall0
    if result.interrupted or result.checkpoint is None:
        print("the run did not finish: nothing shipped", file=sys.stderr)
        return 1
    attach_tokenizer(result.checkpoint, tok)

    model = trainer.model.eval()
    t = time.perf_counter()
    final = task_scores(model, tok, tasks, args.per_task, seed=0)
    eval_seconds = time.perf_counter() - t
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        shutil.copy(result.checkpoint / name, out / name)
    shutil.copy(args.run_dir / "metrics.jsonl", out / "metrics.jsonl")
    (out / "curve.json").write_text(json.dumps(curve, indent=0) + "\n")
    correct = sum(v["correct"] for v in final.values())
    total = sum(v["n"] for v in final.values())
    ended = sum(v["ended"] for v in final.values())
    tokens = args.steps * ROWS_PER_BATCH * block
    info = {
        "trained_on": f"CPU, {os.cpu_count()} cores (course.train, float32)",
        "starts_from": ("course/checkpoints/shakespeare-char, grown to the chat tokenizer's vocabulary "
                        f"(new rows: {args.grow_init})"
                        if args.init == "pretrained" else "random weights (--init scratch), the same architecture"),
        "steps": args.steps,
        "lr": args.lr,
        "seed": args.seed,
        "grow_init": args.grow_init,
        "train_conversations": n_train,
        "train_rows": len(train),
        "row_tokens": tokens,
        "trained_tokens_per_row": round(train.trained_tokens / len(train), 1),
        "seconds": round(wall, 1),
        "cpu_seconds": round(cpu),
        "two_core_minutes": round(cpu / 2 / 60, 1),
        "final_val_loss": round(result.final_val_loss, 4),
        "command": " ".join(["python tools/train_assistant.py", f"--steps {args.steps}", f"--lr {args.lr}",
                             f"--seed {args.seed}", f"--per-task {args.per_task}",
                             f"--curve-per-task {args.curve_per_task}"] + (["--init scratch"] if args.init == "scratch" else [])
                            + ([f"--grow-init {args.grow_init}"] if args.grow_init != "mean" else [])),
        "exact_match": final,
        "exact_match_overall": round(correct / total, 4) if total else None,
        "ended_turn": round(ended / total, 4) if total else None,
        "eval_definition": f"{args.per_task} validation questions per task (course.assistant_tasks, seeds 0-"
                           f"{args.per_task - 1}), greedy decoding, calculator on, at most 160 new tokens, "
                           "exact match after course.assistant_tasks.normalize; low/high: 95% Wilson interval",
        "eval_seconds": round(eval_seconds, 1),
        "machine": {"python": platform.python_version(), "torch": torch.__version__},
    }
    (out / "info.json").write_text(json.dumps(info, indent=1) + "\n")
    rows = "\n".join(f"| {name} | {v['correct']}/{v['n']} | {v['low']:.0%}-{v['high']:.0%} | {v['ended']}/{v['n']} "
                     f"| {v['tool_calls']} |" for name, v in final.items())
    c = model.config
    if args.init == "scratch":
        start = (f"a GPT with the assistant's architecture ({c.n_layer} layers, {c.n_head} heads, {c.n_embd} wide, a "
                 f"context of {c.block_size}, {c.vocab_size} ids) from random weights (`--init scratch`: chapter 11's "
                 "comparison, not the shipped assistant), trained")
    else:
        start = (f"the pretrained character model of chapter 05 (`course/checkpoints/shakespeare-char`: {c.n_layer} "
                 f"layers,\n  {c.n_head} heads, {c.n_embd} wide, a context of {c.block_size}), its vocabulary grown from "
                 f"65 to {c.vocab_size} ids by\n  the chat tokenizer (`course.chat_format`: 20 characters the tasks need "
                 "and 6 special tokens; every old row kept,\n  "
                 + ("the new rows the mean of the old ones" if args.grow_init == "mean" else f"the new rows {args.grow_init}")
                 + "), instruction-tuned")
    (out / "TRAINING.md").write_text(f"""# The course's assistant (character level)

Generated by `tools/train_assistant.py` (`make assistant`), which trained it; every number below is from
`info.json`.

- **What:** {start} on the course's task mixture
  (`course.assistant_tasks`: arithmetic with and without the calculator, a follow-up question, spelling, letter
  counts, capitals, comma lists, who speaks a line, the first word of a line, who it is).
- **How:** `course.train.Trainer`, float32, AdamW (lr {args.lr:g}, {config.warmup_iters} warmup steps, cosine decay to
  {config.min_lr:g} at step {args.steps:,}, no weight decay, clipping at {config.grad_clip:g}), dropout off, batches of
  {ROWS_PER_BATCH} rows of {block} tokens packed with conversations ({n_train:,} fresh ones from the training split,
  none seen twice; {info['trained_tokens_per_row']} trained tokens per row: the loss is on the assistant's tokens
  only). `metrics.jsonl` is the run's log; `curve.json` has the validation loss of each task and exact match on
  {args.curve_per_task} questions per task at every tenth of the run.
- **Where:** CPU-trained: {info['cpu_seconds']:,} s of CPU time ({info['two_core_minutes']} minutes of two cores),
  {wall / 60:.0f} minutes of wall time.
- **Result:** validation loss {result.final_val_loss:.3f} nats per trained token (the mixture's validation rows).
  Exact match on {args.per_task} validation questions per task, greedy, calculator on: {correct}/{total}
  ({correct / max(total, 1):.1%}) overall; {ended}/{total} replies ended their turn.

| task | exact match | 95% interval | ended its turn | replies with a calculator call |
|---|---|---|---|---|
{rows}

- **Use:** `python -m course.chat --checkpoint course/checkpoints/assistant-char`, or in Python
  `from course.pretrained import load_assistant; model, tokenizer = load_assistant()`.
""")
    print(json.dumps(info, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
