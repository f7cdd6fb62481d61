"""Grouped-query attention (chapter 13): the config and the attention layer, the KV cache it shrinks, and the
mean-pooling conversion of a multi-head model (Ainslie et al. 2023)."""

from __future__ import annotations

import pytest
import torch

from course.gqa import pool_kv_heads
from course.model import GPT, GPTConfig
from course.sampling import kv_cache_bytes


def _config(**kw) -> GPTConfig:
    return GPTConfig(**{"vocab_size": 13, "block_size": 32, "n_layer": 2, "n_head": 4, "n_embd": 32, **kw})


@pytest.mark.parametrize("positional", ["learned", "rope"])
@pytest.mark.parametrize("n_kv_head", [4, 2, 1])
def test_cached_decoding_equals_the_full_pass_and_the_cache_is_sized_by_n_kv_head(n_kv_head, positional):
    torch.manual_seed(0)
    model = GPT(_config(n_kv_head=n_kv_head, positional=positional)).eval()
    idx = torch.randint(0, 13, (2, 12))
    with torch.no_grad():
        full, _ = model(idx)
        cache = model.new_cache()
        first, _ = model(idx[:, :5], cache=cache)
        steps = [model(idx[:, t:t + 1], cache=cache)[0] for t in range(5, 12)]
    assert torch.allclose(torch.cat([first, *steps], 1), full, atol=1e-5)
    assert cache.layers[0][0].shape == (2, n_kv_head, 12, 8)
    assert cache.nbytes() == kv_cache_bytes(model.config, 12, batch=2)


def test_fewer_kv_heads_mean_fewer_parameters_and_a_smaller_cache():
    mha, gqa, mqa = (GPT(_config(n_kv_head=h)) for h in (None, 2, 1))
    d, hd = 32, 8
    per_layer = lambda h: d * (d + 2 * h * hd) + (d + 2 * h * hd)  # noqa: E731  qkv weight and bias
    assert mha.num_parameters() - gqa.num_parameters() == 2 * (per_layer(4) - per_layer(2))
    assert mha.num_parameters() - mqa.num_parameters() == 2 * (per_layer(4) - per_layer(1))
    assert kv_cache_bytes(mha.config, 100) == 4 * kv_cache_bytes(mqa.config, 100) == 2 * kv_cache_bytes(gqa.config, 100)


def test_pooling_heads_that_are_already_equal_loses_nothing():
    """If the key and value heads of each group are equal, the pooled model computes exactly what the original did."""
    torch.manual_seed(1)
    model = GPT(_config()).eval()
    with torch.no_grad():
        for block in model.blocks:
            w, b = block.attn.qkv.weight, block.attn.qkv.bias
            for part in (1, 2):  # keys, values: make heads 0 = 1 and 2 = 3
                rows = slice(part * 32, (part + 1) * 32)
                heads_w = w[rows].view(4, 8, 32)
                heads_w[1], heads_w[3] = heads_w[0].clone(), heads_w[2].clone()
                heads_b = b[rows].view(4, 8)
                heads_b[1], heads_b[3] = heads_b[0].clone(), heads_b[2].clone()
    pooled = pool_kv_heads(model, 2).eval()
    idx = torch.randint(0, 13, (3, 20))
    with torch.no_grad():
        assert torch.allclose(model(idx)[0], pooled(idx)[0], atol=1e-5)
    assert pooled.config.n_kv_head == 2 and model.config.n_kv_head is None


def test_pooling_to_n_head_is_the_same_model_and_mean_pools_otherwise():
    torch.manual_seed(2)
    model = GPT(_config()).eval()
    same = pool_kv_heads(model, 4).eval()
    idx = torch.randint(0, 13, (2, 9))
    with torch.no_grad():
        assert torch.allclose(model(idx)[0], same(idx)[0], atol=1e-6)
    one = pool_kv_heads(model, 1)
    k_rows = model.blocks[0].attn.qkv.weight[32:64].view(4, 8, 32)
    assert torch.allclose(one.blocks[0].attn.qkv.weight[32:40], k_rows.mean(0))
    with pytest.raises(ValueError, match="must divide"):
        pool_kv_heads(model, 3)
    with pytest.raises(ValueError, match="already has"):
        pool_kv_heads(one, 1)


def test_the_config_checks_n_kv_head_and_round_trips():
    with pytest.raises(ValueError, match="must divide n_head"):
        _config(n_kv_head=3)
    with pytest.raises(ValueError):
        _config(n_kv_head=0)
    c = _config(n_kv_head=2)
    assert GPTConfig.from_dict(c.to_dict()) == c and "n_kv_head=2" in repr(c)
    assert "n_kv_head" not in repr(_config())  # the default stays out of old configs' repr
