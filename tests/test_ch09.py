"""Chapter 09: bits per character for any tokenizer, the scaling-grid runs and results file, the shipped BPE model."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course.evaluate import chars_per_token, token_bits
from course.model import GPT, GPTConfig
from course.evaluate import validation_bpc
from course.scaling import fit_isoflop
from course.scaling_runs import (
    SIZES, grid_model, group_by, isoflop_plan, log_interp, model_facts, run, steps_for, tokens_for_flops,
)
from course.token_data import Dataset, TokenData
from course.tokenizers import BPETokenizer, CharTokenizer

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "scaling.json"
TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n" * 30
        + "Ünïcode: 你好, émoji 🙂 and more.\n")


_BPE = BPETokenizer.train(TEXT, vocab_size=300)


@pytest.fixture(scope="module")
def bpe():
    return _BPE


# ----------------------------------------------------------------------------- characters per token


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=80))
def test_chars_per_token_adds_up_to_the_text_for_any_unicode(text):
    tok = _BPE  # trained once, at import
    ids = tok.encode(text)
    counts = chars_per_token(tok, ids, text)
    assert counts.sum() == len(text) and len(counts) == len(ids) and (counts >= 0).all()


def test_chars_per_token_gives_a_split_character_to_the_token_that_completes_it(bpe):
    text = "a你"  # 你 is three bytes: its byte tokens get 0, 0, 1 if it is not merged
    ids = bpe.encode(text)
    counts = chars_per_token(bpe, ids, text)
    ends = np.cumsum([len(bpe.vocab[i]) for i in ids])
    assert counts.sum() == 2 and counts[-1] == 1 and ends[-1] == len(text.encode())
    char = CharTokenizer.from_text("abc")
    assert chars_per_token(char, char.encode("cab"), "cab").tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match="do not encode"):
        chars_per_token(bpe, bpe.encode("abc"), "abcd")


# ----------------------------------------------------------------------------- bits per character of a model


def _tiny_model(vocab: int, block: int = 16, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=vocab, block_size=block, n_layer=1, n_head=2, n_embd=16)).eval()


def test_validation_bpc_of_a_character_model_is_its_loss_over_ln2():
    from course.evaluate import validation_loss

    tok = CharTokenizer.from_text(TEXT)
    model = _tiny_model(tok.vocab_size)
    bpc, nats, scored, chars = validation_bpc(model, tok, TEXT)
    assert scored == chars == len(TEXT) - 1
    assert nats == pytest.approx(validation_loss(model, tok, TEXT), rel=1e-12)
    assert bpc == pytest.approx(nats / math.log(2), rel=1e-12)


def test_token_bits_is_the_per_token_view_of_validation_bpc(bpe):
    model = _tiny_model(bpe.vocab_size, block=8)
    bpc, _, scored, chars = validation_bpc(model, bpe, TEXT)
    parts = token_bits(model, bpe, TEXT, batch_size=5)  # ragged batches, and a short last window
    assert len(parts["bits"]) == scored and parts["chars"].sum() == chars
    assert parts["bits"].sum() / parts["chars"].sum() == pytest.approx(bpc, rel=1e-9)
    ids = bpe.encode(TEXT)
    assert parts["id"].tolist() == ids[1:]
    lengths = chars_per_token(bpe, ids, TEXT)
    # the first target of every window saw one token of context; the second, two
    assert parts["context"][0] == lengths[0] and parts["context"][1] == lengths[0] + lengths[1]
    assert parts["context"][8] == lengths[8]  # a new window starts at token 8
    assert model.training is False


def test_validation_bpc_needs_two_tokens(bpe):
    with pytest.raises(ValueError, match="at least 2"):
        validation_bpc(_tiny_model(bpe.vocab_size), bpe, "a")


# ----------------------------------------------------------------------------- the grid's runs


def test_grid_models_and_their_flops():
    for n_layer, n_embd in SIZES:
        cfg = grid_model(n_layer, n_embd, 65)
        facts = model_facts(cfg)
        model = GPT(cfg)
        assert facts == {"params": model.num_parameters(), "n_params": model.num_parameters(non_embedding=True),
                         "flops_per_token": model.flops_per_token()}
        assert cfg.n_embd // cfg.n_head == 16
    with pytest.raises(ValueError, match="multiple of the head dimension"):
        grid_model(2, 40, 65)
    with pytest.raises(ValueError, match="at least 10"):
        steps_for(5_000)


def test_an_isoflop_plan_spends_each_budget():
    plan = isoflop_plan([1e12, 3e12], min_tokens=200_000, max_tokens=5_000_000)
    assert plan and {p["flops_budget"] for p in plan} == {1e12, 3e12}
    for p in plan:
        fpt = model_facts(grid_model(p["n_layer"], p["n_embd"], 65))["flops_per_token"]
        assert 200_000 <= p["tokens"] <= 5_000_000
        assert p["tokens"] * fpt == pytest.approx(p["flops_budget"], rel=1e-5)
        assert p["tokens"] == tokens_for_flops(grid_model(p["n_layer"], p["n_embd"], 65), p["flops_budget"])
    sizes = {(p["n_layer"], p["n_embd"]) for p in plan if p["flops_budget"] == 1e12}
    assert len(sizes) >= 3  # enough sizes for a parabola


def test_a_run_trains_scores_and_is_deterministic():
    tok = CharTokenizer.from_text(TEXT)
    ids = np.asarray(tok.encode(TEXT))
    data = Dataset(TokenData(ids[:2000]), TokenData(ids[2000:]), tok, "test")
    val_text = TEXT[2000:]
    first = run(data, val_text, 1, 16, 20 * 8 * 32, block_size=32, threads=1)
    again = run(data, val_text, 1, 16, 20 * 8 * 32, block_size=32, threads=1)
    other = run(data, val_text, 1, 16, 20 * 8 * 32, block_size=32, threads=1, seed=1)
    assert first.steps == 20 and first.tokens == 20 * 8 * 32
    assert first.flops == pytest.approx(model_facts(grid_model(1, 16, tok.vocab_size, 32))["flops_per_token"] * first.tokens)
    assert first.val_bpc == again.val_bpc and first.val_bpc != other.val_bpc
    assert first.val_bpc < math.log2(tok.vocab_size)  # it learned something in 20 steps
    assert first.val_bpc == pytest.approx(first.val_loss / math.log(2))  # characters: one token each


def test_group_by_and_log_interp():
    rows = [{"k": 2, "v": 1}, {"k": 1, "v": 2}, {"k": 2, "v": 3}]
    assert group_by(rows, "k") == {2: [rows[0], rows[2]], 1: [rows[1]]}
    assert log_interp(10.0, [1.0, 100.0], [1.0, 10_000.0]) == pytest.approx(100.0)
    with pytest.raises(ValueError, match="outside"):
        log_interp(1000.0, [1.0, 100.0], [1.0, 2.0])


def test_isoflop_reads_d_star_off_the_runs_tokens():
    n = np.array([1e4, 3e4, 1e5, 3e5, 1e6])
    loss = 3.0 + 0.2 * (np.log(n) - np.log(8e4)) ** 2
    tokens = 5e11 / (7.0 * n)  # as if every token cost 7 N FLOPs (attention included), not 6 N
    fit = fit_isoflop(5e11, n, loss, tokens=tokens)
    assert fit.n_opt == pytest.approx(8e4, rel=1e-6)
    assert fit.tokens_opt == pytest.approx(5e11 / (7.0 * 8e4), rel=1e-6)
    assert fit_isoflop(5e11, n, loss).tokens_opt == pytest.approx(5e11 / (6.0 * 8e4), rel=1e-6)


# ----------------------------------------------------------------------------- the stored grid and the script


def test_the_stored_grid_is_complete_and_consistent():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import scaling_grid
    finally:
        sys.path.pop(0)
    stored = json.loads(RESULTS.read_text())
    keys = {scaling_grid.key(r) for r in stored["runs"]}
    assert keys == {scaling_grid.key(p) for p in scaling_grid.plan(scaling_grid.FULL)}, "re-run benchmarks/scaling_grid.py"
    for r in stored["runs"]:
        arch = grid_model(r["n_layer"], r["n_embd"], r["vocab_size"])
        facts = model_facts(arch)
        assert (r["params"], r["n_params"]) == (facts["params"], facts["n_params"])
        assert r["flops"] == pytest.approx(facts["flops_per_token"] * r["tokens"])
        assert r["tokens"] == r["steps"] * 8 * 128 and r["tokens"] <= r["tokens"] // 1024 * 1024 + 1023
        assert 0.5 < r["val_bpc"] < math.log2(r["vocab_size"])
    for budget, runs in group_by([r for r in stored["runs"] if r["part"] == "isoflop"], "flops_budget").items():
        assert all(abs(r["flops"] / budget - 1) < 0.01 for r in runs)  # whole steps: within 1% of the budget


def test_the_grid_script_runs_and_resumes(tmp_path):
    out = tmp_path / "grid.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "scaling_grid.py"), "--quick", "--out", str(out)]
    first = subprocess.run(cmd, capture_output=True, text=True, check=True)
    data = json.loads(out.read_text())
    assert len(data["runs"]) == first.stdout.count("] ") and data["runs"]
    second = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert "] " not in second.stdout.replace(f"] {len(data['runs'])} runs", "")  # nothing re-run
    assert json.loads(out.read_text())["runs"] == data["runs"]


# ----------------------------------------------------------------------------- the shipped BPE model


def test_the_shipped_bpe_model_is_the_sweeps_choice_and_reproduces_its_record():
    from course.pretrained import SHIPPED_BPE, load_pretrained

    if not (SHIPPED_BPE / "model.safetensors").is_file():
        pytest.skip("no shipped BPE checkpoint in this checkout")
    pre = load_pretrained(tokenizer="bpe")
    assert pre.source == "shipped" and isinstance(pre.tokenizer, BPETokenizer)
    stored = json.loads(RESULTS.read_text())
    sweep = [r for r in stored["runs"] if r["part"] == "vocab_flops" and r["vocab"]]
    means = {v: np.mean([r["val_bpc"] for r in sweep if r["vocab"] == v]) for v in {r["vocab"] for r in sweep}}
    assert pre.tokenizer.vocab_size == min(means, key=means.get) == pre.info["vocab_size"]
    from course.pretrained import BPE_VOCAB_SIZE

    assert BPE_VOCAB_SIZE == pre.tokenizer.vocab_size  # the quick fallback trains the same vocabulary
    char = load_pretrained()
    assert pre.model.config.n_layer == char.model.config.n_layer and pre.model.config.n_embd == char.model.config.n_embd
    n = pre.model.num_parameters()
    assert (SHIPPED_BPE / "model.safetensors").stat().st_size < 2 * n + 2**16  # bfloat16: 2 bytes per parameter
    text = "ROMEO:\nWhat light through yonder window breaks?\n" * 40
    bpc, *_ = validation_bpc(pre.model, pre.tokenizer, text)
    assert bpc < 3.0
    assert f"{pre.info['val_bpc']:.4f}" in (SHIPPED_BPE / "TRAINING.md").read_text()


def test_the_shipped_bpe_models_record_reproduces():
    """info.json's bits per character, recomputed on the whole validation split (about 10 s)."""
    from course.pretrained import SHIPPED_BPE, load_pretrained

    if not (SHIPPED_BPE / "model.safetensors").is_file():
        pytest.skip("no shipped BPE checkpoint in this checkout")
    pre = load_pretrained(tokenizer="bpe")
    bpc, nats, scored, chars = validation_bpc(pre.model, pre.tokenizer)
    assert (scored, chars) == (pre.info["val_tokens_scored"], pre.info["val_chars_scored"])
    assert bpc == pytest.approx(pre.info["val_bpc"], abs=2e-4)


