"""course.quantize and course.prune (chapter 08): error bounds, int8/int4 layers vs float, pruning masks that stay."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from course.model import GPT, GPTConfig
from course.prune import MaskKeeper, apply_masks, magnitude_masks, prunable_weights, sparsity_report
from course.quantize import (
    Int4Linear,
    Int8Linear,
    dequantize_int4,
    dequantize_int8,
    pack_int4,
    quantize_int4,
    quantize_int8,
    quantize_model,
    serialized_bytes,
    unpack_int4,
)


def tiny_gpt(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=40, block_size=16, n_layer=2, n_head=2, n_embd=32))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 8), st.integers(1, 40), st.floats(1e-4, 1e3), st.integers(0, 10_000))
def test_int8_round_trip_error_is_at_most_half_a_step(rows, cols, magnitude, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=g) * magnitude
    q, scale = quantize_int8(w)
    assert q.dtype == torch.int8 and scale.shape == (rows, 1)
    assert int(q.abs().max()) <= 127
    err = (dequantize_int8(q, scale) - w).abs()
    assert bool((err <= scale / 2 * (1 + 1e-5) + 1e-12).all())
    # the largest weight of every row is represented exactly by ±127
    assert torch.equal(q.abs().amax(dim=1), torch.full((rows,), 127, dtype=torch.int8))


def test_int8_is_per_channel_and_symmetric():
    w = torch.tensor([[0.0, 1.0, -2.0], [0.0, 100.0, 50.0], [0.0, 0.0, 0.0]])
    q, scale = quantize_int8(w)
    assert torch.allclose(scale[:2, 0], torch.tensor([2.0 / 127, 100.0 / 127]))
    assert torch.equal(q[:, 0], torch.zeros(3, dtype=torch.int8)), "zero must map to zero"
    assert torch.equal(q[2], torch.zeros(3, dtype=torch.int8)) and scale[2, 0] == 1.0, "an all-zero row stays zero"
    assert torch.equal(q[0], torch.tensor([0, 64, -127], dtype=torch.int8))  # 1 / (2/127) = 63.5 rounds to 64


def test_int4_packing_round_trips_every_value():
    q = torch.arange(-8, 8, dtype=torch.int8).repeat(3, 2)
    packed = pack_int4(q)
    assert packed.dtype == torch.uint8 and packed.shape == (3, q.shape[1] // 2)
    assert torch.equal(unpack_int4(packed), q)


@pytest.mark.parametrize("group_size", [8, 32])
def test_int4_groupwise_error_bound(group_size):
    w = torch.randn(16, 64, generator=torch.Generator().manual_seed(1))
    packed, scale = quantize_int4(w, group_size)
    assert scale.shape == (16, 64 // group_size)
    deq = dequantize_int4(packed, scale, group_size)
    per_weight_scale = scale.repeat_interleave(group_size, dim=1)
    assert bool(((deq - w).abs() <= per_weight_scale / 2 + 1e-6).all())
    # smaller groups fit the data better
    if group_size == 8:
        coarse = dequantize_int4(*quantize_int4(w, 64), 64)
        assert (deq - w).pow(2).mean() < (coarse - w).pow(2).mean()


def test_quantizers_reject_bad_input():
    with pytest.raises(ValueError, match="2-D"):
        quantize_int8(torch.randn(3))
    with pytest.raises(TypeError, match="floating point"):
        quantize_int8(torch.ones(2, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="multiple of group_size"):
        quantize_int4(torch.randn(4, 30), 32)
    with pytest.raises(TypeError, match="int8"):
        dequantize_int8(torch.ones(2, 2), torch.ones(2, 1))
    with pytest.raises(ValueError, match="bits"):
        quantize_model(tiny_gpt(), bits=3)


@pytest.mark.parametrize("bias", [True, False])
def test_int8_linear_matches_float_layer_with_dequantized_weights(bias):
    torch.manual_seed(0)
    lin = nn.Linear(48, 24, bias=bias)
    qlin = Int8Linear.from_linear(lin)
    x = torch.randn(5, 7, 48)
    q, scale = quantize_int8(lin.weight)
    reference = nn.functional.linear(x, dequantize_int8(q, scale), lin.bias)
    assert torch.allclose(qlin(x), reference, atol=1e-5, rtol=1e-5)
    # and close to the original float layer: the error is bounded by |x|·(scale/2) summed over inputs
    bound = x.abs() @ (scale / 2).expand_as(lin.weight).T
    assert bool(((qlin(x) - lin(x)).abs() <= bound + 1e-5).all())


def test_int4_linear_matches_dequantized_weights():
    torch.manual_seed(0)
    lin = nn.Linear(64, 16)
    qlin = Int4Linear.from_linear(lin, group_size=16)
    x = torch.randn(3, 64)
    expected = nn.functional.linear(x, dequantize_int4(*quantize_int4(lin.weight, 16), 16), lin.bias)
    assert torch.allclose(qlin(x), expected, atol=1e-5)


def test_quantize_model_swaps_linears_keeps_tied_head_and_shrinks():
    model = tiny_gpt().eval()
    q8 = quantize_model(model, bits=8)
    q4 = quantize_model(model, bits=4, group_size=16)
    assert isinstance(q8.blocks[0].attn.qkv, Int8Linear) and isinstance(q4.blocks[1].mlp.proj, Int4Linear)
    assert isinstance(q8.head, nn.Linear) and q8.head.weight is q8.tok_emb.weight, "the tied head stays float and tied"
    assert isinstance(model.blocks[0].attn.qkv, nn.Linear), "the original model is not modified"
    assert serialized_bytes(q4) < serialized_bytes(q8) < serialized_bytes(model)
    x = torch.randint(0, 40, (2, 16))
    with torch.no_grad():
        ref, _ = model(x)
        out, _ = q8(x)
    assert (out - ref).abs().max() < 0.05 * ref.abs().max()


def test_int8_layer_is_a_quarter_of_the_float_layer_plus_its_scales():
    torch.manual_seed(0)
    lin = nn.Linear(256, 512)
    qlin = Int8Linear.from_linear(lin)
    assert qlin.qweight.dtype == torch.int8 and qlin.qweight.numel() == lin.weight.numel()
    payload = qlin.qweight.numel() * 1 + (qlin.scale.numel() + qlin.bias.numel()) * 4
    assert payload == lin.weight.numel() + 2 * 512 * 4
    float_bytes, int8_bytes = serialized_bytes(lin), serialized_bytes(qlin)
    assert 0.25 < int8_bytes / float_bytes < 0.28, (int8_bytes, float_bytes)  # 1 byte instead of 4, plus scales and headers


def test_int8_model_logits_agree_with_float32_and_no_warning_is_raised():
    model = tiny_gpt(1).eval()
    x = torch.randint(0, 40, (3, 16), generator=torch.Generator().manual_seed(2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the course's int8 path uses no deprecated API
        q8 = quantize_model(model, bits=8)
        with torch.no_grad():
            ref, _ = model(x)
            out, _ = q8(x)
    # every weight moves by at most half its row's step (max|w| / 254): the logits stay within a small bound
    assert (out - ref).abs().max() < 0.02 * ref.abs().max()
    assert (out.argmax(-1) == ref.argmax(-1)).float().mean() >= 0.9  # the predicted next token rarely changes
    ratio = serialized_bytes(q8) / serialized_bytes(model)
    assert ratio < 0.6, ratio  # the linear layers shrink 4x; the tied embedding/head and the norms stay float32


def _bench_quantize():
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_quantize.py"
    spec = importlib.util.spec_from_file_location("bench_quantize", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_fused_kernel_computes_the_same_layer_as_ours():
    bench = _bench_quantize()
    torch.manual_seed(0)
    lin = nn.Linear(64, 48)
    ours = Int8Linear.from_linear(lin)
    fused, how = bench.fused_int8(ours)
    assert isinstance(how, str) and how
    if fused is None:
        pytest.skip(how)
    x = torch.randn(2, 5, 64)
    with torch.no_grad():
        assert torch.allclose(fused(x), ours(x), atol=1e-4, rtol=1e-4)
    assert serialized_bytes(fused) <= serialized_bytes(ours) + 64


@pytest.mark.parametrize("scope", ["global", "layer"])
@pytest.mark.parametrize("sparsity", [0.25, 0.5, 0.75])
def test_magnitude_masks_remove_the_smallest_weights(scope, sparsity):
    model = tiny_gpt()
    masks = magnitude_masks(model, sparsity, scope)
    weights = {n: w.detach() for n, w in prunable_weights(model).items()}
    assert set(masks) == set(weights) and "head.weight" not in masks, "the tied head/embedding is not pruned"
    total = sum(m.numel() for m in masks.values())
    dropped = sum(int((~m).sum()) for m in masks.values())
    assert abs(dropped - sparsity * total) <= len(masks)
    if scope == "layer":
        for name, m in masks.items():
            assert abs(float((~m).float().mean()) - sparsity) < 0.01, name
        for name, m in masks.items():  # every dropped weight is no larger than every kept one, per layer
            w = weights[name].abs()
            assert float(w[~m].max()) <= float(w[m].min())
    else:
        all_w = torch.cat([weights[n].abs().flatten() for n in masks])
        all_m = torch.cat([masks[n].flatten() for n in masks])
        assert float(all_w[~all_m].max()) <= float(all_w[all_m].min())
    apply_masks(model, masks)
    assert abs(sparsity_report(model)["total"] - sparsity) < 0.01


def test_pruned_weights_stay_zero_through_training():
    from course.train import Trainer
    from course.train_config import TrainConfig

    model = tiny_gpt()
    masks = magnitude_masks(model, 0.5, "global")

    class Sampler:
        generator = torch.Generator().manual_seed(0)

        def step_batches(self, micro_batch, grad_accum, world_size=1, rank=0):
            x = torch.randint(0, 40, (micro_batch, 16), generator=self.generator)
            return [(x, torch.roll(x, -1, dims=1))] * grad_accum

    x = torch.randint(0, 40, (4, 16), generator=torch.Generator().manual_seed(1))
    config = TrainConfig(model=model.config, batch_size=4, max_iters=15, lr=1e-2, min_lr=1e-3, warmup_iters=1,
                         eval_interval=15, eval_iters=1, progress=False, weight_decay=0.1)
    trainer = Trainer(config, model=model, sampler=Sampler(), val_batches=[(x, x)])
    # a step without the keeper first would be the bug: build momentum, then prune
    keeper = MaskKeeper(model, masks).attach(trainer.optimizer)
    before = {n: w.detach().clone() for n, w in prunable_weights(model).items()}
    trainer.train()
    for name, w in prunable_weights(model).items():
        assert bool((w[~masks[name]] == 0).all()), f"{name}: a pruned weight moved away from zero"
        assert not torch.equal(w[masks[name]], before[name][masks[name]]), f"{name}: kept weights must still train"
    keeper.remove()
    trainer.train(20)
    assert any(bool((w[~masks[n]] != 0).any()) for n, w in prunable_weights(model).items()), "remove() detaches the keeper"


def test_prune_rejects_bad_arguments():
    model = tiny_gpt()
    with pytest.raises(ValueError, match="sparsity"):
        magnitude_masks(model, 1.0)
    with pytest.raises(ValueError, match="scope"):
        magnitude_masks(model, 0.5, "row")
    with pytest.raises(KeyError, match="names no prunable"):
        apply_masks(model, {"nope.weight": torch.ones(1, dtype=torch.bool)})
