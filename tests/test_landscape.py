"""Published models placed with chapter 04's formulas (course.landscape, chapter 10)."""

from __future__ import annotations

import math

import pytest

from course.families import Encoder, MaskedLM
from course.landscape import PUBLISHED, bert_parameter_count, training_flops
from course.memory import gpt2_parameter_count
from course.model import GPTConfig


def test_bert_counts_are_hugging_faces():
    # BertModel.from_pretrained("bert-base-uncased") / ("bert-large-uncased"): num_parameters()
    assert bert_parameter_count(12, 768) == 109_482_240
    assert bert_parameter_count(24, 1024) == 335_141_888
    assert bert_parameter_count(12, 768, pooler=False) == 109_482_240 - (768 * 768 + 768)


def test_the_course_encoder_has_the_gpt2_shaped_count():
    config = GPTConfig(vocab_size=100, block_size=32, n_layer=3, n_head=4, n_embd=48)
    assert sum(p.numel() for p in Encoder(config).parameters()) == gpt2_parameter_count(3, 48, 100, 32)
    # the masked-LM head is tied to the embedding: no extra parameters
    assert sum(p.numel() for p in MaskedLM(config).parameters()) == gpt2_parameter_count(3, 48, 100, 32)


def test_the_formulas_reproduce_the_published_figures():
    for m in PUBLISHED:
        assert abs(m.params / m.reported_params - 1) < 0.05, (m.name, m.params)
    gpt3 = next(m for m in PUBLISHED if m.name == "GPT-3")
    assert abs(gpt3.params / 175e9 - 1) < 0.01
    assert abs(gpt3.flops / gpt3.reported_flops - 1) < 0.02  # 6ND against the paper's 3.14e23
    assert next(m for m in PUBLISHED if m.name == "GPT-2 small").params == 124_439_808
    assert all((m.flops is None) == (m.train_tokens is None) for m in PUBLISHED)


def test_training_flops_refuses_nonsense():
    assert training_flops(2.0, 3.0) == 36.0
    for bad in ((0, 1), (1, -1), (math.nan, 1)):
        with pytest.raises(ValueError, match="positive"):
            training_flops(*bad)


def test_bert_tokens_follow_its_two_sequence_lengths():
    """Devlin et al. 2019, appendix A.2: 1M steps of 256 sequences, 90% at length 128 and 10% at 512."""
    from course.landscape import BERT_TRAIN_TOKENS, phased_tokens

    by_hand = 900_000 * 256 * 128 + 100_000 * 256 * 512
    assert BERT_TRAIN_TOKENS == pytest.approx(by_hand, rel=1e-12) == pytest.approx(4.25984e10)
    assert 1e6 * 256 * 512 / BERT_TRAIN_TOKENS == pytest.approx(3.08, abs=0.01)  # the single-phase count: 3x too many
    for m in PUBLISHED:
        if m.name.startswith("BERT"):
            assert m.train_tokens == BERT_TRAIN_TOKENS and "appendix A.2" in m.source
    gpt3 = next(m for m in PUBLISHED if m.name == "GPT-3")
    bert = next(m for m in PUBLISHED if m.name == "BERT-large")
    assert bert.flops == pytest.approx(6 * 335_141_888 * by_hand)
    assert 3_600 < gpt3.flops / bert.flops < 3_750  # about 3,700x, not the 1,190x of 512-token steps throughout
    assert phased_tokens(10, 2, ((1.0, 7),)) == 140
    for bad in (((0.5, 128),), ((0.9, 128), (0.2, 512)), ((1.0, 0),), ()):
        with pytest.raises(ValueError):
            phased_tokens(10, 2, bad)


def test_attention_share_counts_the_output_head_as_chapter_04_does():
    """GPT-2 small: 13% / 55% / 95% of the FLOPs per token at 1k / 8k / 128k tokens, recomputed by hand.

    6·N counts the output head (50,257 x 768 = 38.6M, tied to the token embedding); leaving it out
    gives 18% / 64% / 97%, the slip this test guards against.
    """
    import torch

    from course.landscape import attention_flops_share, non_embedding_params
    from course.model import GPT

    L, d, V = 12, 768, 50257
    blocks = L * (12 * d * d + 13 * d)
    head = V * d
    n = blocks + 2 * d + head
    assert head == 38_597_376 and non_embedding_params(L, d, V) == n == 123_653_376
    with torch.device("meta"):
        gpt2 = GPT(GPTConfig(vocab_size=V, block_size=1024, n_layer=L, n_head=12, n_embd=d))
    assert gpt2.num_parameters(non_embedding=True) == n  # the N of GPT.flops_per_token
    for t, percent, without_head in ((1024, 13, 18), (8192, 55, 64), (131072, 95, 97)):
        attention = 12 * L * t * d
        by_hand = attention / (6 * n + attention)
        assert attention_flops_share(L, d, V, t) == pytest.approx(by_hand, rel=1e-12)
        assert attention_flops_share(L, d, V, t) == pytest.approx(attention / gpt2.flops_per_token(t), rel=1e-12)
        assert round(100 * by_hand) == percent
        assert round(100 * attention / (6 * 12 * L * d * d + attention)) == without_head