def test_load_pretrained_rejects_an_unknown_tokenizer():
    from course.pretrained import load_pretrained

    with pytest.raises(ValueError, match="tokenizer must be one of"):
        load_pretrained(tokenizer="wordpiece")


def test_a_missing_bpe_model_is_replaced_by_a_quick_bpe_run(tmp_path, monkeypatch):
    import course.pretrained as P

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(P, "SHIPPED_BPE", tmp_path / "missing")
    real = P.quick_cpu_model
    monkeypatch.setattr(P, "quick_cpu_model", lambda folder=None, max_iters=600, tokenizer="char": real(folder, 2, tokenizer))
    pre = P.load_pretrained(tokenizer="bpe")
    assert pre.source == "quick CPU run" and isinstance(pre.tokenizer, BPETokenizer)
    assert pre.tokenizer.vocab_size == P.BPE_VOCAB_SIZE == pre.model.config.vocab_size


def test_chapter_09_quotes_the_shipped_models_records():
    """The bits per character chapter 09's prose quotes are those the checkpoints record (both models, the same text)."""
    from course.pretrained import SHIPPED, SHIPPED_BPE
    from notebook_utils import assert_quoted

    if not (SHIPPED_BPE / "model.safetensors").is_file():
        pytest.skip("no shipped BPE checkpoint in this checkout")
    char_info = json.loads((SHIPPED / "info.json").read_text())
    bpe_info = json.loads((SHIPPED_BPE / "info.json").read_text())
    assert_quoted("09_scaling.ipynb", "ch09_char_bpc", char_info["val_loss"] / math.log(2))
    assert_quoted("09_scaling.ipynb", "ch09_bpe_bpc", bpe_info["val_bpc"])


