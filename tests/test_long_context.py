"""course.long_context (chapter 13): extending a RoPE model's context by extrapolation, position interpolation
and NTK-aware scaling, and the loss at each position."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from course.long_context import ScaledRoPE, extend_context, loss_by_position, ntk_base
from course.model import GPT, GPTConfig
from course.positional import inverse_frequencies


def _rope_model(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=17, block_size=16, n_layer=2, n_head=2, n_embd=16, positional="rope")).eval()


def test_extrapolation_keeps_what_the_model_computes_inside_the_trained_context():
    model = _rope_model()
    longer = extend_context(model, 64, "none")
    idx = torch.randint(0, 17, (2, 16))
    with torch.no_grad():
        assert torch.allclose(model(idx)[0], longer(idx)[0], atol=1e-6)
        assert longer(torch.randint(0, 17, (1, 64)))[0].shape == (1, 64, 17)  # and it reads 64 tokens now
    with pytest.raises(ValueError, match="block_size=16"):
        model(torch.randint(0, 17, (1, 17)))  # the original still stops at 16
    same = extend_context(model, 16, "interpolate")  # a factor of 1 changes nothing
    with torch.no_grad():
        assert torch.allclose(model(idx)[0], same(idx)[0], atol=1e-6)


def test_interpolation_gives_position_2k_the_angles_of_k():
    model = _rope_model()
    longer = extend_context(model, 32, "interpolate")
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
    longer = extend_context(_rope_model(), 64, "ntk")
    assert math.isclose(longer.rope.base, ntk_base(10000.0, 4.0, 8))


def test_what_cannot_be_extended_says_why():
    torch.manual_seed(0)
    learned = GPT(GPTConfig(vocab_size=17, block_size=16, n_layer=1, n_head=2, n_embd=16))
    with pytest.raises(ValueError, match="only a RoPE or ALiBi model"):
        extend_context(learned, 32)
    with pytest.raises(ValueError, match="shorter"):
        extend_context(_rope_model(), 8)
    with pytest.raises(ValueError, match="method"):
        extend_context(_rope_model(), 32, "yarn")
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


def _model(seed: int = 0, **kw) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=17, block_size=16, n_layer=2, n_head=4, n_embd=16, **kw)).eval()


def test_alibi_scores_are_the_trained_rule_at_every_distance():
    model = _model(positional="alibi")
    assert model.pos_emb is None and model.rope is None and model.blocks[0].attn.alibi is not None
    longer = extend_context(model, 48)
    idx = torch.randint(0, 17, (2, 48), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.allclose(model(idx[:, :16])[0], longer(idx[:, :16])[0], atol=1e-6)
        # the weights are the softmax of q·k/√d - slope·(i - j): recompute layer 0's by hand
        x = longer.blocks[0].norm1(longer.tok_emb(idx))
        attn = longer.blocks[0].attn
        q, k, _ = attn.qkv(x).split(16, dim=2)
        q, k = attn._split(q), attn._split(k)
        i = torch.arange(48)
        bias = -attn.alibi[:, None, None] * (i[:, None] - i[None, :]).float()
        scores = (q @ k.transpose(-2, -1) / 2.0 + bias).masked_fill(i[None, :] > i[:, None], float("-inf"))
        _, weights = longer.forward_with_attention(idx)
        assert torch.allclose(weights[0], torch.softmax(scores, -1), atol=1e-6)
    with pytest.raises(ValueError, match="ALiBi model has none"):
        extend_context(model, 32, "ntk")


def test_a_window_limits_what_each_query_sees_and_what_the_cache_keeps():
    model = _model(positional="rope", attention_window=4)
    idx = torch.randint(0, 17, (1, 16), generator=torch.Generator().manual_seed(4))
    changed = idx.clone()
    changed[0, 5] = (changed[0, 5] + 1) % 17  # token 5 is outside the window of positions 5 + 4 * 2 = 13 and later
    with torch.no_grad():
        a, b = model(idx)[0], model(changed)[0]
        # two layers of window 4: position p sees back to p - 6; only positions 5..11 can be affected
        assert torch.equal(a[0, :5], b[0, :5]) and torch.equal(a[0, 12:], b[0, 12:])
        assert not torch.allclose(a[0, 5], b[0, 5])
        cache = model.new_cache()
        steps = [model(idx[:, :3], cache=cache)[0]] + [model(idx[:, i:i + 1], cache=cache)[0] for i in range(3, 16)]
        assert torch.allclose(torch.cat(steps, 1), a, atol=1e-5)
    assert cache.length == 16 and cache.stored_length() == 4
    from course.sampling import kv_cache_bytes

    assert kv_cache_bytes(model.config, 16) == cache.nbytes() == kv_cache_bytes(model.config, 4)
    assert cache.nbytes() == 2 * 2 * 1 * 4 * 4 * 4 * 4  # layers · (k, v) · batch · heads · W · head_dim · 4 bytes
    with pytest.raises(ValueError, match="no longer holds"):
        cache.crop(5)
    cache.crop(14)
    assert cache.length == 14 and cache.stored_length() == 2
    # a full-attention model with a window imposed: inside the window nothing changes
    full = _model(positional="rope")
    windowed = extend_context(full, 16, window=16)
    with torch.no_grad():
        assert torch.allclose(full(idx)[0], windowed(idx)[0], atol=1e-6)
    with pytest.raises(ValueError, match="positions"):
        model(idx, position_ids=torch.arange(16))
