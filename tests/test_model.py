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
        (dict(positional="t5"), "positional must be one of"),
        (dict(norm="batchnorm"), "norm must be one of"),
        (dict(n_layer=0), "positive int"),
        (dict(dropout=1.0), "dropout"),
        (dict(positional="rope", n_embd=36, n_head=4), "even head dimension"),
    ],
)
def test_config_validation(kw, message):
    with pytest.raises(ValueError, match=message):
        GPTConfig(**{**SMALL, **kw})


# ----------------------------------------------------------------------------- conventions (issue 15)


def test_exact_gelu_is_torchs_erf_gelu_and_tanh_stays_the_default():
    torch.manual_seed(0)
    x = torch.randn(2, 5, SMALL["n_embd"], dtype=torch.float64) * 3
    exact = GPT(GPTConfig(**SMALL, gelu="exact")).double().blocks[0].mlp
    fc = exact.fc(x)
    assert torch.equal(exact(x), exact.proj(F.gelu(fc)))  # F.gelu's default is the erf form
    assert torch.allclose(exact.act(fc), fc * 0.5 * (1 + torch.erf(fc / math.sqrt(2))), rtol=0, atol=1e-15)
    tanh = GPT(GPTConfig(**SMALL)).double().blocks[0].mlp
    assert GPTConfig(**SMALL).gelu == "tanh"
    assert torch.equal(tanh.act(fc), F.gelu(fc, approximate="tanh"))
    gap = (tanh.act(fc) - exact.act(fc)).abs().max().item()
    assert 1e-6 < gap < 1e-3  # two different functions, close to each other


def _permute_qk_rows(model: GPT, order: torch.Tensor) -> None:
    """Reorder each head's query and key rows of every layer's qkv projection by ``order``."""
    c = model.config
    rows = torch.cat([h * c.head_dim + order for h in range(c.n_head)])
    with torch.no_grad():
        for block in model.blocks:
            for part in (0, 1):  # queries, keys; values untouched
                sl = slice(part * c.n_embd, (part + 1) * c.n_embd)
                block.attn.qkv.weight[sl] = block.attn.qkv.weight[sl][rows]
                block.attn.qkv.bias[sl] = block.attn.qkv.bias[sl][rows]


