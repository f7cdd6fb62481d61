"""Chapter 04 extras: the attention benchmark's memory measurement, the figures, the checks' diagnoses,
and RMSNorm's precision (a fix made for the chapter)."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from course.checks import ExerciseFailed
from course.checks.ch04 import check_block_forward, check_count_parameters, check_future_leak
from course.model import GPT, GPTConfig, RMSNorm
from course.plots.transformer import attention_cost_figure, grad_norms_figure, parameter_shares_figure
from solutions.ch04_transformer_pytorch import block_forward, count_parameters, future_leak

ROOT = Path(__file__).resolve().parent.parent


def _bench():
    spec = importlib.util.spec_from_file_location("bench_attention", ROOT / "benchmarks" / "bench_attention.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- benchmark


def test_cpu_peak_bytes_replays_allocations_and_frees():
    bench = _bench()

    def alloc_free_alloc():
        a = torch.empty(1000, dtype=torch.uint8)
        b = torch.empty(500, dtype=torch.uint8)
        del a
        c = torch.empty(300, dtype=torch.uint8)  # fits in the room a left: the peak stays 1500
        return b, c

    peak, _ = bench.cpu_peak_bytes(alloc_free_alloc)
    assert peak == 1500


def test_naive_attention_memory_is_quadratic_and_sdpa_is_not():
    bench = _bench()
    q = torch.randn(1, 2, 256, 16)
    naive, kernels = bench.cpu_peak_bytes(lambda: bench.METHODS["naive"](q, q, q))
    fused, fused_kernels = bench.cpu_peak_bytes(lambda: bench.METHODS["sdpa"](q, q, q))
    one_matrix = 2 * 256 * 256 * 4
    assert naive >= 2 * one_matrix  # masked scores and weights are alive at once
    assert fused < one_matrix / 4
    assert "aten::bmm" in kernels and any("scaled_dot_product" in k for k in fused_kernels)
    assert torch.allclose(bench.METHODS["naive"](q, q, q), F.scaled_dot_product_attention(q, q, q, is_causal=True), atol=1e-6)


def test_results_file_is_consistent():
    path = ROOT / "benchmarks" / "results" / "attention.json"
    if not path.is_file():
        pytest.skip("run benchmarks/bench_attention.py first")
    result = json.loads(path.read_text())
    rows = result["rows"]
    assert {r["method"] for r in rows} == {"naive", "sdpa"}
    shape = result["shape"]
    for r in rows:
        itemsize = 4 if r["dtype"] == "float32" else 2
        assert r["weights_bytes"] == shape["batch"] * shape["heads"] * r["seq_len"] ** 2 * itemsize
        assert r["output_bytes"] == shape["batch"] * shape["heads"] * r["seq_len"] * shape["head_dim"] * itemsize
        assert r["time_ms"] > 0 and r["peak_bytes"] > 0


# ----------------------------------------------------------------------------- figures


def test_figures_are_figures_and_reject_bad_input():
    rows = [
        dict(device="cpu", method=m, seq_len=t, time_ms=t / 100 * (2 if m == "naive" else 1),
             peak_bytes=(t * t if m == "naive" else t) * 8, weights_bytes=t * t * 4)
        for t in (128, 256) for m in ("naive", "sdpa")
    ]
    fig = attention_cost_figure(rows)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    with pytest.raises(ValueError, match="lacks"):
        attention_cost_figure([dict(device="cpu")])
    with pytest.raises(ValueError, match="at least one"):
        attention_cost_figure([])
    fig2 = grad_norms_figure({"pre-norm": [1.0, 0.9], "post-norm": [2.0, 0.1]})
    assert len(fig2.axes[0].lines) == 2
    with pytest.raises(ValueError, match="one per layer"):
        grad_norms_figure({"pre-norm": []})
    fig3 = parameter_shares_figure({"a": 10, "b": 30})
    assert len(fig3.axes[0].patches) == 2
    with pytest.raises(ValueError, match="negative"):
        parameter_shares_figure({"a": -1})
    plt.close("all")


# ----------------------------------------------------------------------------- model fix


def test_rmsnorm_keeps_float64_and_computes_half_precision_in_float32():
    torch.manual_seed(0)
    norm = RMSNorm(16).double()
    x = torch.randn(3, 16, dtype=torch.float64)
    expected = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5)
    assert (norm(x) - expected).abs().max() < 1e-14  # was about 1e-7: computed in float32
    half = RMSNorm(16).to(torch.bfloat16)
    y = half(x.to(torch.bfloat16))
    assert y.dtype == torch.bfloat16 and torch.allclose(y.double(), expected, atol=2e-2)
    fp16 = RMSNorm(16).to(torch.float16)
    big = torch.full((1, 16), 300.0, dtype=torch.float16)  # 300² = 90,000 is inf in float16, fine in float32
    assert torch.isinf(big.pow(2)).all() and torch.allclose(fp16(big).float(), torch.ones(1, 16), atol=1e-3)


# ----------------------------------------------------------------------------- checks


def test_solutions_pass():
    check_block_forward(block_forward)
    check_future_leak(future_leak)
    check_count_parameters(count_parameters)


def _fails_with(check, fn, pattern: str) -> None:
    with pytest.raises(ExerciseFailed, match=pattern):
        check(fn)


def test_block_check_names_classic_mistakes():
    _fails_with(check_block_forward, lambda x, n1, a, n2, m: n2((h := n1(x + a(x))) + m(h)), "post-norm")
    _fails_with(check_block_forward, lambda x, n1, a, n2, m: (h := a(n1(x))) + m(n2(h)), "no residual connection around the attention")
    _fails_with(check_block_forward, lambda x, n1, a, n2, m: (h := x + a(n2(x))) + m(n1(h)), "swapped")
    _fails_with(check_block_forward, lambda x, n1, a, n2, m: x + a(n1(x)) + m(n2(x)), "MLP saw the block's input")

    def in_place(x, n1, a, n2, m):
        x += a(n1(x))
        return x + m(n2(x))

    _fails_with(check_block_forward, in_place, "in place")


def test_leak_check_names_classic_mistakes():
    def no_change(model, idx, t, vocab):
        return (model(idx)[:, :t] - model(idx.clone())[:, :t]).abs().max().item() if t else 0.0

    def includes_t(model, idx, t, vocab):
        c = idx.clone()
        c[:, t] = (c[:, t] + 1) % vocab
        return (model(c)[:, : t + 1] - model(idx)[:, : t + 1]).abs().max().item()

    def misses_t_minus_1(model, idx, t, vocab):
        c = idx.clone()
        c[:, t] = (c[:, t] + 1) % vocab
        return (model(c)[:, : t - 1] - model(idx)[:, : t - 1]).abs().max().item() if t > 1 else 0.0

    def mutates(model, idx, t, vocab):
        before = model(idx).clone()
        idx[:, t] = (idx[:, t] + 1) % vocab
        return (model(idx)[:, :t] - before[:, :t]).abs().max().item() if t else 0.0

    _fails_with(check_future_leak, no_change, "leak of 0")
    _fails_with(check_future_leak, includes_t, "only the outputs at positions before t")
    _fails_with(check_future_leak, misses_t_minus_1, "including t - 1")
    _fails_with(check_future_leak, mutates, "in place")


def test_count_check_names_classic_mistakes():
    _fails_with(check_count_parameters, lambda c: count_parameters(c) + (c.vocab_size * c.n_embd if c.tie_weights else 0),
                "counted twice")
    _fails_with(check_count_parameters, lambda c: count_parameters(replace(c, positional="learned")), "no parameters")
    _fails_with(check_count_parameters, lambda c: count_parameters(replace(c, norm="layernorm")), "RMSNorm has a weight and no bias")
    _fails_with(check_count_parameters, lambda c: count_parameters(replace(c, mlp="gelu", mlp_hidden=c.hidden)),
                "three matrices")
    _fails_with(check_count_parameters, lambda c: float(count_parameters(c)), "must return an int")


def test_count_solution_matches_models_beyond_the_check():
    for kw in (dict(n_layer=1, n_embd=8, n_head=2, mlp_hidden=20, mlp="swiglu", bias=False),
               dict(positional="sinusoidal", norm="rmsnorm", tie_weights=False)):
        c = GPTConfig(**{**dict(vocab_size=17, block_size=9, n_layer=2, n_head=2, n_embd=16), **kw})
        assert count_parameters(c) == GPT(c).num_parameters()
