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
