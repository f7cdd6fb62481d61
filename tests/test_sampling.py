"""course.sampling: exact processors on hand-made logits, reproducibility, cached == uncached, stops, beams, perplexity."""

from __future__ import annotations

import itertools
import math
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import course.sampling as sampling
from course.evaluate import evaluate_nll, perplexity, sequence_logprob
from course.model import GPT, GPTConfig
from course.sampling import (
    apply_processors,
    apply_temperature,
    beam_search,
    build_processors,
    entropy,
    frequency_penalty,
    generate,
    generate_text,
    kv_cache_bytes,
    min_p_filter,
    next_token_probs,
    repetition_penalty,
    stream,
    stream_text,
    top_k_filter,
    top_p_filter,
)
from course.tokenizers import CharTokenizer

@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models step fastest on one thread (and do not stall when other jobs share the CPU)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


SMALL = dict(vocab_size=13, block_size=16, n_layer=2, n_head=2, n_embd=32)
ALPHABET = "abcdefghijk \n"  # 13 characters: a tokenizer for the small model


def _model(seed: int = 0, scale: float = 4.0, **kw) -> GPT:
    """A small random GPT whose head is scaled up so its distributions are peaked, like a trained model's."""
    torch.manual_seed(seed)
    model = GPT(GPTConfig(**{**SMALL, **kw})).eval()
    with torch.no_grad():
        model.norm_f.weight.mul_(scale)
    return model


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


PROBS = torch.tensor([[0.5, 0.3, 0.15, 0.05]], dtype=torch.float64)
LOGITS = PROBS.log()  # softmax(LOGITS) == PROBS


def _renorm(p: torch.Tensor, keep: list[int]) -> torch.Tensor:
    out = torch.zeros_like(p)
    out[..., keep] = p[..., keep] / p[..., keep].sum()
    return out


# ----------------------------------------------------------------------------- each processor, exactly


def test_temperature_divides_logits():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]], dtype=torch.float64)
    for t in (0.5, 1.0, 2.0):
        expected = torch.exp(logits / t) / torch.exp(logits / t).sum()
        assert torch.allclose(torch.softmax(apply_temperature(logits, t), -1), expected, atol=1e-15)
    # low temperature approaches the argmax; high temperature approaches uniform
    assert torch.softmax(apply_temperature(logits, 0.01), -1)[0, 0] > 0.999
    assert torch.allclose(torch.softmax(apply_temperature(logits, 1e4), -1), torch.full((1, 4), 0.25, dtype=torch.float64), atol=1e-3)
    for bad in (0, 0.0, -1.0, float("inf"), float("nan"), True):
        with pytest.raises(ValueError, match="greedy=True"):
            apply_temperature(logits, bad)


def test_top_k_keeps_exactly_the_k_largest():
    for k, keep in ((1, [0]), (2, [0, 1]), (3, [0, 1, 2]), (4, [0, 1, 2, 3]), (99, [0, 1, 2, 3])):
        got = torch.softmax(top_k_filter(LOGITS, k), -1)
        assert torch.allclose(got, _renorm(PROBS, keep), atol=1e-15), k
    shuffled = torch.tensor([1.0, 3.0, 2.0, 0.0])
    assert torch.isinf(top_k_filter(shuffled, 2)).tolist() == [True, False, False, True]
    for bad in (0, -1, 1.5, True, None):
        with pytest.raises(ValueError, match="top_k must be an int >= 1"):
            top_k_filter(LOGITS, bad)


@pytest.mark.parametrize("p, keep", [(0.3, [0]), (0.5, [0]), (0.6, [0, 1]), (0.75, [0, 1]), (0.85, [0, 1, 2]), (0.99, [0, 1, 2, 3])])
def test_top_p_keeps_the_smallest_set_that_reaches_p(p, keep):
    # probabilities 0.5, 0.3, 0.15, 0.05; cumulative 0.5, 0.8, 0.95, 1.0: the token that crosses p is kept
    got = torch.softmax(top_p_filter(LOGITS, p), -1)
    assert torch.allclose(got, _renorm(PROBS, keep), atol=1e-12), (p, got)


