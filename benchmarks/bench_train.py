"""Trainer speed and quality: course.train vs a minimal nanoGPT-style loop, side by side in one run.

Both train the configuration of nanoGPT's CPU example on Tiny Shakespeare
(characters; 4 layers, 4 heads, 128 wide, context 64, batch 12, 2,000 steps,
no dropout, AdamW lr 1e-3 with warmup and cosine decay to 1e-4). The reference
is a self-contained plain loop with its own model code, written the way
nanoGPT's train.py does it (random windows stacked per batch, a GPT with fused
SDPA attention). Both are evaluated by the same function on the same 200
validation batches. Also measures the chapter's CPU preset (`cpu_preset`).

With ``--nanogpt DIR`` (a checkout of karpathy/nanoGPT) it also runs nanoGPT's
*own* ``train.py``, in a subprocess, at its README's CPU example (``--device=cpu
--compile=False``, 4 layers, 4 heads, 128 wide, context 64, batch 12, no dropout,
lr 1e-3 -> 1e-4 with its config's warmup, the same number of steps and torch
threads). nanoGPT's ``data/shakespeare_char/prepare.py`` downloads, so the
benchmark writes that folder's ``train.bin``, ``val.bin`` (uint16) and
``meta.pkl`` itself, from the same Tiny Shakespeare text and by prepare.py's
rules (sorted characters; the first ``int(0.9 n)`` characters train), into a
temporary copy of DIR; DIR itself is not touched and no nanoGPT code enters this
repository. nanoGPT evaluates only at its first and last step
(``--eval_interval`` = steps) and saves ``ckpt.pt`` at the last
(``--always_save_checkpoint=True``); that checkpoint is then scored by the
benchmark's own `shared_eval`, on the same 200 validation batches as the other
two, so the three validation losses are comparable.

Timing. ``reference_ms_per_step`` is the plain loop's training time alone;
``ours_ms_per_step`` is `Trainer.train`'s wall time (its logging and its one
1-batch evaluation included) over the steps. nanoGPT's ``ms_per_step`` is the
mean of the per-iteration times its train.py prints (``--log_interval=1``) over
the iterations without an evaluation (all but the first and the last, which also
evaluate and save); its ``wall_seconds`` is the whole subprocess (Python start,
imports, both evaluations, the checkpoint), recorded beside it.

    python benchmarks/bench_train.py            # writes benchmarks/results/train.json
    python benchmarks/bench_train.py --quick    # 200 steps, to try it out (not written)
    python benchmarks/bench_train.py --nanogpt ~/src/nanoGPT --skip-preset
        # adds the "nanogpt" section; --skip-preset keeps the stored "cpu_preset" numbers
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import pickle
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from course.schedule import lr_at  # noqa: E402
from course.token_data import prepare_data  # noqa: E402
from course.train import Trainer  # noqa: E402
from course.train_config import cpu_preset, nanogpt_cpu_config  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "train.json"


# ---------------------------------------------------------------- the reference: a plain nanoGPT-style loop


class RefAttention(nn.Module):
    def __init__(self, d: int, h: int) -> None:
        super().__init__()
        self.h = h
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.c_attn(x).split(d, dim=2)
        q, k, v = (z.view(b, t, self.h, d // self.h).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(b, t, d))


class RefBlock(nn.Module):
    def __init__(self, d: int, h: int) -> None:
        super().__init__()
        self.ln_1, self.attn, self.ln_2 = nn.LayerNorm(d), RefAttention(d, h), nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(approximate="tanh"), nn.Linear(4 * d, d))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class RefGPT(nn.Module):
    def __init__(self, vocab: int, block: int, n_layer: int, n_head: int, d: int) -> None:
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(block, d)
        self.h = nn.ModuleList(RefBlock(d, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.lm_head.weight = self.wte.weight
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
        for block in self.h:  # nanoGPT's scaled init of the projections into the residual stream
            for proj in (block.attn.c_proj, block.mlp[2]):
                nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * n_layer))

    def forward(self, idx, targets=None):
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(t))
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        loss = None if targets is None else F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss


def reference_loop(train_ids: torch.Tensor, vocab: int, config, seed: int = 1337) -> tuple[nn.Module, float]:
    """nanoGPT's loop: random windows, forward, backward, clip, AdamW step; eval outside the timed region."""
    torch.manual_seed(seed)
    m = config.model
    model = RefGPT(vocab, m.block_size, m.n_layer, m.n_head, m.n_embd)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=config.lr, betas=(config.beta1, config.beta2))
    block, batch = m.block_size, config.batch_size

    def get_batch():
        ix = torch.randint(len(train_ids) - block, (batch,))
        x = torch.stack([train_ids[i : i + block] for i in ix])
        y = torch.stack([train_ids[i + 1 : i + 1 + block] for i in ix])
        return x, y

    start = time.perf_counter()
    for step in range(config.max_iters):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, config)
        x, y = get_batch()
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt.step()
    return model, time.perf_counter() - start


