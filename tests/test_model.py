"""course.attention and course.model: causality, caching, counts, GPT-2 round trip, bad input."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from course.attention import CausalSelfAttention, KVCache, causal_mask, naive_attention
from course.model import GPT, GPTConfig

SMALL = dict(vocab_size=37, block_size=16, n_layer=2, n_head=2, n_embd=32)
VARIANTS = [
    dict(positional=p, norm=n, mlp=m)
    for p, n, m in itertools.product(("learned", "sinusoidal", "rope"), ("layernorm", "rmsnorm"), ("gelu", "swiglu"))
]


def _model(seed: int = 0, **kw) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(**{**SMALL, **kw})).eval()


def _ids(b: int, t: int, seed: int = 1, vocab: int = SMALL["vocab_size"]) -> torch.Tensor:
    return torch.randint(0, vocab, (b, t), generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- attention


def test_naive_attention_matches_sdpa():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 7, 8, generator=g, dtype=torch.float64) for _ in range(3))
    out, w = naive_attention(q, k, v, causal=True)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert torch.allclose(out, ref, atol=1e-12)
    assert torch.allclose(w.sum(-1), torch.ones(2, 3, 7, dtype=torch.float64))
    assert (w.masked_select(~causal_mask(7)) == 0).all(), "masked weights must be exactly 0"


def test_offset_causal_mask_for_cached_queries():
    m = causal_mask(2, 5)
    assert m.tolist() == [[True, True, True, True, False], [True, True, True, True, True]]
    with pytest.raises(ValueError, match="more queries"):
        causal_mask(5, 2)


def test_attention_layer_weights_path_equals_fast_path():
    torch.manual_seed(0)
    layer = CausalSelfAttention(32, 4).eval()
    x = torch.randn(2, 9, 32)
    fast, none = layer(x)
    slow, weights = layer(x, return_weights=True)
    assert none is None and weights.shape == (2, 4, 9, 9)
    assert torch.allclose(fast, slow, atol=1e-6)
    with pytest.raises(ValueError, match="divisible"):
        CausalSelfAttention(30, 4)


# ----------------------------------------------------------------------------- model


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(v.values()))
def test_causality(variant):
    """Changing the token at position t changes no output before t (and does change t)."""
    model = _model(**variant)
    idx = _ids(2, 12)
    logits, _ = model(idx)
    t = 6
    changed = idx.clone()
    changed[:, t] = (changed[:, t] + 1) % SMALL["vocab_size"]
    logits2, _ = model(changed)
    assert torch.allclose(logits[:, :t], logits2[:, :t], atol=1e-6), "information leaked from the future"
    assert not torch.allclose(logits[:, t], logits2[:, t])


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(v.values()))
def test_kv_cache_equals_full_forward(variant):
    model = _model(**variant)
    idx = _ids(2, 14)
    full, _ = model(idx)
    cache = model.new_cache()
    pieces = [model(idx[:, :5], cache=cache)[0]]  # a prompt of 5, then one token at a time, then a chunk of 3
    for t in range(5, 11):
        pieces.append(model(idx[:, t : t + 1], cache=cache)[0])
    pieces.append(model(idx[:, 11:14], cache=cache)[0])
    assert cache.length == 14
    assert torch.allclose(torch.cat(pieces, dim=1), full, atol=1e-5)
    head_dim = SMALL["n_embd"] // SMALL["n_head"]
    assert cache.nbytes() == 2 * SMALL["n_layer"] * 2 * SMALL["n_head"] * 14 * head_dim * 4  # k and v, float32


def test_cache_cannot_exceed_context():
    model = _model()
    cache = model.new_cache()
    model(_ids(1, 15), cache=cache)
    with pytest.raises(ValueError, match="after 15 cached positions exceed .*block_size=16"):
        model(_ids(1, 2), cache=cache)


def test_forward_with_attention_matches_forward():
    model = _model(positional="rope")
    idx = _ids(2, 10)
    logits, _ = model(idx)
    logits2, weights = model.forward_with_attention(idx)
    assert torch.allclose(logits, logits2, atol=1e-5)
    assert len(weights) == SMALL["n_layer"] and weights[0].shape == (2, SMALL["n_head"], 10, 10)
    assert torch.allclose(weights[1].sum(-1), torch.ones(2, SMALL["n_head"], 10), atol=1e-6)
    assert torch.triu(weights[0], diagonal=1).abs().max() == 0


def test_loss_at_initialisation_is_about_ln_vocab():
    model = _model(vocab_size=1000, n_embd=64, n_head=4)
    idx, targets = _ids(16, 16, vocab=1000), _ids(16, 16, seed=2, vocab=1000)
    _, loss = model(idx, targets)  # not idx itself: a tied head slightly favours repeating the input token
    assert abs(loss.item() - math.log(1000)) < 0.1, loss.item()  # ln V plus about var(logits)/2


def test_ignore_index_masks_targets():
    model = _model()
    idx = _ids(2, 8)
    targets = idx.clone()
    logits, loss_all = model(idx, targets)
    targets[:, :4] = -100
    _, loss_masked = model(idx, targets)
    expected = F.cross_entropy(logits[:, 4:].reshape(-1, SMALL["vocab_size"]), idx[:, 4:].reshape(-1))
    assert torch.allclose(loss_masked, expected, atol=1e-6) and not torch.allclose(loss_masked, loss_all)


def test_prompts_shorter_than_context_and_determinism():
    a, b = _model(seed=3), _model(seed=3)
    for t in (1, 5, 16):
        la, _ = a(_ids(1, t))
        lb, _ = b(_ids(1, t))
        assert la.shape == (1, t, SMALL["vocab_size"]) and torch.equal(la, lb)
    assert not torch.equal(_model(seed=4)(_ids(1, 5))[0], a(_ids(1, 5))[0])


def test_post_norm_variant_runs_and_is_causal():
    model = _model(norm_position="post")
    idx = _ids(1, 10)
    changed = idx.clone()
    changed[0, 9] = (changed[0, 9] + 1) % SMALL["vocab_size"]
    assert torch.allclose(model(idx)[0][:, :9], model(changed)[0][:, :9], atol=1e-6)


# ----------------------------------------------------------------------------- counting


def test_gpt2_small_parameter_count():
    with torch.device("meta"):
        model = GPT(GPTConfig())
    assert model.num_parameters() == 124_439_808  # GPT-2 small, tied head, as Hugging Face counts it
    assert sum(model.parameter_breakdown().values()) == model.num_parameters()
    assert model.num_parameters(non_embedding=True) == 124_439_808 - 1024 * 768


def test_parameter_count_formula():
    for variant in VARIANTS:
        c = GPTConfig(**{**SMALL, **variant})
        model = GPT(c)
        d, h, L, V = c.n_embd, c.hidden, c.n_layer, c.vocab_size
        norm = 2 * d if c.norm == "layernorm" else d
        mlp = (d * h + h + h * d + d) if c.mlp == "gelu" else (2 * (d * h + h) + h * d + d)
        per_block = (d * 3 * d + 3 * d) + (d * d + d) + mlp + 2 * norm
        pos = c.block_size * d if c.positional == "learned" else 0
        assert model.num_parameters() == V * d + pos + L * per_block + norm, variant


def test_untied_head_counts_separately():
    tied, untied = GPT(GPTConfig(**SMALL)), GPT(GPTConfig(**SMALL, tie_weights=False))
    assert untied.num_parameters() - tied.num_parameters() == SMALL["vocab_size"] * SMALL["n_embd"]
    assert tied.head.weight is tied.tok_emb.weight


def test_flops_per_token_formula():
    model = GPT(GPTConfig(**SMALL))
    n = model.num_parameters(non_embedding=True)
    assert model.flops_per_token(8) == 6 * n + 12 * SMALL["n_layer"] * 8 * SMALL["n_embd"]


# ----------------------------------------------------------------------------- GPT-2 weights


def _hf_gpt2(seed: int = 0):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(
        vocab_size=101, n_positions=24, n_embd=64, n_layer=3, n_head=4,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():  # random, non-trivial norms and biases so that a mix-up would show
        for name, p in hf.named_parameters():
            if name.endswith("bias") or ".ln_" in name:
                p.add_(0.1 * torch.randn_like(p))
    return hf


def test_loads_hugging_face_gpt2_with_identical_logits():
    hf = _hf_gpt2()
    ours = GPT.from_gpt2_state_dict(hf.state_dict(), n_head=4).eval()
    idx = _ids(2, 20, vocab=101)
    with torch.no_grad():
        expected = hf(idx).logits
        got, _ = ours(idx)
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()


def test_exports_back_to_hugging_face_format():
    transformers = pytest.importorskip("transformers")
    hf = _hf_gpt2()
    ours = GPT.from_gpt2_state_dict(hf.state_dict(), n_head=4).eval()
    with torch.no_grad():
        for p in ours.parameters():
            p.add_(0.01)  # make the export differ from the source, so the test sees our weights
    fresh = transformers.GPT2LMHeadModel(hf.config).eval()
    result = fresh.load_state_dict(ours.to_gpt2_state_dict(), strict=False)
    assert not result.unexpected_keys
    assert all(k.split(".", 3)[-1] in ("attn.bias", "attn.masked_bias") for k in result.missing_keys), result.missing_keys
    idx = _ids(1, 12, vocab=101)
    with torch.no_grad():
        assert torch.allclose(fresh(idx).logits, ours(idx)[0], atol=1e-5)


def test_gpt2_bad_state_dicts():
    with pytest.raises(KeyError, match="not a GPT-2 state dict"):
        GPT.from_gpt2_state_dict({"foo": torch.zeros(1)})
    with pytest.raises(ValueError, match="only a GPT-2-shaped model"):
        GPT(GPTConfig(**SMALL, positional="rope")).to_gpt2_state_dict()


# ----------------------------------------------------------------------------- bad input


def test_clear_errors_for_bad_input():
    model = _model()
    with pytest.raises(ValueError, match="17 tokens exceed the model's context of block_size=16"):
        model(_ids(1, 17))
    with pytest.raises(ValueError, match=r"Add a batch dimension: idx\[None\]"):
        model(_ids(1, 5)[0])
    with pytest.raises(TypeError, match="integer token ids"):
        model(torch.zeros(1, 5))
    with pytest.raises(ValueError, match="token id 37 is outside the vocabulary"):
        model(torch.tensor([[1, 37]]))
    with pytest.raises(ValueError, match="empty"):
        model(torch.zeros(1, 0, dtype=torch.long))
    with pytest.raises(ValueError, match="targets must have the shape"):
        model(_ids(1, 5), _ids(1, 4))


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(n_embd=30, n_head=4), "divisible"),
        (dict(positional="alibi"), "positional must be one of"),
        (dict(norm="batchnorm"), "norm must be one of"),
        (dict(n_layer=0), "positive int"),
        (dict(dropout=1.0), "dropout"),
        (dict(positional="rope", n_embd=36, n_head=4), "even head dimension"),
    ],
)
def test_config_validation(kw, message):
    with pytest.raises(ValueError, match=message):
        GPTConfig(**{**SMALL, **kw})