def test_top_p_one_changes_nothing_and_bad_p_is_refused():
    logits = torch.randn(3, 10, generator=_gen(0))
    assert torch.equal(top_p_filter(logits, 1.0), logits)
    assert torch.equal(apply_processors(logits, None, build_processors(top_p=1.0)), logits)
    for bad in (0.0, -0.1, 1.01, float("nan"), True):
        with pytest.raises(ValueError, match=r"top_p must be in \(0, 1\]"):
            top_p_filter(logits, bad)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-50, 50), min_size=1, max_size=12, unique=True), st.floats(0.01, 1.0))
def test_top_p_matches_its_definition(values, p):
    logits = torch.tensor(values, dtype=torch.float64) / 10  # distinct logits: no ties in the order
    probs = torch.softmax(logits, -1)
    order = torch.argsort(probs, descending=True)
    cumulative = probs[order].cumsum(0)
    # the definition: the smallest number of most likely tokens whose mass reaches p
    n_keep = int((cumulative < p - 1e-12).sum()) + 1
    n_keep = min(n_keep, len(values))
    kept = set(order[:n_keep].tolist())
    got = set(torch.nonzero(torch.isfinite(top_p_filter(logits, p))).flatten().tolist())
    boundary = any(abs(float(c) - p) < 1e-9 for c in cumulative)  # float ties at the cut: either answer is right
    assert got == kept or boundary


def test_min_p_keeps_tokens_above_a_fraction_of_the_top_probability():
    for min_p, keep in ((0.05, [0, 1, 2, 3]), (0.2, [0, 1, 2]), (0.35, [0, 1]), (0.7, [0]), (1.0, [0])):
        got = torch.softmax(min_p_filter(LOGITS, min_p), -1)
        assert torch.allclose(got, _renorm(PROBS, keep), atol=1e-12), min_p
    for bad in (0.0, 1.5, -1.0):
        with pytest.raises(ValueError, match="min_p"):
            min_p_filter(LOGITS, bad)


def test_repetition_penalty_divides_positive_and_multiplies_negative_logits():
    logits = torch.tensor([[2.0, -1.0, 0.5, 3.0]])
    ids = torch.tensor([[0, 1, 1]])
    assert repetition_penalty(logits, ids, 2.0).tolist() == [[1.0, -2.0, 0.5, 3.0]]
    assert torch.equal(repetition_penalty(logits, ids, 1.0), logits)
    with pytest.raises(ValueError, match="repetition_penalty"):
        repetition_penalty(logits, ids, 0.0)
    with pytest.raises(ValueError, match="same batch"):
        repetition_penalty(logits, torch.zeros(2, 3, dtype=torch.long), 2.0)


def test_frequency_and_presence_penalties_count_occurrences():
    logits = torch.tensor([[2.0, -1.0, 0.5, 3.0]])
    ids = torch.tensor([[0, 1, 1]])
    got = frequency_penalty(logits, ids, frequency=0.5, presence=0.25)
    assert torch.allclose(got, torch.tensor([[2.0 - 0.5 - 0.25, -1.0 - 1.0 - 0.25, 0.5, 3.0]]))
    assert torch.equal(frequency_penalty(logits, ids), logits)


def test_processors_compose_in_order_and_validate_early():
    logits = torch.randn(2, 9, generator=_gen(1))
    ids = torch.tensor([[1, 2, 2], [3, 3, 4]])
    chain = build_processors(temperature=0.7, top_k=5, top_p=0.9, min_p=0.05, repetition_penalty=1.3, frequency_penalty=0.2)
    # a processor is a plain function: each core with its checked setting bound
    assert _described(chain) == [("_repetition", {"penalty": 1.3}), ("_frequency", {"frequency": 0.2, "presence": 0.0}),
                                 ("_temperature", {"temperature": 0.7}), ("_top_k", {"k": 5}), ("_top_p", {"p": 0.9}),
                                 ("_min_p", {"min_p": 0.05})]
    by_hand = min_p_filter(top_p_filter(top_k_filter(frequency_penalty(repetition_penalty(logits, ids, 1.3), ids, 0.2) / 0.7, 5), 0.9), 0.05)
    assert torch.equal(apply_processors(logits, ids, chain), by_hand)
    probs = next_token_probs(logits, ids, temperature=0.7, top_k=5, top_p=0.9, min_p=0.05, repetition_penalty=1.3, frequency_penalty=0.2)
    assert torch.allclose(probs.sum(-1), torch.ones(2)) and torch.equal(probs > 0, torch.isfinite(by_hand))
    assert build_processors() == [], "the defaults must change nothing"
    with pytest.raises(ValueError, match="greedy"):
        build_processors(temperature=0.0)
    with pytest.raises(ValueError, match="top_k"):
        build_processors(top_k=0)