def test_interleaved_rope_model_equals_half_model_with_permuted_query_key_weights():
    from course.positional import pairing_permutation

    half = _model(positional="rope").double()
    inter = GPT(GPTConfig(**SMALL, positional="rope", rope_pairing="interleaved")).double().eval()
    assert inter.rope.pairing == "interleaved" and half.rope.pairing == "half"
    inter.load_state_dict(half.state_dict())
    ids = _ids(2, 16)
    unpermuted = inter(ids)[0]
    assert (unpermuted - half(ids)[0]).abs().max() > 1e-5  # the pairing really changes the model (init is small)
    # interleaved(x)[perm] == half(x[perm]): store the half model's q/k rows in the order inverse to perm.
    _permute_qk_rows(inter, torch.argsort(pairing_permutation(half.config.head_dim)))
    assert torch.allclose(inter(ids)[0], half(ids)[0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("variant", VARIANTS[::2], ids=lambda v: "-".join(v.values()))
def test_position_ids_arange_equal_the_default_bit_for_bit(variant):
    model, ids = _model(**variant), _ids(3, 16)
    logits = model(ids)[0]
    assert torch.equal(model(ids, position_ids=torch.arange(16))[0], logits)
    assert torch.equal(model(ids, position_ids=torch.arange(16).expand(3, 16))[0], logits)
    # with a cache: explicit positions that continue the cache equal the default ones, bit for bit
    cache_a, cache_b = model.new_cache(), model.new_cache()
    a = torch.cat([model(ids[:, :9], cache=cache_a)[0], model(ids[:, 9:], cache=cache_a)[0]], 1)
    b = torch.cat([model(ids[:, :9], cache=cache_b, position_ids=torch.arange(9))[0],
                   model(ids[:, 9:], cache=cache_b, position_ids=torch.arange(9, 16))[0]], 1)
    assert torch.equal(a, b)


@pytest.mark.parametrize("positional", ["learned", "sinusoidal", "rope"])
def test_cache_starting_at_an_offset_equals_the_full_forward_at_that_offset(positional):
    model, ids, start = _model(positional=positional), _ids(2, 10), 5
    positions = torch.arange(start, start + 10)
    full = model(ids, position_ids=positions)[0]
    cache = model.new_cache()
    chunks = [model(ids[:, :4], cache=cache, position_ids=positions[:4])[0]]
    for t in range(4, 10):  # then one token at a time, as generation does
        chunks.append(model(ids[:, t : t + 1], cache=cache, position_ids=positions[t : t + 1])[0])
    assert torch.allclose(torch.cat(chunks, 1), full, atol=1e-5)
    shifted = (full - model(ids)[0]).abs().max()
    if positional == "rope":  # RoPE scores depend on position differences only: a shift changes nothing
        assert shifted < 1e-4
    else:  # absolute positions: the shift matters
        assert shifted > 1e-3


def test_position_ids_per_row_give_each_sequence_its_own_start():
    model, ids = _model(positional="rope"), _ids(2, 6)
    rows = torch.stack([torch.arange(0, 6), torch.arange(7, 13)])
    both = model(ids, position_ids=rows)[0]
    for r in range(2):
        assert torch.allclose(both[r], model(ids[r : r + 1], position_ids=rows[r])[0][0], atol=1e-6)
    learned = _model()
    both = learned(ids, position_ids=rows)[0]
    assert torch.allclose(both[1], learned(ids[1:], position_ids=rows[1])[0][0], atol=1e-6)
    assert not torch.allclose(both[1], learned(ids[1:])[0][0], atol=1e-3)


def test_bad_position_ids_are_clear_errors():
    model, ids = _model(), _ids(2, 6)
    with pytest.raises(TypeError, match="integer tensor"):
        model(ids, position_ids=torch.arange(6.0))
    with pytest.raises(ValueError, match=r"one position per token of idx \(2, 6\).*got \(5,\)"):
        model(ids, position_ids=torch.arange(5))
    with pytest.raises(ValueError, match=r"position 16 is outside the model's positions 0..15"):
        model(ids, position_ids=torch.arange(11, 17))
    with pytest.raises(ValueError, match="position -1"):
        model(ids, position_ids=torch.arange(-1, 5))


def test_hidden_states_are_what_the_head_reads():
    for kw in ({}, {"norm_position": "post"}, {"positional": "rope"}):
        model, ids = _model(**kw), _ids(2, 8)
        h = model.hidden_states(ids)
        assert h.shape == (2, 8, SMALL["n_embd"])
        assert torch.equal(model.head(h), model(ids)[0])


def test_configs_saved_without_the_new_fields_still_load():
    old = GPTConfig(**SMALL, positional="rope").to_dict()
    for name in ("gelu", "rope_pairing"):
        del old[name]
    config = GPTConfig.from_dict(old)
    assert (config.gelu, config.rope_pairing) == ("tanh", "half")
    assert config == GPTConfig(**SMALL, positional="rope")
    import json
    from pathlib import Path

    shipped = Path(__file__).parents[1] / "course" / "checkpoints" / "shakespeare-char" / "config.json"
    saved = json.loads(shipped.read_text())["model"]  # saved before gelu and rope_pairing existed
    assert "gelu" not in saved and GPTConfig.from_dict(saved).gelu == "tanh"
    with pytest.raises(ValueError, match="GPTConfig.gelu must be one of"):
        GPTConfig(gelu="erf")
    with pytest.raises(ValueError, match="GPTConfig.rope_pairing must be one of"):
        GPTConfig(rope_pairing="split")


def test_config_repr_lists_the_new_fields_only_when_they_differ_from_the_default():
    # chapter 04 prints a config: its text must not change when fields are added
    assert repr(GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128)) == (
        "GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0, attn_dropout=0.0, "
        "bias=True, positional='learned', norm='layernorm', norm_position='pre', mlp='gelu', mlp_hidden=None, "
        "tie_weights=True, norm_eps=1e-05, rope_base=10000.0, activation_checkpointing=False)"
    )
    assert repr(GPTConfig(gelu="exact")).endswith("activation_checkpointing=False, gelu='exact')")


def test_exact_gelu_model_does_not_export_as_gpt2():
    with pytest.raises(ValueError, match="tanh GELU"):
        _model(gelu="exact").to_gpt2_state_dict()  # GPT-2 files mean the tanh form: exporting would change the model
    assert "lm_head.weight" in _model().to_gpt2_state_dict()


def test_untied_linear_layers_leave_out_a_tied_head():
    from course.model import untied_linear_layers

    tied, untied = _model(), _model(tie_weights=False)
    assert "head" not in untied_linear_layers(tied) and "head" in untied_linear_layers(untied)
    assert len(untied_linear_layers(untied)) == len(untied_linear_layers(tied)) + 1 == 4 * SMALL["n_layer"] + 1


def test_position_ids_reach_blocks_under_activation_checkpointing():
    model, ids = _model(activation_checkpointing=True).train(), _ids(2, 12)  # learned positions: a shift matters
    shifted = torch.arange(3, 15)
    loss = model(ids, ids, position_ids=shifted)[1]
    loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.config.activation_checkpointing = False  # the plain path must give the same loss and gradients
    plain = model(ids, ids, position_ids=shifted)[1]
    plain.backward()
    assert torch.equal(loss, plain)
    assert all(torch.allclose(g, p.grad, atol=1e-7) for g, p in zip(grads, model.parameters()))