def test_the_scaling_figures():
    from matplotlib.figure import Figure

    from course.plots import scaling as P
    from course.scaling import fit_power_law

    rows = [{"vocab": v, "chars_per_token": c, "window_chars": 256 * c, "rare_share": r}
            for v, c, r in ((65, 1.0, 0.03), (512, 1.9, 0.4), (1024, 2.3, 0.2))]
    fig = P.tokenizer_tradeoffs(rows)
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    runs = [{"tokenizer": t, "val_bpc": b} for t, b in (("char", 3.2), ("char", 3.3), ("bpe-512", 2.8))]
    fig = P.vocab_sweep({"a": runs, "b": runs}, live={"char": 3.25}, live_panel="b")
    assert len(fig.axes) == 2 and len(fig.axes[1].collections) > len(fig.axes[0].collections)  # the live marker
    n = np.array([1e4, 3e4, 1e5])
    fit = fit_isoflop(1e12, n, [3.0, 2.9, 3.1])
    fig = P.isoflop_curves({1e12: [{"n_params": x, "val_bpc": y} for x, y in zip(n, [3.0, 2.9, 3.1])]}, {1e12: fit},
                           live=[{"n_params": 3e4, "val_bpc": 2.91}])
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) == 4  # points, parabola, optimum, live
    law = fit_power_law(n, [3.0, 2.8, 2.6])
    fig = P.power_laws([(n, [3.0, 2.8, 2.6], law, "N", "L(N)")] * 2)
    assert len(fig.axes) == 2 and "alpha" in fig.axes[0].get_legend().get_texts()[1].get_text()
    fig = P.context_use({"a": ([1, 10, 100], [4.0, 2.5, 2.0])})
    assert fig.axes[0].get_xscale() == "symlog"
    fig = P.rarity_cost(["rare", "common"], [5.0, 1.5], [0.1, 0.9])
    assert len(fig.axes[0].patches) == 2