def _described(chain):
    """A chain of built-in processors as (core, bound settings): partials do not compare equal themselves."""
    return [(p.func.__name__, p.keywords) for p in chain]


def test_settings_are_checked_once_when_the_chain_is_built_never_per_token(monkeypatch):
    calls = []
    real = sampling._check_top_k
    monkeypatch.setattr(sampling, "_check_top_k", lambda k: calls.append(k) or real(k))
    model = _model()
    cfg = sampling.SamplingConfig(temperature=0.9, top_k=4)
    made = len(calls)
    short = generate(model, torch.tensor([1, 2]), 2, cfg, generator=_gen(0))
    per_call = len(calls) - made
    generate(model, torch.tensor([1, 2]), 12, cfg, generator=_gen(0))
    assert made == 1 and len(calls) - made == 2 * per_call, "the checks ran per token, not once per chain"
    assert short.shape == (1, 4)


def test_entropy_of_uniform_and_certain_distributions():
    assert math.isclose(float(entropy(torch.zeros(8))), math.log(8), rel_tol=1e-12)
    assert math.isclose(float(entropy(torch.zeros(8), base=2)), 3.0, rel_tol=1e-12)
    certain = torch.tensor([0.0, float("-inf"), float("-inf")])
    assert float(entropy(certain)) == 0.0


# ----------------------------------------------------------------------------- generation


