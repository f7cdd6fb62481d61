"""course.flash_attention (chapter 13): the online softmax and tiled attention equal softmax and SDPA, values and
gradients, at every block size, and the backward pass keeps no T x T matrix."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from course.attention import naive_attention
from course.memory import saved_for_backward_bytes
from course.flash_attention import (
    TiledAttention,
    online_softmax,
    online_softmax_update,
    tiled_attention,
)


@pytest.mark.parametrize("block", [1, 3, 8, 64])
def test_online_softmax_is_softmax(block):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 5, 37, generator=g, dtype=torch.float64) * 10
    x[0, 0, :5] = -math.inf  # masked entries at the start of a row: the first block sees nothing
    x[1, 1, 3] = 1000.0  # large scores: exp would overflow without the running maximum
    assert torch.allclose(online_softmax(x, block), torch.softmax(x, dim=-1), atol=1e-14, rtol=0)
    with pytest.raises(ValueError, match="at least 1"):
        online_softmax(x, 0)


def test_one_update_of_an_empty_state_is_the_blocks_softmax():
    g = torch.Generator().manual_seed(1)
    s, v = torch.randn(3, 6, generator=g, dtype=torch.float64), torch.randn(6, 4, generator=g, dtype=torch.float64)
    m, l, acc = online_softmax_update(torch.full((3,), -math.inf, dtype=torch.float64), torch.zeros(3, dtype=torch.float64),
                                      torch.zeros(3, 4, dtype=torch.float64), s, v)
    assert torch.allclose(acc / l.unsqueeze(-1), torch.softmax(s, -1) @ v, atol=1e-14)
    assert torch.allclose(m + torch.log(l), torch.logsumexp(s, -1), atol=1e-14)


def _qkv(shape_q, shape_k, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(*shape_q, generator=g, dtype=dtype, requires_grad=True)
    k = torch.randn(*shape_k, generator=g, dtype=dtype, requires_grad=True)
    v = torch.randn(*shape_k, generator=g, dtype=dtype, requires_grad=True)
    return q, k, v


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("blocks", [(64, 64), (8, 5), (1, 7), (16, 1)])
def test_values_and_gradients_equal_sdpa(causal, blocks):
    q, k, v = _qkv((2, 3, 37, 8), (2, 3, 37, 8))
    ours = tiled_attention(q, k, v, causal=causal, block_q=blocks[0], block_k=blocks[1])
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    assert torch.allclose(ours, ref, atol=1e-12, rtol=0)
    d_out = torch.randn_like(ours)
    got = torch.autograd.grad(ours, (q, k, v), d_out)
    want = torch.autograd.grad(ref, (q, k, v), d_out)
    for a, b, name in zip(got, want, "qkv"):
        assert torch.allclose(a, b, atol=1e-11, rtol=0), f"d{name} differs by {(a - b).abs().max():.2e}"


def test_float32_agrees_with_sdpa_to_rounding():
    q, k, v = _qkv((1, 4, 100, 16), (1, 4, 100, 16), dtype=torch.float32)
    ours = tiled_attention(q, k, v, causal=True, block_q=32, block_k=32)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert (ours - ref).abs().max() < 1e-5


def test_gradcheck_on_small_inputs():
    q, k, v = _qkv((1, 2, 6, 3), (1, 2, 6, 3))
    assert torch.autograd.gradcheck(lambda a, b, c: TiledAttention.apply(a, b, c, True, 4, 2, None), (q, k, v))


def test_fewer_queries_than_keys_are_the_last_positions():
    """Decoding with a cache: 5 new queries over 12 keys see keys up to their own position (offset 7)."""
    q, k, v = _qkv((2, 5, 4), (2, 12, 4))
    ours = tiled_attention(q, k, v, causal=True, block_q=2, block_k=3)
    allowed = torch.ones(5, 12, dtype=torch.bool).tril(diagonal=7)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    assert torch.allclose(ours, ref, atol=1e-12)
    full = tiled_attention(torch.cat([torch.randn(2, 7, 4, dtype=torch.float64), q], 1), k, v, causal=True)
    assert torch.allclose(full[:, 7:], ours, atol=1e-12)  # the same as the last rows of a full causal pass


def test_a_given_scale_and_a_different_value_width():
    q, k, _ = _qkv((3, 10, 4), (3, 10, 4))
    v = torch.randn(3, 10, 6, dtype=torch.float64)
    ours = tiled_attention(q, k, v, block_q=4, block_k=4, scale=0.3)
    ref = F.scaled_dot_product_attention(q, k, v, scale=0.3)
    assert ours.shape == (3, 10, 6) and torch.allclose(ours, ref, atol=1e-12)


def test_the_backward_pass_keeps_no_t_by_t_matrix():
    t = 256
    q, k, v = _qkv((1, 1, t, 8), (1, 1, t, 8), dtype=torch.float32)
    out = tiled_attention(q, k, v, causal=True, block_q=32, block_k=32)
    saved = out.grad_fn.saved_tensors
    assert max(x.numel() for x in saved) == t * 8  # q, k, v, the output: T x d each
    assert sum(x.numel() for x in saved) == 4 * t * 8 + t  # ... and one log-sum-exp per query: no T x T matrix


def test_bad_shapes_and_blocks_say_what_is_wrong():
    q, k, v = _qkv((2, 5, 4), (2, 6, 4))
    with pytest.raises(ValueError, match="shapes do not fit"):
        tiled_attention(q, k[:, :, :3], v)
    with pytest.raises(ValueError, match="same number of dimensions"):
        tiled_attention(q[0], k, v)
    with pytest.raises(ValueError, match="block sizes"):
        tiled_attention(q, k, v, block_k=0)


def test_the_memory_kept_for_backward_grows_as_t_for_tiles_and_as_t_squared_for_the_naive_form():
    def measure(fn, t):
        q, k, v = _qkv((1, 2, t, 16), (1, 2, t, 16), dtype=torch.float32)
        return saved_for_backward_bytes(fn, q, k, v)

    naive = lambda q, k, v: naive_attention(q, k, v, causal=True)[0]  # noqa: E731
    tiled = lambda q, k, v: tiled_attention(q, k, v, causal=True, block_q=32, block_k=32)  # noqa: E731
    n1, n2 = measure(naive, 128), measure(naive, 256)
    t1, t2 = measure(tiled, 128), measure(tiled, 256)
    assert t1 == 2 * 128 * (16 + 1) * 4  # the output (T x d) and the log-sum-exp (T), per head, in float32
    assert t2 == 2 * t1  # linear in T
    assert n1 >= 2 * 128 * 128 * 4 and n2 >= 3.5 * n1  # the T x T probabilities: quadratic