@torch.no_grad()
def shared_eval(model: nn.Module, val_ids: torch.Tensor, block: int, batches: int = 200, batch: int = 12) -> float:
    """The same 200 validation batches for every model."""
    model.eval()
    g = torch.Generator().manual_seed(2024)
    total = 0.0
    for _ in range(batches):
        ix = torch.randint(len(val_ids) - block, (batch,), generator=g)
        x = torch.stack([val_ids[i : i + block] for i in ix])
        y = torch.stack([val_ids[i + 1 : i + 1 + block] for i in ix])
        total += float(model(x, y)[1])
    model.train()
    return total / batches


# ---------------------------------------------------------------- nanoGPT's own train.py, in a subprocess

NANOGPT_DATASET = "shakespeare_char"
NANOGPT_ITER = re.compile(r"^iter (\d+): loss ([\d.]+), time ([\d.]+)ms", re.M)
NANOGPT_EVAL = re.compile(r"^step (\d+): train loss ([\d.]+), val loss ([\d.]+)", re.M)


def nanogpt_commit(src: Path, given: str | None) -> str | None:
    """The commit of the nanoGPT checkout: ``given``, else ``git rev-parse HEAD`` in ``src`` (None if not a git checkout)."""
    if given:
        return given
    try:
        out = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def write_nanogpt_data(folder: Path, text: str, tokenizer) -> dict:
    """nanoGPT's data/shakespeare_char files, by its prepare.py's rules, without its download.

    Characters sorted by code point (the course's `CharTokenizer` order, checked),
    the first ``int(0.9 n)`` characters for training, ids as uint16 raw files, and
    meta.pkl with ``vocab_size``, ``itos``, ``stoi``.
    """
    chars = sorted(set(text))
    if list(tokenizer.chars) != chars:
        raise RuntimeError("the course's character vocabulary is not nanoGPT's (sorted characters)")
    stoi = {ch: i for i, ch in enumerate(chars)}
    ids = np.array([stoi[c] for c in text], dtype=np.uint16)
    cut = int(len(text) * 0.9)
    folder.mkdir(parents=True, exist_ok=True)
    ids[:cut].tofile(folder / "train.bin")
    ids[cut:].tofile(folder / "val.bin")
    with open(folder / "meta.pkl", "wb") as f:
        pickle.dump({"vocab_size": len(chars), "itos": dict(enumerate(chars)), "stoi": stoi}, f)
    return {"train_tokens": cut, "val_tokens": len(ids) - cut}