def test_same_seed_same_tokens_and_different_seed_different_tokens():
    model = _model()
    prompt = torch.tensor([[1, 2, 3]])
    a = generate(model, prompt, 30, generator=_gen(7))
    b = generate(model, prompt, 30, generator=_gen(7))
    c = generate(model, prompt, 30, generator=_gen(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.shape == (1, 33) and torch.equal(a[:, :3], prompt)


def test_top_k_one_equals_greedy_and_top_p_one_changes_nothing():
    model = _model()
    prompt = torch.tensor([[4, 5]])
    greedy = generate(model, prompt, 25, greedy=True)
    assert torch.equal(generate(model, prompt, 25, top_k=1, generator=_gen(3)), greedy)
    assert torch.equal(generate(model, prompt, 25, top_k=1, temperature=5.0, generator=_gen(4)), greedy)
    assert torch.equal(generate(model, prompt, 25, top_p=1.0, generator=_gen(5)), generate(model, prompt, 25, generator=_gen(5)))


class _Recorder:
    """A processor that changes nothing and keeps the logits it saw."""

    def __init__(self) -> None:
        self.seen: list[torch.Tensor] = []

    def __call__(self, logits, ids):
        self.seen.append(logits.clone())
        return logits


@pytest.mark.parametrize("overflow", ["slide", "halve"])
@pytest.mark.parametrize("positional", ["learned", "rope"])
def test_cached_generation_equals_uncached(overflow, positional):
    model = _model(positional=positional)
    prompt = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    runs = {}
    for use_cache in (True, False):
        rec = _Recorder()
        out = generate(model, prompt, 40, generator=_gen(11), use_cache=use_cache, overflow=overflow, processors=[rec])
        runs[use_cache] = (out, torch.stack(rec.seen))
    assert runs[True][0].shape == (2, 44)  # 44 > block_size = 16: the window slid (or halved) on the way
    assert torch.equal(runs[True][0], runs[False][0])
    assert torch.allclose(runs[True][1], runs[False][1], atol=1e-5, rtol=1e-5)


def test_batched_prompts_equal_one_at_a_time():
    model = _model()
    prompts = torch.tensor([[1, 2, 3], [3, 2, 1], [7, 7, 7]])
    batch = generate(model, prompts, 20, greedy=True, repetition_penalty=1.5)
    for row in range(3):
        single = generate(model, prompts[row], 20, greedy=True, repetition_penalty=1.5)
        assert torch.equal(batch[row], single[0])


def test_stream_yields_one_token_per_row_per_step():
    model = _model()
    tokens = list(stream(model, torch.tensor([[1, 2], [3, 4]]), 5, generator=_gen(0)))
    assert len(tokens) == 5 and all(t.shape == (2,) for t in tokens)
    assert list(stream(model, torch.tensor([1]), 0)) == []


def test_end_of_text_stops_each_row_and_pads_it():
    model = _model()
    prompt = torch.tensor([[1, 2, 3]])
    free = generate(model, prompt, 20, greedy=True)[0, 3:].tolist()
    eos = free[5]
    first = free.index(eos)
    out = generate(model, prompt, 20, greedy=True, eos_id=eos)[0, 3:].tolist()
    assert out == free[: first + 1], "generation must stop right after the end-of-text token"
    # batch: the row that stops is padded until the other stops or runs out
    prompts = torch.tensor([[1, 2, 3], [9, 9, 9]])
    other = generate(model, prompts[1], 20, greedy=True)[0, 3:].tolist()
    batch = generate(model, prompts, 20, greedy=True, eos_id=eos, pad_id=0)
    stop_other = other.index(eos) + 1 if eos in other else 20
    assert batch.shape[1] - 3 == max(first + 1, stop_other)
    assert batch[0, 3:].tolist()[: first + 1] == free[: first + 1]
    assert set(batch[0, 3 + first + 1:].tolist()) <= {0}


def test_stop_strings_cut_the_text_and_streaming_agrees():
    model = _model()
    tok = CharTokenizer(list(ALPHABET))
    free = generate_text(model, tok, "abc", 30, greedy=True)
    assert len(free) == 30
    stop = free[8:11]
    expected = free[: free.find(stop)]
    assert generate_text(model, tok, "abc", 30, greedy=True, stop_strings=[stop]) == expected
    pieces = list(stream_text(model, tok, "abc", 30, greedy=True, stop_strings=[stop, free[2] + "z"]))  # the second never matches, but its start does: held back, then shown
    assert "".join(pieces) == expected
    assert all(p for p in pieces), "no empty pieces"
    with pytest.raises(ValueError, match="decode"):
        generate(model, torch.tensor([1]), 5, stop_strings=["a"])


# ----------------------------------------------------------------------------- bad input


def test_clear_errors_for_bad_input():
    model = _model()
    with pytest.raises(ValueError, match="empty"):
        generate(model, torch.zeros(1, 0, dtype=torch.long), 5)
    with pytest.raises(ValueError, match="empty"):
        generate(model, [], 5)
    with pytest.raises(ValueError, match="greedy=True"):
        generate(model, torch.tensor([1]), 5, temperature=0)
    with pytest.raises(ValueError, match="top_p"):
        generate(model, torch.tensor([1]), 5, top_p=1.5)
    with pytest.raises(ValueError, match="top_k"):
        generate(model, torch.tensor([1]), 5, top_k=0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(model, torch.tensor([1]), -1)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        generate(model, torch.tensor([99]), 5)
    with pytest.raises(TypeError, match="integer token ids"):
        generate(model, torch.tensor([1.0]), 5)
    with pytest.raises(ValueError, match="overflow"):
        generate(model, torch.tensor([1]), 5, overflow="wrap")


def test_long_prompt_is_truncated_with_a_warning_or_refused():
    model = _model()
    long = torch.randint(0, 13, (1, 25), generator=_gen(0))
    with pytest.warns(UserWarning, match="only its last 16 tokens are used"):
        out = generate(model, long, 5, greedy=True)
    assert out.shape == (1, 30) and torch.equal(out[:, :25], long)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert torch.equal(out[:, 25:], generate(model, long[:, -16:], 5, greedy=True)[:, 16:])
    with pytest.raises(ValueError, match="block_size=16"):
        generate(model, long, 5, long_prompt="error")


# ----------------------------------------------------------------------------- beam search


def test_one_beam_is_greedy():
    model = _model()
    prompt = torch.tensor([2, 3])
    (beam,) = beam_search(model, prompt, 12, num_beams=1)
    assert torch.equal(beam.ids, generate(model, prompt, 12, greedy=True)[0, 2:])
    assert math.isclose(beam.logprob, sequence_logprob(model, prompt, beam.ids), rel_tol=1e-6)  # float32 model


def test_wide_beam_finds_the_most_likely_sequence():
    model = _model(vocab_size=5, scale=1.0)
    prompt = torch.tensor([1, 2])
    best = max(itertools.product(range(5), repeat=3), key=lambda s: sequence_logprob(model, prompt, torch.tensor(s)))
    beams = beam_search(model, prompt, 3, num_beams=25)
    assert beams[0].ids.tolist() == list(best)
    scores = [b.logprob for b in beams]
    assert scores == sorted(scores, reverse=True) and len(beams) == 25
    for b in beams[:5]:
        assert math.isclose(b.logprob, sequence_logprob(model, prompt, b.ids), rel_tol=1e-6)
    with pytest.raises(ValueError, match="num_beams"):
        beam_search(model, prompt, 3, num_beams=0)


def test_beam_search_finishes_beams_at_end_of_text():
    model = _model()
    prompt = torch.tensor([1, 2])
    beams = beam_search(model, prompt, 10, num_beams=3, eos_id=4)
    for b in beams:
        ids = b.ids.tolist()
        assert 4 not in ids[:-1], "nothing follows the end-of-text token"
        assert math.isclose(b.score, b.logprob / len(ids), rel_tol=1e-12)


# ----------------------------------------------------------------------------- perplexity, cache size


def test_evaluate_nll_equals_the_models_loss_and_uniform_model_has_perplexity_v():
    model = _model()
    ids = torch.randint(0, 13, (1, 17), generator=_gen(2))  # block_size + 1 tokens: one window
    with torch.no_grad():
        _, loss = model(ids[:, :-1], ids[:, 1:])
    nll, n = evaluate_nll(model, ids[0])
    assert n == 16 and math.isclose(nll, float(loss), rel_tol=1e-5)
    with torch.no_grad():
        model.head.weight.zero_()  # tied: the embedding is zeroed too; every logit is 0
    assert math.isclose(perplexity(model, torch.randint(0, 13, (100,), generator=_gen(3))), 13.0, rel_tol=1e-9)


def test_strided_evaluation_scores_every_token_once_with_more_context():
    model = _model()
    ids = torch.randint(0, 13, (40,), generator=_gen(4))
    logp = []
    for target in range(1, 40):  # by hand: predict ids[target] from up to 16 tokens before it, windows every 4
        begin = 0
        while begin + 16 < target:
            begin += 4
        with torch.no_grad():
            logits, _ = model(ids[None, begin:target])
        logp.append(float(torch.log_softmax(logits[0, -1].double(), -1)[ids[target]]))
    nll, n = evaluate_nll(model, ids, stride=4)
    assert n == 39 and math.isclose(nll, -sum(logp) / 39, rel_tol=1e-5)
    with pytest.raises(ValueError, match="stride"):
        evaluate_nll(model, ids, stride=17)


def test_kv_cache_bytes_matches_the_cache_tensors():
    model = _model()
    cache = model.new_cache()
    model(torch.randint(0, 13, (3, 11), generator=_gen(5)), cache=cache)
    assert cache.nbytes() == kv_cache_bytes(model.config, 11, batch=3)
    assert kv_cache_bytes(model.config, 1, dtype=torch.bfloat16) == 2 * 2 * 32 * 2


# ----------------------------------------------------------------------------- the command line


def test_command_line_samples_from_a_checkpoint(tmp_path, capsys):
    import io
    import json

    from safetensors.torch import save_model

    from course.sample import main
    from course.train_config import TrainConfig

    model = _model(scale=1.0)
    save_model(model, str(tmp_path / "model.safetensors"))
    config = TrainConfig(model=model.config)
    (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
    tok = CharTokenizer(list(ALPHABET))
    tok.save(tmp_path / "tokenizer.json")
    out = io.StringIO()
    assert main(["--checkpoint", str(tmp_path), "--prompt", "abc", "--max-new-tokens", "12", "--greedy"], out=out) == 0
    expected = "abc" + generate_text(model, tok, "abc", 12, greedy=True) + "\n"
    assert out.getvalue() == expected
    assert main(["--checkpoint", str(tmp_path), "--prompt", "abc", "--temperature", "0"], out=io.StringIO()) == 2
    assert "greedy" in capsys.readouterr().err
    for bad, message in ((["--top-k", "0"], "top_k"), (["--max-new-tokens", "-1"], "max-new-tokens"), (["--stop", ""], "stop_strings")):
        out = io.StringIO()
        assert main(["--checkpoint", str(tmp_path), "--prompt", "abc", *bad], out=out) == 2
        assert out.getvalue() == "", f"{bad}: nothing is printed before the settings are checked"
        assert message in capsys.readouterr().err


# ----------------------------------------------------------------------------- the exercise checks catch the classic mistakes


def _fails_with(check, fn, pattern: str) -> None:
    from course.checks import ExerciseFailed

    with pytest.raises(ExerciseFailed, match=pattern):
        check(fn)


def test_checks_pass_the_solutions_and_catch_classic_mistakes():
    from course.checks.ch06 import check_temperature_probs, check_top_k_probs, check_top_p_probs
    from solutions.ch06_sampling import temperature_probs, top_k_probs, top_p_probs

    check_temperature_probs(temperature_probs)
    check_top_k_probs(top_k_probs)
    check_top_p_probs(top_p_probs)

    _fails_with(check_temperature_probs, lambda l, t: torch.softmax(l * t, -1), "multiplied")
    _fails_with(check_temperature_probs, lambda l, t: torch.exp(l / t), "unnormalised")
    _fails_with(check_temperature_probs, lambda l, t: torch.softmax(l / t, -1), "ValueError")

    def top_k_one_extra(logits, k):
        return top_k_probs(logits, min(k + 1, logits.shape[-1]))

    def top_k_unnormalised(logits, k):
        kth = torch.topk(logits, k, dim=-1).values[..., -1:]
        return torch.softmax(logits, -1) * (logits >= kth)

    _fails_with(check_top_k_probs, top_k_one_extra, "Off by one")
    _fails_with(check_top_k_probs, top_k_unnormalised, "unnormalised")

    def nucleus_without_crossing_token(logits, p):  # keeps tokens while the cumulative mass is <= p
        probs = torch.softmax(logits, -1)
        sp, order = torch.sort(probs, descending=True)
        keep = torch.zeros_like(sp, dtype=torch.bool).scatter(-1, order, sp.cumsum(-1) <= p)
        kept = probs * keep
        return kept / kept.sum(-1, keepdim=True)

    def nucleus_one_too_many(logits, p):
        probs = torch.softmax(logits, -1)
        sp, order = torch.sort(probs, descending=True)
        before = sp.cumsum(-1) - sp
        keep_sorted = torch.cat((torch.ones_like(before[..., :1], dtype=torch.bool), before[..., :-1] < p), -1)
        kept = probs * torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
        return kept / kept.sum(-1, keepdim=True)

    def nucleus_unnormalised(logits, p):
        return top_p_probs(logits, p) * 0.9

    _fails_with(check_top_p_probs, nucleus_without_crossing_token, "dropped the token that takes the total past p")
    _fails_with(check_top_p_probs, nucleus_one_too_many, "one too many")
    _fails_with(check_top_p_probs, nucleus_unnormalised, "unnormalised")


# ----------------------------------------------------------------------------- widget computation and figures (headless)


def test_explorer_computation_without_a_browser():
    import matplotlib.pyplot as plt

    from course.widgets.sampling import explore, explorer_figure

    model, tok = _model(), CharTokenizer(list(ALPHABET))
    plain = explore(model, tok, "abc", temperature=1.0, top_k=0, top_p=1.0, seed=3, n_tokens=20, show=13)
    assert torch.allclose(plain.before, plain.after) and plain.kept == 13
    assert plain.text == generate_text(model, tok, "abc", 20, generator=_gen(3))
    assert plain.before.tolist() == sorted(plain.before.tolist(), reverse=True)
    filtered = explore(model, tok, "abc", temperature=0.7, top_k=4, top_p=1.0, seed=3, n_tokens=20, show=13)
    assert filtered.kept == 4 and math.isclose(float(filtered.after.sum()), 1.0, rel_tol=1e-6)
    assert filtered.entropy_after < plain.entropy_before <= math.log2(13) + 1e-9
    assert "top-k=4" in filtered.summary
    fig = explorer_figure(filtered)
    assert len(fig.axes) == 1 and len(fig.axes[0].patches) == 26  # 13 bars before, 13 after
    plt.close(fig)
    with pytest.raises(ValueError, match="prompt is empty"):
        explore(model, tok, "")


def test_figures_build():
    import matplotlib.pyplot as plt

    from course.plots.sampling import entropy_along_text, kv_cache_diagram, processor_panels, speedup_plot

    figs = [
        processor_panels(list("abcd"), PROBS[0], {"T=0.5": PROBS[0], "top-k=2": PROBS[0]}),
        entropy_along_text(list("ab\n"), [1.0, 2.0, 0.5]),
        kv_cache_diagram(4),
        speedup_plot([32, 64], [100.0, 90.0], [50.0, 20.0]),
    ]
    assert [len(f.axes) for f in figs] == [3, 1, 2, 2]  # processor_panels: 3 columns, the third hidden
    assert [ax.get_visible() for ax in figs[0].axes] == [True, True, False]
    for f in figs:
        plt.close(f)
    with pytest.raises(ValueError, match="same length"):
        processor_panels(list("abc"), PROBS[0], {"x": PROBS[0]})


def test_sequence_logprob_beyond_the_context_matches_sliding_generation():
    model = _model()
    prompt = torch.tensor([1, 2, 3])
    rec = _Recorder()
    out = generate(model, prompt, 30, generator=_gen(9), processors=[rec])[0, 3:]  # 33 tokens > block_size 16
    by_steps = sum(float(torch.log_softmax(l[0].double(), -1)[t]) for l, t in zip(rec.seen, out))
    assert math.isclose(sequence_logprob(model, prompt, out), by_steps, rel_tol=1e-5)


def test_min_p_one_is_greedy_and_uncached_beam_search_agrees():
    model = _model()
    prompt = torch.tensor([[4, 5]])
    assert torch.equal(generate(model, prompt, 20, min_p=1.0, generator=_gen(1)), generate(model, prompt, 20, greedy=True))
    cached = beam_search(model, prompt, 20, num_beams=3)  # 22 tokens > block_size 16: the window slides
    uncached = beam_search(model, prompt, 20, num_beams=3, use_cache=False)
    assert [b.ids.tolist() for b in cached] == [b.ids.tolist() for b in uncached]
    assert all(math.isclose(a.logprob, b.logprob, rel_tol=1e-5) for a, b in zip(cached, uncached))


# ----------------------------------------------------------------------------- sequence_logprob: eval mode, the model's device


def test_sequence_logprob_is_deterministic_with_dropout_and_restores_the_mode():
    torch.manual_seed(0)
    model = GPT(GPTConfig(**SMALL, dropout=0.5))  # in training mode, with dropout
    prompt, cont = torch.tensor([1, 2, 3]), torch.tensor([4, 5, 6, 7])
    values = [sequence_logprob(model, prompt, cont) for _ in range(3)]
    assert values[0] == values[1] == values[2], f"dropout was on during scoring: {values}"
    assert model.training, "the caller's mode is restored"
    model.eval()
    assert sequence_logprob(model, prompt, cont) == values[0]
    assert not model.training


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU: ids on the CPU, the model on the GPU")
def test_sequence_logprob_moves_the_ids_to_the_models_device():
    model = _model()
    on_cpu = sequence_logprob(model, [1, 2, 3], [4, 5])
    on_gpu = sequence_logprob(model.cuda(), torch.tensor([1, 2, 3]), torch.tensor([4, 5]))
    assert math.isclose(on_cpu, on_gpu, rel_tol=1e-4)


# ----------------------------------------------------------------------------- SamplingConfig: one validated set of settings


def test_sampling_config_is_validated_when_made_with_the_processors_messages():
    from course.sampling import SamplingConfig

    for bad, pattern in [(dict(temperature=0), "greedy=True"), (dict(top_k=0), "top_k"), (dict(top_p=1.5), "top_p"),
                         (dict(min_p=0.0), "min_p"), (dict(repetition_penalty=-1.0), "repetition_penalty"),
                         (dict(presence_penalty=math.inf), "presence_penalty"), (dict(overflow="wrap"), "overflow"),
                         (dict(long_prompt="cut"), "long_prompt"), (dict(stop_strings=["", "x"]), "stop_strings"),
                         (dict(eos_id=-1), "eos_id")]:
        with pytest.raises(ValueError, match=pattern):
            SamplingConfig(**bad)
    with pytest.raises(TypeError, match="greedy"):
        SamplingConfig(greedy="yes")
    with pytest.raises(TypeError, match="callables"):
        SamplingConfig(processors=[3])
    with pytest.raises(TypeError, match="unknown sampling setting 'temprature'.*temperature"):
        generate(_model(), torch.tensor([1]), 3, temprature=0.5)
    cfg = SamplingConfig(stop_strings="\n", processors=[_Recorder()])
    assert cfg.stop_strings == ("\n",) and isinstance(cfg.processors, tuple)
    with pytest.raises(AttributeError):
        cfg.temperature = 2.0  # frozen: safe to share between calls


def test_a_config_and_keywords_give_the_same_tokens_and_keywords_override():
    from course.sampling import SamplingConfig

    model = _model()
    prompt = torch.tensor([[1, 2], [3, 4]])
    settings = dict(temperature=0.8, top_k=6, top_p=0.95, repetition_penalty=1.2, frequency_penalty=0.1, eos_id=5)
    cfg = SamplingConfig(**settings)
    by_kw = generate(model, prompt, 20, generator=_gen(3), **settings)
    by_cfg = generate(model, prompt, 20, cfg, generator=_gen(3))
    assert torch.equal(by_kw, by_cfg)
    processing = {k: v for k, v in settings.items() if k != "eos_id"}
    greedy = generate(model, prompt, 20, cfg, greedy=True, eos_id=None)  # keywords override the config's fields
    assert torch.equal(greedy, generate(model, prompt, 20, greedy=True, **processing))
    assert greedy.shape == (2, 22), "eos_id=None overrode the config's end-of-text stop"
    assert _described(cfg.processor_chain()) == _described(build_processors(**processing))
    tok = CharTokenizer(list(ALPHABET))
    text_cfg = generate_text(model, tok, "abc", 15, SamplingConfig(temperature=0.9, stop_strings=("e",)), generator=_gen(1))
    text_kw = generate_text(model, tok, "abc", 15, temperature=0.9, stop_strings="e", generator=_gen(1))
    assert text_cfg == text_kw


def test_one_processor_api_custom_processors_run_last_in_the_same_chain():
    from course.sampling import SamplingConfig

    logits = torch.randn(2, 13, generator=_gen(4))
    ids = torch.tensor([[1, 1, 2], [3, 4, 4]])

    def halve(z, seen):  # a processor is any callable (logits, ids) -> logits
        return z / 2

    cfg = SamplingConfig(temperature=0.5, top_k=4, repetition_penalty=1.5, processors=(halve,))
    chain = cfg.processor_chain()
    assert [name for name, _ in _described(chain[:-1])] == ["_repetition", "_temperature", "_top_k"] and chain[-1] is halve
    expected = top_k_filter(apply_temperature(repetition_penalty(logits, ids, 1.5), 0.5), 4) / 2
    assert torch.equal(apply_processors(logits, ids, chain), expected)
