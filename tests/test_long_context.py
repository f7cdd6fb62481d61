"""course.long_context (chapter 13): extending a RoPE model's context by extrapolation, position interpolation
and NTK-aware scaling, and the loss at each position."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from course.long_context import ScaledRoPE, extend_rope_context, loss_by_position, ntk_base
from course.model import GPT, GPTConfig
from course.positional import inverse_frequencies


def _rope_model(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=17, block_size=16, n_layer=2, n_head=2, n_embd=16, positional="rope")).eval()


def test_extrapolation_keeps_what_the_model_computes_inside_the_trained_context():
    model = _rope_model()
    longer = extend_rope_context(model, 64, "none")
    idx = torch.randint(0, 17, (2, 16))
    with torch.no_grad():
        assert torch.allclose(model(idx)[0], longer(idx)[0], atol=1e-6)
        assert longer(torch.randint(0, 17, (1, 64)))[0].shape == (1, 64, 17)  # and it reads 64 tokens now
    with pytest.raises(ValueError, match="block_size=16"):
        model(torch.randint(0, 17, (1, 17)))  # the original still stops at 16
    same = extend_rope_context(model, 16, "interpolate")  # a factor of 1 changes nothing
    with torch.no_grad():
        assert torch.allclose(model(idx)[0], same(idx)[0], atol=1e-6)


def test_interpolation_gives_position_2k_the_angles_of_k():
    model = _rope_model()
    longer = extend_rope_context(model, 32, "interpolate")
    assert torch.allclose(longer.rope.cos[::2], model.rope.cos, atol=1e-6)
    assert torch.allclose(longer.rope.sin[::2], model.rope.sin, atol=1e-6)
    assert all(block.attn.rope is longer.rope for block in longer.blocks)
    assert longer.double().rope.cos.dtype == torch.float32  # a cast keeps the scaled float32 tables
    assert torch.allclose(longer.rope.cos[::2], model.rope.cos, atol=1e-6)


def test_ntk_scaling_slows_the_lowest_frequency_by_the_factor_and_keeps_the_highest():
    d, base, factor = 8, 10000.0, 4.0
    slow, fast = inverse_frequencies(d, base), inverse_frequencies(d, ntk_base(base, factor, d))
    assert math.isclose(float(slow[-1] / fast[-1]), factor, rel_tol=1e-12)
    assert float(fast[0]) == float(slow[0]) == 1.0
    longer = extend_rope_context(_rope_model(), 64, "ntk")
    assert math.isclose(longer.rope.base, ntk_base(10000.0, 4.0, 8))


def test_what_cannot_be_extended_says_why():
    torch.manual_seed(0)
    learned = GPT(GPTConfig(vocab_size=17, block_size=16, n_layer=1, n_head=2, n_embd=16))
    with pytest.raises(ValueError, match="only a RoPE model"):
        extend_rope_context(learned, 32)
    with pytest.raises(ValueError, match="shorter"):
        extend_rope_context(_rope_model(), 8)
    with pytest.raises(ValueError, match="method"):
        extend_rope_context(_rope_model(), 32, "yarn")
    with pytest.raises(ValueError, match="position_scale"):
        ScaledRoPE(8, 16, position_scale=0)


def test_loss_by_position_averages_to_the_models_loss_on_the_same_windows():
    model = _rope_model()
    tokens = torch.randint(0, 17, (500,), generator=torch.Generator().manual_seed(1))
    curve = loss_by_position(model, tokens, 16, windows=10, batch_size=3)
    starts = torch.randint(0, 500 - 16 - 1, (10,), generator=torch.Generator().manual_seed(0))
    rows = torch.stack([tokens[s:s + 17] for s in starts.tolist()])
    with torch.no_grad():
        logits, _ = model(rows[:, :-1])
    want = F.cross_entropy(logits.transpose(1, 2), rows[:, 1:], reduction="none").mean(0)
    assert curve.shape == (16,) and torch.allclose(curve.float(), want, atol=1e-5)
    with pytest.raises(ValueError, match="extend the context"):
        loss_by_position(model, tokens, 32, windows=2)
    with pytest.raises(ValueError, match="1-D"):
        loss_by_position(model, tokens[None], 8, windows=2)