def run_nanogpt(src: Path, text: str, tokenizer, config, steps: int, threads: int, keep: bool = False) -> tuple[dict, nn.Module]:
    """Train with nanoGPT's own train.py in a temporary copy of ``src``; return its timings and its final model."""
    src = src.resolve()
    if not (src / "train.py").is_file() or not (src / "model.py").is_file():
        raise SystemExit(f"--nanogpt {src}: no train.py and model.py there (a checkout of karpathy/nanoGPT?)")
    tmp = Path(tempfile.mkdtemp(prefix="bench_nanogpt_"))
    work = tmp / "nanoGPT"
    shutil.copytree(src, work, ignore=shutil.ignore_patterns(".git", "out*", "*.bin", "*.pkl", "*.pt"))
    data_info = write_nanogpt_data(work / "data" / NANOGPT_DATASET, text, tokenizer)
    m = config.model
    # nanoGPT README's CPU example ("I only have a macbook"), at the benchmark's step count; evaluations only at
    # the first and last iteration; the final checkpoint always saved; float32 said outright (on the CPU it runs
    # without autocast anyway, but its default dtype "float16" would switch on a GradScaler)
    args = [
        "config/train_shakespeare_char.py", "--device=cpu", "--compile=False", "--dtype=float32",
        f"--block_size={m.block_size}", f"--batch_size={config.batch_size}", f"--n_layer={m.n_layer}",
        f"--n_head={m.n_head}", f"--n_embd={m.n_embd}", f"--max_iters={steps}", f"--lr_decay_iters={steps}",
        "--dropout=0.0", "--eval_iters=20", "--log_interval=1", f"--eval_interval={steps}",
        "--always_save_checkpoint=True", "--out_dir=out-bench",
    ]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "train.py", *args], cwd=work, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"nanoGPT's train.py failed ({proc.returncode}); kept {work}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    iters = {int(i): float(ms) for i, _, ms in NANOGPT_ITER.findall(proc.stdout)}
    evals = {int(i): (float(tr), float(va)) for i, tr, va in NANOGPT_EVAL.findall(proc.stdout)}
    timed = [ms for i, ms in iters.items() if i % steps != 0]  # iterations 0 and `steps` also evaluate (and save)
    if len(timed) != steps - 1:
        raise SystemExit(f"expected {steps - 1} timed iterations in nanoGPT's log, found {len(timed)}; kept {work}")

    ckpt = torch.load(work / "out-bench" / "ckpt.pt", map_location="cpu", weights_only=False)
    if ckpt["iter_num"] != steps:
        raise SystemExit(f"nanoGPT's checkpoint is from iteration {ckpt['iter_num']}, not {steps}; kept {work}")
    spec = importlib.util.spec_from_file_location("nanogpt_model", work / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    model = module.GPT(module.GPTConfig(**ckpt["model_args"]))
    model.load_state_dict({k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()})
    used = ckpt["config"]
    if not keep:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print(f"nanoGPT run kept in {work}", flush=True)
    info = {
        "ms_per_step": round(sum(timed) / len(timed), 2),
        "ms_per_step_median": round(float(np.median(timed)), 2),
        "timed_iterations": len(timed),
        "wall_seconds": round(wall, 1),
        "own_eval_at_last_step": {"train_loss": evals[steps][0], "val_loss": evals[steps][1], "eval_iters": used["eval_iters"]},
        "data": data_info,
        "config": {k: used[k] for k in ("n_layer", "n_head", "n_embd", "block_size", "bias", "dropout", "batch_size",
                                        "gradient_accumulation_steps", "max_iters", "learning_rate", "min_lr",
                                        "warmup_iters", "lr_decay_iters", "weight_decay", "beta1", "beta2",
                                        "grad_clip", "dtype", "compile", "device")},
        "command": "python train.py " + " ".join(args),
    }
    return info, model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="200 steps instead of 2,000 (not written to results)")
    parser.add_argument("--nanogpt", type=Path, metavar="DIR", help="a checkout of karpathy/nanoGPT: also run its own train.py")
    parser.add_argument("--nanogpt-commit", metavar="SHA", help="its commit, when DIR is not a git checkout (else: git rev-parse HEAD)")
    parser.add_argument("--keep-nanogpt", action="store_true", help="keep the temporary nanoGPT copy (data, log, ckpt.pt)")
    parser.add_argument("--skip-preset", action="store_true", help="skip the CPU preset run; keep its stored numbers")
    args = parser.parse_args()
    steps = 200 if args.quick else 2000

    config = nanogpt_cpu_config(max_iters=steps, lr_decay_iters=steps, eval_interval=steps, eval_iters=1, progress=False)
    data = prepare_data(config)
    train_ids = torch.from_numpy(data.train.tokens).long()
    val_ids = torch.from_numpy(data.val.tokens).long()
    vocab = data.tokenizer.vocab_size
    threads = torch.get_num_threads()
    print(f"{steps} steps, {threads} threads; nanoGPT CPU configuration", flush=True)

    ref_model, ref_seconds = reference_loop(train_ids, vocab, config)
    ref_val = shared_eval(ref_model, val_ids, config.model.block_size)
    print(f"reference loop : {1000 * ref_seconds / steps:6.1f} ms/step, val loss {ref_val:.4f}", flush=True)

    trainer = Trainer(config, data=data)
    result = trainer.train()
    ours_val = shared_eval(trainer.model, val_ids, config.model.block_size)
    ours_seconds = result.seconds  # includes the trainer's own logging and its one evaluation
    print(f"course.train   : {1000 * ours_seconds / steps:6.1f} ms/step, val loss {ours_val:.4f}", flush=True)

    nanogpt = None
    if args.nanogpt is not None:
        from course.data import tinyshakespeare

        nanogpt, nano_model = run_nanogpt(args.nanogpt, tinyshakespeare().text, data.tokenizer, config, steps, threads,
                                          keep=args.keep_nanogpt)
        nanogpt["val_loss"] = round(shared_eval(nano_model, val_ids, config.model.block_size), 4)
        nanogpt = {"commit": nanogpt_commit(args.nanogpt, args.nanogpt_commit), **nanogpt}
        nanogpt["speed_ratio_ours_vs_nanogpt"] = round(nanogpt["ms_per_step"] / (1000 * ours_seconds / steps), 3)
        print(f"nanoGPT        : {nanogpt['ms_per_step']:6.1f} ms/step, val loss {nanogpt['val_loss']:.4f} "
              f"(its own {nanogpt['wall_seconds']:.0f} s wall)", flush=True)

    old = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    if args.skip_preset:
        preset_section = old.get("cpu_preset")
    else:
        preset = cpu_preset(progress=False) if not args.quick else cpu_preset(max_iters=200, eval_interval=200, progress=False)
        preset_result = Trainer(preset, data=data).train()
        print(f"CPU preset     : {preset_result.seconds:.0f} s, {preset_result.tokens_per_second:,.0f} tokens/s, "
              f"val loss {preset_result.final_val_loss:.4f}", flush=True)
        preset_section = {
            "config": {k: v for k, v in preset.to_dict().items() if k in ("batch_size", "max_iters", "lr", "min_lr", "warmup_iters")} | {"model": preset.model.to_dict()},
            "seconds": round(preset_result.seconds, 1),
            "tokens_per_second": round(preset_result.tokens_per_second),
            "val_loss": round(preset_result.final_val_loss, 4),
        }

    out = {
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": threads, "torch": torch.__version__, "python": platform.python_version()},
        "steps": steps,
        "tokens_per_step": config.batch_size * config.model.block_size,
        "reference_ms_per_step": round(1000 * ref_seconds / steps, 2),
        "ours_ms_per_step": round(1000 * ours_seconds / steps, 2),
        "speed_ratio_ours_vs_reference": round(ref_seconds / ours_seconds, 3),
        "reference_val_loss": round(ref_val, 4),
        "ours_val_loss": round(ours_val, 4),
    }
    if preset_section is not None:
        out["cpu_preset"] = preset_section  # with --skip-preset: the stored numbers, from an earlier run
    if nanogpt is not None:
        out["nanogpt"] = nanogpt
    print(json.dumps(out, indent=2))
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