# ----------------------------------------------------------------------------- the exercise checks


def _blank(*args):
    raise NotImplementedError


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # the slip divides by zero, as a learner's would
def test_the_bits_per_char_check_passes_the_solution_and_names_the_slips(capsys):
    from course.checks import ExerciseFailed, NotImplementedYet
    from course.checks.ch09 import check_bits_per_char
    from solutions.ch09_scaling import to_bits_per_char

    check_bits_per_char(to_bits_per_char)
    assert "all checks passed" in capsys.readouterr().out
    with pytest.raises(NotImplementedYet):
        check_bits_per_char(_blank)
    ln2 = math.log(2)
    slips = [
        (lambda n, c: float(np.sum(n) / np.sum(c)), "still in nats"),
        (lambda n, c: float(np.mean(n) / ln2), "bits per \\*token\\*"),
        (lambda n, c: float(np.mean(np.asarray(n) / np.asarray(c)) / ln2), "divides by zero"),
        (lambda n, c: float(np.mean([a / b for a, b in zip(n, c) if b]) / ln2), "mean of per-token ratios"),
        (lambda n, c: float(np.sum(c) / np.sum(n) / ln2), "upside down"),
        (lambda n, c: float(np.sum(n) / np.sum(c) / math.log(10)), "ln 10"),
        (lambda n, c: float(np.sum(n) / np.count_nonzero(c) / ln2), "number of tokens that have characters"),
        (lambda n, c: 1.0, "expected"),
    ]
    for fn, message in slips:
        with pytest.raises(ExerciseFailed, match=message):
            check_bits_per_char(fn)


