"""The three Transformer families (course.families, chapter 10): attention against PyTorch's, the
patterns each family promises (what can see what), padding, BERT's masking, and a decoder that learns."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from course.families import (Encoder, EncoderClassifier, MaskedLM, MultiHeadAttention, Seq2Seq, attention_pattern,
                             mask_tokens)
from course.model import GPT, GPTConfig


def small(**kw) -> GPTConfig:
    base = dict(vocab_size=20, block_size=16, n_layer=2, n_head=2, n_embd=16, dropout=0.0)
    return GPTConfig(**{**base, **kw})


def torch_reference(ours: MultiHeadAttention) -> nn.MultiheadAttention:
    ref = nn.MultiheadAttention(ours.d_model, ours.n_head, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([ours.q.weight, ours.kv.weight]))
        ref.in_proj_bias.copy_(torch.cat([ours.q.bias, ours.kv.bias]))
        ref.out_proj.weight.copy_(ours.proj.weight)
        ref.out_proj.bias.copy_(ours.proj.bias)
    return ref


@pytest.mark.parametrize("case", ["self", "causal", "cross", "cross-padded"])
def test_attention_matches_torch_multihead_attention(case):
    torch.manual_seed(0)
    ours = MultiHeadAttention(24, 3).double()
    ref = torch_reference(ours)
    x = torch.randn(2, 5, 24, dtype=torch.float64)
    memory = torch.randn(2, 7, 24, dtype=torch.float64) if case.startswith("cross") else None
    pad = None
    if case == "cross-padded":
        pad = torch.ones(2, 7, dtype=torch.bool)
        pad[1, 4:] = False
    causal = case == "causal"
    for weights in (False, True):
        y, w = ours(x, memory, causal=causal, pad_mask=pad, return_weights=weights)
        source = x if memory is None else memory
        y_ref, w_ref = ref(x, source, source, need_weights=True, average_attn_weights=False,
                           key_padding_mask=None if pad is None else ~pad,
                           attn_mask=~attention_pattern("causal", 5) if causal else None)
        torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-12)
        if weights:
            torch.testing.assert_close(w, w_ref, rtol=0, atol=1e-12)
            torch.testing.assert_close(w.sum(-1), torch.ones_like(w.sum(-1)), rtol=0, atol=1e-12)
            if causal:
                assert bool((w[..., ~attention_pattern("causal", 5)] == 0).all())
            if pad is not None:
                assert bool((w[1, :, :, 4:] == 0).all())


def test_attention_patterns():
    assert attention_pattern("causal", 3).tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    assert bool(attention_pattern("bidirectional", 3).all())
    assert attention_pattern("cross", 2, 4).shape == (2, 4) and bool(attention_pattern("cross", 2, 4).all())
    assert attention_pattern("prefix", 4, prefix=2).tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]]
    with pytest.raises(ValueError, match="kind"):
        attention_pattern("sideways", 3)
    with pytest.raises(ValueError, match="prefix"):
        attention_pattern("prefix", 3, prefix=5)


def _changed_positions(model_fn, idx: torch.Tensor, where: int) -> list[bool]:
    """Which output positions change when the token at ``where`` changes."""
    other = idx.clone()
    other[0, where] = (other[0, where] + 1) % 20
    a, b = model_fn(idx), model_fn(other)
    return [not torch.allclose(a[0, t], b[0, t], atol=1e-9) for t in range(idx.shape[1])]


def test_an_encoder_sees_both_sides_and_a_decoder_only_the_past():
    torch.manual_seed(0)
    idx = torch.randint(0, 20, (1, 8))
    encoder = Encoder(small()).double().eval()
    gpt = GPT(small()).double().eval()
    assert all(_changed_positions(lambda i: encoder(i)[0], idx, 5))  # every position sees token 5
    assert _changed_positions(lambda i: gpt(i)[0], idx, 5) == [False] * 5 + [True] * 3  # only 5 and after


def test_a_seq2seq_decoder_is_causal_in_the_target_and_sees_the_whole_source():
    torch.manual_seed(0)
    model = Seq2Seq(small(), tgt_vocab_size=20).double().eval()
    src, tgt = torch.randint(0, 20, (1, 6)), torch.randint(0, 20, (1, 7))
    assert all(_changed_positions(lambda s: model(s, tgt)[0], src, 5))  # the last source token reaches every output
    assert _changed_positions(lambda t: model(src, t)[0], tgt, 3) == [False] * 3 + [True] * 4


def test_padding_changes_nothing_at_the_real_positions():
    torch.manual_seed(0)
    encoder = Encoder(small()).double().eval()
    s2s = Seq2Seq(small()).double().eval()
    idx = torch.randint(1, 20, (1, 5))
    padded = torch.cat([idx, torch.zeros(1, 3, dtype=torch.long)], dim=1)
    pad = torch.tensor([[True] * 5 + [False] * 3])
    torch.testing.assert_close(encoder(padded, pad)[0][:, :5], encoder(idx)[0], rtol=0, atol=1e-12)
    tgt = torch.randint(0, 20, (1, 4))
    torch.testing.assert_close(s2s(padded, tgt, src_pad_mask=pad)[0], s2s(idx, tgt)[0], rtol=0, atol=1e-12)
    clf = EncoderClassifier(encoder, 3).double().eval()
    torch.testing.assert_close(clf(padded, pad_mask=pad)[0], clf(idx)[0], rtol=0, atol=1e-12)
    weights = s2s.cross_attention(padded, tgt, pad)
    assert len(weights) == 2 and all(bool((w[..., 5:] == 0).all()) for w in weights)


def test_bert_masking_chooses_15_percent_and_splits_them_80_10_10():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 1000, (400, 500), generator=g)
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, :10] = True  # e.g. padding: never chosen
    inputs, targets = mask_tokens(ids, mask_id=1, vocab_size=1000, generator=g, special=special)
    chosen = targets != -100
    n = (~special).sum().item()
    rate = chosen.sum().item() / n
    assert abs(rate - 0.15) < 4 * math.sqrt(0.15 * 0.85 / n)
    assert not bool(chosen[special].any())
    assert bool((targets[chosen] == ids[chosen]).all())  # the targets are the original tokens
    assert bool((inputs[~chosen] == ids[~chosen]).all())  # what is not chosen is untouched
    m = chosen.sum().item()
    masked = (inputs[chosen] == 1).float().mean().item()
    kept = (inputs[chosen] == ids[chosen]).float().mean().item()  # includes random draws of the same token
    assert abs(masked - 0.8) < 4 * math.sqrt(0.8 * 0.2 / m)
    assert abs(kept - 0.1) < 4 * math.sqrt(0.1 * 0.9 / m) + 1 / 1000
    with pytest.raises(ValueError, match="mask_id"):
        mask_tokens(ids, mask_id=1000, vocab_size=1000)


def test_a_masked_lm_learns_to_fill_in_a_copied_half():
    # Each sequence is a random half followed by a copy of it: a hidden token can be read off its twin.
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = MaskedLM(small(vocab_size=12, n_embd=32, n_head=4))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)

    def batch(n=64):
        half = torch.randint(2, 12, (n, 6), generator=g)
        return torch.cat([half, half], dim=1)

    for _ in range(300):
        inputs, targets = mask_tokens(batch(), mask_id=1, vocab_size=12, p=0.15, generator=g)
        loss = model(inputs, targets)[1]
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    ids = batch(256)
    inputs = ids.clone()
    inputs[:, 2] = 1  # hide one token of the first half: its twin is at position 8
    pred = model(inputs)[0][:, 2].argmax(-1)
    assert (pred == ids[:, 2]).float().mean().item() > 0.9


def test_seq2seq_learns_to_reverse_and_its_cross_attention_is_the_anti_diagonal():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    BOS, EOS, L = 0, 1, 6
    model = Seq2Seq(small(vocab_size=12, n_embd=32, n_head=4))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)

    def batch(n=64):
        src = torch.randint(2, 12, (n, L), generator=g)
        tgt = torch.cat([src.flip(1), torch.full((n, 1), EOS)], dim=1)
        return src, torch.cat([torch.full((n, 1), BOS), tgt[:, :-1]], dim=1), tgt

    for _ in range(400):
        src, tgt_in, tgt_out = batch()
        loss = model(src, tgt_in, tgt_out)[1]
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    src, tgt_in, tgt_out = batch(256)
    out = model.generate(src, BOS, EOS, max_len=L + 1)
    assert (out == tgt_out).all(dim=1).float().mean().item() > 0.9
    # averaged over heads, layers and examples, target position i attends most to source position L-1-i
    w = torch.stack(model.cross_attention(src, tgt_in)).mean(dim=(0, 1, 2))  # (target, source)
    assert w[:L].argmax(-1).tolist() == list(range(L - 1, -1, -1))


def test_clear_errors():
    enc = Encoder(small())
    with pytest.raises(ValueError, match="block_size"):
        enc(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match="0..19"):
        enc(torch.full((1, 3), 20))
    with pytest.raises(ValueError, match="pad_mask"):
        enc(torch.zeros(1, 3, dtype=torch.long), torch.ones(1, 3))
    with pytest.raises(ValueError, match="no real token"):
        enc(torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 3, dtype=torch.bool))
    attn = MultiHeadAttention(16, 2)
    with pytest.raises(ValueError, match="causal"):
        attn(torch.zeros(1, 3, 16), torch.zeros(1, 4, 16), causal=True)
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match="max_len"):
        Seq2Seq(small()).generate(torch.zeros(1, 3, dtype=torch.long), 0, 1, max_len=16)
