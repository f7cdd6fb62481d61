"""Trainer speed and quality: course.train vs a minimal nanoGPT-style loop, side by side in one run.

Both train the configuration of nanoGPT's CPU example on Tiny Shakespeare
(characters; 4 layers, 4 heads, 128 wide, context 64, batch 12, 2,000 steps,
no dropout, AdamW lr 1e-3 with warmup and cosine decay to 1e-4). The reference
is a self-contained plain loop with its own model code, written the way
nanoGPT's train.py does it (random windows stacked per batch, a GPT with fused
SDPA attention). Both are evaluated by the same function on the same 200
validation batches. Also measures the chapter's CPU preset (`cpu_preset`).

    python benchmarks/bench_train.py            # writes benchmarks/results/train.json
    python benchmarks/bench_train.py --quick    # 200 steps, to try it out
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from course.train import Trainer, cpu_preset, lr_at, nanogpt_cpu_config, prepare_data  # noqa: E402

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="200 steps instead of 2,000 (not written to results)")
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

    preset = cpu_preset(progress=False) if not args.quick else cpu_preset(max_iters=200, lr_decay_iters=200, eval_interval=200, progress=False)
    preset_result = Trainer(preset, data=data).train()
    print(f"CPU preset     : {preset_result.seconds:.0f} s, {preset_result.tokens_per_second:,.0f} tokens/s, "
          f"val loss {preset_result.final_val_loss:.4f}", flush=True)

    out = {
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": threads, "torch": torch.__version__, "python": platform.python_version()},
        "steps": steps,
        "tokens_per_step": config.batch_size * config.model.block_size,
        "reference_ms_per_step": round(1000 * ref_seconds / steps, 2),
        "ours_ms_per_step": round(1000 * ours_seconds / steps, 2),
        "speed_ratio_ours_vs_reference": round(ref_seconds / ours_seconds, 3),
        "reference_val_loss": round(ref_val, 4),
        "ours_val_loss": round(ours_val, 4),
        "cpu_preset": {
            "config": {k: v for k, v in preset.to_dict().items() if k in ("batch_size", "max_iters", "lr", "min_lr", "warmup_iters")} | {"model": preset.model.to_dict()},
            "seconds": round(preset_result.seconds, 1),
            "tokens_per_second": round(preset_result.tokens_per_second),
            "val_loss": round(preset_result.final_val_loss, 4),
        },
    }
    print(json.dumps(out, indent=2))
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
