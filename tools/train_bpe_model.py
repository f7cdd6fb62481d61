"""Train and ship the course's pretrained BPE model (chapter 09), beside the character model of chapter 05.

    python tools/train_bpe_model.py                # about 20 minutes on 2 cores
    python tools/train_bpe_model.py --steps 20 --out /tmp/bpe-test   # a quick check of the script

* **Vocabulary**: the one with the lowest mean validation bits per character in the
  equal-compute tokenizer sweep of ``benchmarks/results/scaling.json`` (chapter 09, section 3),
  unless ``--vocab`` says otherwise. The BPE is trained on the training split.
* **Model and recipe**: the character model's (``course/checkpoints/shakespeare-char/
  config.json``): 6 layers, 6 heads, 192 wide, context 256, dropout 0.1, batches
  of 16, AdamW 2e-3 -> 2e-4, clipping 1.0. Only the tokenizer, the number of steps
  and the warmup (the same fraction of the run) differ.
* **Steps**: as many as it takes to read the same number of characters of training
  text as the character model did (2,800 x 16 x 256), in BPE tokens.
* **Shipped** (``course/checkpoints/shakespeare-bpe``): the weights in bfloat16 (half
  the size; the loss this costs is measured and recorded), config.json,
  tokenizer.json, the run's metrics.jsonl, info.json and a generated TRAINING.md.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from course.data import tinyshakespeare, train_val_split  # noqa: E402
from course.evaluate import validation_bpc, validation_loss  # noqa: E402
from course.pretrained import SHIPPED, SHIPPED_BPE  # noqa: E402
from course.train import Trainer  # noqa: E402
from course.train_config import TrainConfig  # noqa: E402
from course.token_data import prepare_data  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "scaling.json"


def chosen_vocab() -> int:
    runs = [r for r in json.loads(RESULTS.read_text())["runs"] if r["part"] == "vocab_flops" and r["vocab"]]
    means = {v: float(np.mean([r["val_bpc"] for r in runs if r["vocab"] == v])) for v in {r["vocab"] for r in runs}}
    char = [r["val_bpc"] for r in json.loads(RESULTS.read_text())["runs"] if r["part"] == "vocab_flops" and not r["vocab"]]
    print("sweep, mean validation bits per character: char " + (f"{np.mean(char):.4f}, " if char else "")
          + ", ".join(f"bpe-{v} {m:.4f}" for v, m in sorted(means.items())))
    return min(means, key=means.get)


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vocab", type=int, default=None, help="BPE vocabulary size (default: the sweep's best)")
    ap.add_argument("--steps", type=int, default=None, help="training steps (default: the character model's text, in tokens)")
    ap.add_argument("--run-dir", type=Path, default=ROOT / "runs" / "shakespeare-bpe")
    ap.add_argument("--out", type=Path, default=SHIPPED_BPE, help="where the shipped checkpoint goes")
    args = ap.parse_args(argv)

    corpus = tinyshakespeare()
    if corpus.is_fallback:
        print("Tiny Shakespeare is not available: the shipped model must be trained on it.", file=sys.stderr)
        return 2
    vocab = args.vocab or chosen_vocab()
    base = TrainConfig.from_dict(json.loads((SHIPPED / "config.json").read_text()))
    char_chars = base.max_iters * base.batch_size * base.model.block_size
    probe = TrainConfig(tokenizer="bpe", bpe_vocab_size=vocab)
    data = prepare_data(probe)
    train_text = train_val_split(corpus.text, base.val_fraction)[0]
    chars_per_token = len(train_text) / len(data.train)
    steps = args.steps or round(char_chars / chars_per_token / (base.batch_size * base.model.block_size))
    warmup = round(base.warmup_iters * steps / base.max_iters)
    config = TrainConfig.from_dict({
        **base.to_dict(), "tokenizer": "bpe", "bpe_vocab_size": vocab, "max_iters": steps, "lr_decay_iters": steps,
        "warmup_iters": warmup, "eval_interval": max(1, steps // 8), "checkpoint_interval": max(1, steps // 4),
        "sample_interval": max(1, steps // 4), "out_dir": str(args.run_dir), "progress": False, "device": "cpu",
    })
    print(f"bpe-{vocab}: {chars_per_token:.3f} training characters per token; {steps} steps x {config.batch_size} x "
          f"{config.model.block_size} tokens = {steps * config.batch_size * config.model.block_size / 1e6:.2f}M tokens "
          f"(the character model: {char_chars / 1e6:.2f}M characters)")
    if args.run_dir.exists():
        shutil.rmtree(args.run_dir)
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    trainer = Trainer(config, data)
    result = trainer.train()
    cpu, wall = cpu_seconds() - cpu0, time.perf_counter() - wall0
    model = trainer.model.eval()

    text_val = None  # the validation split (validation_bpc's default)
    f32_bpc, f32_nats, _, _ = validation_bpc(model, data.tokenizer, text_val)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_model

    bf16 = type(model)(model.config)
    bf16.load_state_dict(model.state_dict())
    bf16 = bf16.to(torch.bfloat16)
    save_model(bf16, str(out / "model.safetensors"))
    shutil.copy(result.checkpoint / "config.json", out / "config.json")
    shutil.copy(result.checkpoint / "tokenizer.json", out / "tokenizer.json")
    shutil.copy(args.run_dir / "metrics.jsonl", out / "metrics.jsonl")

    from course.pretrained import _load

    shipped, tok, _ = _load(out, "cpu")
    bpc, nats, scored, chars = validation_bpc(shipped, tok)
    val_loss = validation_loss(shipped, tok)
    n_tokens = steps * config.batch_size * config.model.block_size
    info = {
        "trained_on": f"CPU, {os.cpu_count()} cores (course.train, float32; shipped in bfloat16)",
        "steps": steps,
        "seconds": round(wall, 1),
        "cpu_seconds": round(cpu),
        "two_core_minutes": round(cpu / 2 / 60, 1),
        "final_val_loss": round(result.history["val_loss"][-1], 5),
        "final_train_loss": round(result.history["train_loss"][-1], 5),
        "command": "python tools/train_bpe_model.py" + (f" --vocab {args.vocab}" if args.vocab else "")
                   + (f" --steps {args.steps}" if args.steps else ""),
        "vocab_size": vocab,
        "train_tokens": n_tokens,
        "train_chars": round(n_tokens * chars_per_token),
        "train_flops": float(shipped.flops_per_token() * n_tokens),
        "val_loss": round(val_loss, 4),
        "val_bpc": round(bpc, 4),
        "val_bpc_float32": round(f32_bpc, 4),
        "val_tokens_scored": scored,
        "val_chars_scored": chars,
        "val_loss_definition": "course.evaluate.validation_loss / validation_bpc on the shipped (bfloat16) weights: "
                               "the whole validation split (the last 10% of Tiny Shakespeare), every token but the first "
                               "predicted once in non-overlapping windows of 256 tokens, float32, dropout off; "
                               "val_bpc_float32 is the same for the float32 weights at the end of training",
        "machine": {"python": platform.python_version(), "torch": torch.__version__},
    }
    (out / "info.json").write_text(json.dumps(info, indent=1) + "\n")
    c = config.model
    (out / "TRAINING.md").write_text(f"""# The course's pretrained BPE Shakespeare model

