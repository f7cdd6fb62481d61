"""Chapter 10 beyond its modules' own tests: the figures, the GPT-3 run record, and the numbers the chapter quotes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from course.landscape import GPT3_RUN, PUBLISHED, TrainingRun


def test_the_gpt3_run_record_is_consistent_with_its_flops():
    """10,000 GPUs x 14.8 days, 3.14e23 FLOPs: about 20% of a V100's 125 TFLOP/s, about 0.36 kWh per GPU-hour."""
    assert GPT3_RUN.accelerator_hours == pytest.approx(3_552_000)
    gpt3 = next(m for m in PUBLISHED if m.name == "GPT-3")
    utilization = gpt3.reported_flops / (GPT3_RUN.accelerator_hours * 3600 * GPT3_RUN.peak_flops)
    assert 0.15 < utilization < 0.25
    assert 0.3 < GPT3_RUN.energy_mwh * 1000 / GPT3_RUN.accelerator_hours < 0.45  # a V100 draws 300 W, plus the host
    assert TrainingRun("x", 2, "y", 1e12, 1.0, 1.0, 1.0, "s").accelerator_hours == 48


def test_the_landscape_figures():
    from matplotlib.figure import Figure

    from course.plots import landscape as P

    w = np.eye(3)[[0, 2, 1]]
    fig = P.alignment_maps([(("a", "b", "c"), ("x", "y", "z"), w, (0, 2, 1))])
    assert isinstance(fig, Figure)
    with pytest.raises(ValueError, match=r"\(target words, source words\)"):
        P.alignment_maps([(("a", "b"), ("x", "y", "z"), w, (0, 1, 1))])

    fig = P.minhash_and_lsh([0.1, 0.5, 0.9], [0.12, 0.47, 0.9], 16, 8, 0.8)
    assert len(fig.axes) == 2 and len(fig.axes[1].lines) == 4  # three S-curves and the threshold
    fig = P.context_cost([256, 512], [0.1, 0.2], [1e6, 4e6])
    assert len(fig.axes) == 2


def test_chapter_10_quotes_what_its_modules_compute():
    """The numbers in the prose that do not depend on training are what the modules give today."""
    from course.data import tinyshakespeare
    from course.landscape import BERT_TRAIN_TOKENS, attention_flops_share
    from course.pretraining_data import run_pipeline
    from notebook_utils import assert_quoted

    def shows(name, value):
        assert_quoted("10_landscape.ipynb", name, value)

    gpt3 = next(m for m in PUBLISHED if m.name == "GPT-3")
    shows("ch10_gpt3_flops", gpt3.flops)
    shows("ch10_gpt3_util", round(100 * gpt3.reported_flops / (GPT3_RUN.accelerator_hours * 3600 * GPT3_RUN.peak_flops)))
    # section 7's attention shares count the output head in 6N (13% / 55% / 95% for GPT-2 small), and
    # section 6's BERT compute follows its two sequence lengths (GPT-3 / BERT-large: about 3,700x)
    shares = [round(100 * attention_flops_share(12, 768, 50257, t)) for t in (1024, 8192, 131072)]
    assert shares == [13, 55, 95]
    for key, share in zip(("ch10_attn_share_1k", "ch10_attn_share_8k", "ch10_attn_share_128k"), shares):
        shows(key, share)
    bert = next(m for m in PUBLISHED if m.name == "BERT-large")
    assert 3_600 < round(gpt3.flops / bert.flops) < 3_750
    shows("ch10_gpt3_vs_bert", round(gpt3.flops / bert.flops))
    shows("ch10_bert_tokens", BERT_TRAIN_TOKENS)
    corpus = tinyshakespeare()
    if corpus.is_fallback:
        pytest.skip("the chapter was executed on Tiny Shakespeare")
    documents = [d for d in corpus.text.split("\n\n") if d.strip()]
    report = run_pipeline(documents, threshold=0.8, min_words=5)
    counts = [s.documents for s in report.stages]
    assert len(documents) == counts[0]
    shows("ch10_docs", len(documents))
    for key, value in (("ch10_exact", counts[0] - counts[1]), ("ch10_near", counts[1] - counts[2]),
                       ("ch10_quality", counts[2] - counts[3]), ("ch10_all_pairs", math.comb(len(documents), 2))):
        shows(key, value)


def test_an_encoder_fills_a_gap_from_the_right_side_a_gpt_cannot():
    """The property behind section 2's fill-in test: a trained masked LM uses the tokens *after* a gap.

    Sequences 'a b a b ...' with a random start: the character after the gap determines the gap; with the left
    side cut off (the gap at position 0) only a bidirectional model can know it.
    """
    import torch

    from course.families import MaskedLM, mask_tokens
    from course.model import GPTConfig

    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=5, block_size=8, n_layer=1, n_head=2, n_embd=32, dropout=0.0)
    model = MaskedLM(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)

    def batch(n):
        start = torch.randint(0, 2, (n, 1), generator=g)
        return (start + torch.arange(8)) % 2  # 0101... or 1010...

    for _ in range(300):
        x, y = mask_tokens(batch(64), 4, 5, p=0.3, generator=g)
        loss = model(x, y)[1]
        opt.zero_grad()
        loss.backward()
        opt.step()
    seqs = batch(200)
    hidden = seqs.clone()
    hidden[:, 0] = 4  # [MASK] at the first position: nothing to its left
    with torch.no_grad():
        guess = model(hidden)[0][:, 0].argmax(-1)
    assert (guess == seqs[:, 0]).float().mean() > 0.95