def test_the_bits_per_char_solution_is_validation_bpc_of_the_token_costs(bpe):
    from solutions.ch09_scaling import to_bits_per_char

    model = _tiny_model(bpe.vocab_size, block=8)
    parts = token_bits(model, bpe, TEXT)
    bpc, *_ = validation_bpc(model, bpe, TEXT)
    assert to_bits_per_char(parts["bits"] * math.log(2), parts["chars"]) == pytest.approx(bpc, rel=1e-9)
    assert (parts["chars"] == 0).any()  # the text has tokens that complete no character (the Chinese bytes)


def test_the_isoflop_check_passes_the_solution_and_names_the_slips(capsys):
    from course.checks import ExerciseFailed, NotImplementedYet
    from course.checks.ch09 import check_isoflop_optimum
    from solutions.ch09_scaling import isoflop_optimum

    check_isoflop_optimum(isoflop_optimum)
    assert "all checks passed" in capsys.readouterr().out
    with pytest.raises(NotImplementedYet):
        check_isoflop_optimum(_blank)

    def vertex_in(transform, back, n, loss):
        a, b, c = np.polyfit(transform(np.asarray(n, float)), np.asarray(loss, float), 2)
        u = -b / (2 * a)
        return float(back(u)), float(a * u * u + b * u + c)

    def no_sign_check(n, loss):
        a, b, c = np.polyfit(np.log(np.asarray(n, float)), np.asarray(loss, float), 2)
        u = -b / (2 * a)
        return float(np.exp(u)), float(a * u * u + b * u + c)

    slips = [
        (lambda n, loss: vertex_in(lambda x: x, lambda u: u, n, loss), "fitted in N itself"),
        (lambda n, loss: vertex_in(np.log, lambda u: u, n, loss), "is ln N\\*"),
        (lambda n, loss: vertex_in(np.log10, np.exp, n, loss), "same base"),
        (lambda n, loss: (float(np.asarray(n)[np.argmin(loss)]), float(np.min(loss))), "lowest of the runs"),
        (lambda n, loss: isoflop_optimum(n, loss)[::-1], "swapped"),
        (lambda n, loss: (isoflop_optimum(n, loss)[0], float(np.min(loss))), "lowest run's loss"),
        (no_sign_check, "maximum"),
        (lambda n, loss: (1.0, 1.0), "expected"),
    ]
    for fn, message in slips:
        with pytest.raises(ExerciseFailed, match=message):
            check_isoflop_optimum(fn)
    # log10 both ways is right, and so is a fit by hand
    check_isoflop_optimum(lambda n, loss: vertex_in(np.log10, lambda u: 10.0 ** u, n, loss)
                          if np.polyfit(np.log(np.asarray(n, float)), np.asarray(loss, float), 2)[0] > 0
                          else (_ for _ in ()).throw(ValueError("no minimum")))


def test_the_isoflop_solution_is_fit_isoflop():
    from solutions.ch09_scaling import isoflop_optimum

    rng = np.random.default_rng(1)
    n = np.geomspace(1e4, 1e6, 6)
    loss = 3.0 + 0.1 * (np.log(n) - np.log(7e4)) ** 2 + rng.normal(0, 0.01, 6)
    fit = fit_isoflop(1e12, n, loss)
    n_opt, loss_opt = isoflop_optimum(n, loss)
    assert n_opt == pytest.approx(fit.n_opt, rel=1e-9) and loss_opt == pytest.approx(fit.loss_opt, rel=1e-9)