Generated by `tools/train_bpe_model.py`, which trained it; every number below is from `info.json`.

- **What:** a GPT (`course.model.GPT`) with the character model's body: {c.n_layer} layers, {c.n_head} heads,
  {c.n_embd}-wide embeddings, a context of {c.block_size} tokens, learned positions, pre-LayerNorm, GELU MLP,
  tied head, dropout {c.dropout} ({shipped.num_parameters():,} parameters), on the course's byte-level BPE
  with {vocab:,} tokens (256 bytes + {vocab - 256:,} merges, `tokenizer.json`), trained on the first 90% of
  Tiny Shakespeare. The vocabulary is the best of the equal-compute tokenizer sweep (chapter 09, section 3).
- **How:** `course.train.Trainer`, float32, AdamW (lr {config.lr:g}, {warmup} warmup steps, cosine decay to
  {config.min_lr:g} at step {steps:,}, weight decay {config.weight_decay:g} on matrices, betas {config.beta1:g}/{config.beta2:g}),
  batches of {config.batch_size} windows of {c.block_size} tokens, gradient clipping at {config.grad_clip:g}:
  the character model's recipe, for as many steps as it takes to read the same {info['train_chars'] / 1e6:.1f}M
  characters of training text ({n_tokens / 1e6:.2f}M tokens). `metrics.jsonl` is the run's full log.
- **Where:** CPU-trained: {info['cpu_seconds']:,} s of CPU time ({info['two_core_minutes']} minutes of two
  cores), {wall / 60:.0f} minutes of wall time.
- **Result:** {bpc:.4f} bits per character on the whole validation split ({val_loss:.4f} nats per token,
  {scored:,} tokens over {chars:,} characters; `course.evaluate.validation_bpc`). The weights ship in
  bfloat16, half the size of float32; in float32, at the end of training, the same measure was {f32_bpc:.4f}.
  The training log's last evaluation (40 random batches) says {info['final_val_loss']:.3f} nats per token.
- **Use:** `from course.pretrained import load_pretrained; model, tokenizer = load_pretrained(tokenizer="bpe")`.
""")
    print(json.dumps(info, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
