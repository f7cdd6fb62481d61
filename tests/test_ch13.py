"""Chapter 13's runs, grid and figures: the block variants, the recipe of a run, the stored grid and its script."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from course.model import GPT
from course.modern_runs import BASE, BLOCK_STEPS, block_config, expert_loads, swiglu_hidden, train_run
from course.tokenizers import CharTokenizer
from course.token_data import Dataset, TokenData

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "modern.json"


def _grid_module():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import modern_grid
    finally:
        sys.path.pop(0)
    return modern_grid


def test_each_block_step_keeps_the_changes_before_it():
    configs = [block_config(s, 65) for s in BLOCK_STEPS]
    shape = [(c.norm, c.mlp, c.positional, c.bias) for c in configs]
    assert shape == [("layernorm", "gelu", "learned", True), ("rmsnorm", "gelu", "learned", True),
                     ("rmsnorm", "swiglu", "learned", True), ("rmsnorm", "swiglu", "rope", True),
                     ("rmsnorm", "swiglu", "rope", False)]
    assert all(c.n_layer == BASE["n_layer"] and c.n_embd == BASE["n_embd"] for c in configs)
    d = BASE["n_embd"]
    assert abs(3 * d * swiglu_hidden(d) - 2 * d * 4 * d) <= 3 * d  # the SwiGLU MLP has a GELU MLP's weights
    assert block_config("no_bias", 65, n_kv_head=2).n_kv_head == 2
    with pytest.raises(ValueError, match="step must be one of"):
        block_config("mamba", 65)


def _tiny_data() -> Dataset:
    text = "to be or not to be, that is the question; " * 60
    tok = CharTokenizer.from_text(text)
    ids = np.asarray(tok.encode(text), dtype=np.int64)
    cut = int(0.9 * len(ids))
    return Dataset(TokenData(ids[:cut]), TokenData(ids[cut:]), tok, "test")


def test_a_run_trains_scores_and_is_deterministic():
    data = _tiny_data()
    val_text = "to be or not to be, that is the question; " * 4
    config = block_config("no_bias", data.tokenizer.vocab_size, n_layer=1, n_embd=32, n_head=2, block_size=16)
    a, model = train_run(data, val_text, config, steps=12, seed=3, batch_size=4, threads=1)
    b, _ = train_run(data, val_text, config, steps=12, seed=3, batch_size=4, threads=1)
    assert a["val_bpc"] == b["val_bpc"] and a["train_loss"] == b["train_loss"]
    assert a["params"] == a["active_params"] == model.num_parameters()
    assert a["val_bpc"] < math.log2(data.tokenizer.vocab_size)  # it learned something
    moe_config = block_config("rmsnorm", data.tokenizer.vocab_size, positional="rope", n_layer=1, n_embd=32, n_head=2,
                              block_size=16, n_experts=4, moe_top_k=1, mlp_hidden=32)
    seen = []
    row, moe = train_run(data, val_text, moe_config, steps=6, seed=0, batch_size=4, threads=1, eval_interval=3,
                         on_eval=lambda trainer, val: seen.append(expert_loads(trainer.model)))
    assert row["active_params"] < row["params"] and len(seen) == 2
    assert all(len(layers) == 1 and math.isclose(sum(layers[0]), 1.0) for layers in seen)


def test_the_stored_grid_is_complete_and_consistent():
    grid = _grid_module()
    stored = json.loads(RESULTS.read_text())
    assert stored["grid"] == grid.FULL, "the grid's settings changed: re-run make modern-grid"
    keys = [r["key"] for r in stored["runs"]]
    assert sorted(keys) == sorted(grid.plan_keys(grid.FULL)), "re-run benchmarks/modern_grid.py"
    for r in stored["runs"]:
        if r["part"] == "blocks":
            with torch.device("meta"):
                assert r["params"] == GPT(block_config(r["variant"], 65)).num_parameters()
            assert r["steps"] == grid.FULL["steps"] and 0.5 < r["val_bpc"] < math.log2(65)
        if r["part"] == "moe":
            assert r["steps"] == grid.FULL["moe_steps"]
            assert (r["active_params"] < r["params"]) == r["variant"].startswith("moe")
            if r["variant"].startswith("moe"):
                assert all(math.isclose(sum(layer), 1.0, rel_tol=1e-6) for e in r["loads"] for layer in e["load"])
        if r["part"] == "long":
            n = 64 if r["variant"] == "learned" else 256
            assert all(len(c) == n for c in r["curves"].values())
        if r["part"] == "gqa" and r["variant"].startswith("pooled"):
            assert r["steps"] == round(grid.UPTRAIN_FRACTION * grid.FULL["steps"])
        if r["part"] == "spec" and "gamma" in r:
            assert 0 <= r["acceptance"] <= 1 and 1 <= r["tokens_per_call"] <= r["gamma"] + 1
    decode = {r["n_kv_head"]: r["cache_bytes"] for r in stored["runs"] if r["part"] == "decode"}
    assert decode[8] == 4 * decode[2] == 8 * decode[1]  # the cache shrinks by n_head / n_kv_head


def test_the_grid_script_runs_and_resumes(tmp_path):
    out = tmp_path / "grid.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "modern_grid.py"), "--quick", "--out", str(out),
           "--parts", "blocks,decode"]
    first = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=tmp_path)
    data = json.loads(out.read_text())
    assert [r["key"] for r in data["runs"]] == [k for k in _grid_module().plan_keys(_grid_module().QUICK)
                                                  if k.startswith(("blocks/", "decode/"))]
    assert first.stdout.count("] {") == len(data["runs"])
    second = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=tmp_path)
    assert "] {" not in second.stdout  # nothing re-run
    assert json.loads(out.read_text())["runs"] == data["runs"]


def test_the_figures():
    from course.plots import modern as P

    fig = P.plot_variants(["a", "b"], [[2.0, 2.1, 2.05], [1.9, 1.95, 2.0]], reference=2.0)
    assert isinstance(fig, Figure) and len(fig.axes[0].patches) == 2 and len(fig.axes[0].collections) == 2
    with pytest.raises(ValueError, match="one list"):
        P.plot_variants(["a"], [[1.0], [2.0]])
    fig = P.plot_expert_load({"x": [([25, 50], [0.5, 0.3])], "y": [([25, 50], [0.9, 1.0])]}, 8)
    assert len(fig.axes[0].lines) == 3
    fig = P.plot_saved_memory([256, 512], {"naive": [1e6, 4e6], "tiled": [2e5, 4e5]})
    assert fig.axes[0].get_xscale() == "log" and len(fig.axes[0].lines) == 2
    fig = P.plot_speculative([1, 2], {"d, greedy": {"tokens_per_call": [1.5, 2.0], "speedup": [1.1, 1.2]}})
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 2
    curves = {"rope": [list(np.linspace(2, 3, 40)), list(np.linspace(2, 3.2, 40))]}
    fig = P.plot_loss_by_position(curves, 20, smooth=4)
    assert len(fig.axes[0].lines) == 2 and len(fig.axes[0].lines[0].get_xdata()) == 37