def test_local_exponents_and_simulated_refits():
    from course.scaling import fit_power_law, local_exponents, simulated_refits

    x = np.array([1e3, 1e4, 1e5, 1e6])
    assert local_exponents(x, 5 * x ** -0.2) == pytest.approx([0.2, 0.2, 0.2])
    assert local_exponents(x[::-1], (5 * x ** -0.2)[::-1]) == pytest.approx([0.2, 0.2, 0.2])  # sorted by x
    leveling = 1.0 + 5 * x ** -0.3
    assert np.all(np.diff(local_exponents(x, leveling)) < 0)  # an irreducible loss: the slope falls
    with pytest.raises(ValueError, match="same x"):
        local_exponents([1.0, 1.0, 2.0], [3.0, 2.0, 1.0])
    rng = np.random.default_rng(0)
    loss = 5 * x ** -0.2 * np.exp(rng.normal(0, 0.02, 4))
    fit = fit_power_law(x, loss)
    refits = simulated_refits(x, loss, fit, n=2000, seed=0)
    spread = np.std([r.alpha for r in refits])
    assert spread == pytest.approx(fit.alpha_stderr, rel=0.1)  # the standard error is the spread of refits
    assert [r.alpha for r in simulated_refits(x, loss, fit, n=5, seed=3)] == [
        r.alpha for r in simulated_refits(x, loss, fit, n=5, seed=3)]
    with pytest.raises(ValueError, match="points the fit was made on"):
        simulated_refits(x[:3], loss[:3], fit)
    with pytest.raises(ValueError, match="n must be"):
        simulated_refits(x, loss, fit, n=1)


def test_the_fit_uncertainty_figure():
    from course.plots.scaling import fit_uncertainty
    from course.scaling import fit_power_law, simulated_refits

    x = np.array([1e3, 1e4, 1e5, 1e6])
    loss = np.array([3.0, 2.7, 2.3, 2.1])
    fit = fit_power_law(x, loss)
    fig = fit_uncertainty(x, loss, fit, simulated_refits(x, loss, fit, n=50), "D", "L(D)", shown=10)
    assert len(fig.axes) == 3 and len(fig.axes[0].lines) == 12  # 10 refits, the fit, the runs


def test_chapter_09_quotes_what_the_stored_grid_gives():
    """The L(D) caveats and the head's share of N, quoted in the chapter's prose, recomputed from scaling.json."""
    from course.scaling import fit_power_law, local_exponents
    from notebook_utils import assert_quoted

    def shows(name, value):
        assert_quoted("09_scaling.ipynb", name, value)

    runs = json.loads(RESULTS.read_text())["runs"]
    char_runs = [r for r in runs if r["part"] in ("isoflop", "fixed_tokens")]
    by_size = group_by(char_runs, "n_params")
    ld = sorted(by_size[max(n for n, rs in by_size.items() if len({r["tokens"] for r in rs}) >= 4)],
                key=lambda r: r["tokens"])
    x, y = [r["tokens"] for r in ld], [r["val_bpc"] for r in ld]
    slopes = local_exponents(x, y)
    assert 0.06 < slopes[0] < 0.08 and 0.15 < slopes[-1] < 0.17
    shows("ch09_ld_slope_first", slopes[0])
    shows("ch09_ld_slope_last", slopes[-1])
    floor = fit_power_law(x, y, irreducible=True).E
    assert floor == 0.0  # the fit asks for no floor
    shows("ch09_ld_floor", floor)
    steps = (min(r["steps"] for r in ld), max(r["steps"] for r in ld))
    assert steps == (400, 3601)
    shows("ch09_ld_steps_min", steps[0])
    shows("ch09_ld_steps_max", steps[1])
    smallest = min(char_runs, key=lambda r: r["n_params"])
    share = smallest["vocab_size"] * smallest["n_embd"] / smallest["n_params"]
    assert share == pytest.approx(65 * 16 / 7632) and 0.13 < share < 0.14
    shows("ch09_head_share_small", share)
    t95 = 0.95 * math.sqrt(2 / (1 - 0.95 ** 2))  # Student's t, 2 degrees of freedom, 95%
    assert t95 == pytest.approx(4.3027, abs=1e-4)
    shows("ch09_t95_4", t95)
