"""Tests of chapter 12's package: rollouts and log-probabilities, the gold reward and the reward model, preference
pairs and best-of-N, DPO (against TRL's own loss code and the paper's formula), GRPO and REINFORCE, and the policy
evaluation. Exact references where one exists (enumeration, a per-token loop, the chat engine's greedy reply)."""

from __future__ import annotations

import copy
import itertools
import math
from collections import Counter, defaultdict
from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from chat_helpers import TOK, tiny_model
from course.assistant_tasks import Arithmetic, default_tasks
from course.chat_engine import reply
from course.chat_format import render_prompt
from course.dpo import dpo_loss, reference_logprobs, train_dpo
from course.grpo import RLConfig, grpo_loss, group_advantages, reinforce_loss, train_rl
from course.policy_eval import evaluate_policy
from course.preferences import PreferencePair, best_of_n_kl, best_of_n_value, sample_pairs
from course.rewards import (
    PREFERENCE_TASKS,
    RewardModel,
    bradley_terry_loss,
    calibration_bins,
    gold_reward,
    orient_pairs,
    reward_margins,
    train_reward_model,
)
from course.rollouts import reply_logprobs, reply_mask, sample_group

QUESTION = [{"role": "user", "content": "What is 12+34?"}]


@pytest.fixture(scope="module")
def assistant():
    from course.pretrained import load_assistant

    model, tok = load_assistant()
    return model, tok


@pytest.fixture(scope="module")
def tasks():
    everything = default_tasks()
    return {name: everything[name] for name in PREFERENCE_TASKS}


# ------------------------------------------------------------------ rollouts


def _naive_logprob(model, prompt, reply_ids):
    """The policy's log-probability of a reply, one prefix at a time (no batching, no padding)."""
    mask = reply_mask(TOK, model.config.vocab_size)
    total = 0.0
    ids = list(prompt)
    with torch.no_grad():
        for t in reply_ids:
            logits = model(torch.tensor([ids]))[0][0, -1].masked_fill(~mask, float("-inf"))
            total += float(F.log_softmax(logits.double(), -1)[t])
            ids.append(t)
    return total


def test_recorded_logprobs_equal_the_recomputed_ones_and_a_per_token_loop():
    model = tiny_model(seed=1)
    g = torch.Generator().manual_seed(0)
    group = sample_group(model, TOK, QUESTION, 6, generator=g, max_new_tokens=12)
    with torch.no_grad():
        lp = reply_logprobs(model, TOK, [r.prompt_ids for r in group], [r.reply_ids for r in group])
    assert lp.logps.shape == (6, max(len(r.reply_ids) for r in group))
    for i, r in enumerate(group):
        assert len(r.reply_ids) == int(lp.lengths[i])
        assert math.isclose(float(lp.sums[i]), r.logprob, abs_tol=1e-4)
        assert math.isclose(_naive_logprob(model, r.prompt_ids, r.reply_ids), r.logprob, abs_tol=1e-4)


def test_replies_of_different_lengths_in_one_batch_do_not_disturb_each_other():
    model = tiny_model(seed=2)
    prompt = render_prompt(QUESTION, TOK)
    short, long = TOK.encode("7") + [TOK.end_id], TOK.encode("a long reply here") + [TOK.end_id]
    with torch.no_grad():
        together = reply_logprobs(model, TOK, [prompt, prompt], [short, long]).sums
        alone = reply_logprobs(model, TOK, [prompt], [short]).sums
    assert torch.allclose(together[0], alone[0], atol=1e-5)
    assert math.isclose(float(together[1]), _naive_logprob(model, prompt, long), abs_tol=1e-4)


def test_greedy_rows_are_the_chat_engine_reply_without_tools(assistant, tasks):
    model, tok = assistant
    for name, task in tasks.items():
        for i in range(3):
            ex = task.make(i, "validation")
            rows = sample_group(model, tok, ex.prompt, 3, temperature=0, max_new_tokens=16)
            engine = reply(model, tok, ex.prompt, tools=False, max_new_tokens=16)
            assert {r.text for r in rows} == {engine.text}, (name, i)
            assert all(r.ended == (engine.reason == "end") for r in rows)


def test_the_first_token_is_drawn_from_the_masked_policy_at_the_temperature():
    model = tiny_model(seed=3, n_embd=8)
    prompt = render_prompt(QUESTION, TOK)
    mask = reply_mask(TOK, model.config.vocab_size)
    with torch.no_grad():
        logits = model(torch.tensor([prompt]))[0][0, -1].masked_fill(~mask, float("-inf"))
    for temperature in (1.0, 0.5):
        p = F.softmax(logits / temperature, -1)
        g = torch.Generator().manual_seed(1)
        n = 6000
        firsts = Counter(r.reply_ids[0] for r in sample_group(model, TOK, prompt, n, temperature=temperature,
                                                                generator=g, max_new_tokens=1))
        assert set(firsts) <= set(torch.nonzero(mask).flatten().tolist())  # never a role or tool token
        top = torch.topk(p, 5).indices.tolist()
        for t in top:  # the likeliest tokens, each within 5 standard errors
            se = math.sqrt(float(p[t]) * (1 - float(p[t])) / n)
            assert abs(firsts[t] / n - float(p[t])) < 5 * se + 1e-3, (temperature, t)


def test_sampling_is_reproducible_with_a_seeded_generator_and_stops_at_the_end_token(assistant):
    model, tok = assistant
    a = sample_group(model, tok, QUESTION, 8, generator=torch.Generator().manual_seed(5))
    b = sample_group(model, tok, QUESTION, 8, generator=torch.Generator().manual_seed(5))
    assert a == b
    assert all(r.ended and r.reply_ids[-1] == tok.end_id and tok.end_id not in r.reply_ids[:-1] for r in a)
    assert all(r.text == tok.decode(r.reply_ids[:-1]) for r in a)


def test_rollouts_refuse_bad_input():
    model = tiny_model(block_size=32)
    with pytest.raises(ValueError, match="n must be"):
        sample_group(model, TOK, QUESTION, 0)
    with pytest.raises(ValueError, match="context"):
        sample_group(model, TOK, QUESTION, 2, max_new_tokens=30)
    prompt = render_prompt(QUESTION, TOK)
    with pytest.raises(ValueError, match="cannot hold"):
        reply_logprobs(model, TOK, [prompt], [[TOK.special_ids["<|tool_call|>"], TOK.end_id]])
    with pytest.raises(ValueError, match="as many prompts"):
        reply_logprobs(model, TOK, [prompt], [])


# ------------------------------------------------------------------ the gold reward and the reward model


def test_the_gold_reward_follows_its_stated_rule():
    task = Arithmetic("+", 3)
    ex = task.make(0, "validation")
    truth = int(ex.answer)
    assert gold_reward(task, ex, str(truth)) == 1.0
    assert gold_reward(task, ex, f" {truth}.") == 1.0  # the verifier's normalisation
    assert math.isclose(gold_reward(task, ex, str(truth + 6)), 0.5 * (1 - 6 / truth))
    assert gold_reward(task, ex, str(3 * truth)) == 0.0  # 200% off: nothing
    assert gold_reward(task, ex, "twelve") == 0.0
    assert gold_reward(task, ex, "") == 0.0
    zero = Arithmetic("-", 1).make(0, "validation")
    zero = type(zero)(zero.task, zero.split, zero.key, zero.prompt, zero.reply, "0", {"a": 3, "op": "-", "b": 3})
    assert gold_reward(Arithmetic("-", 1), zero, "1") == 0.0  # truth 0: divided by 1 (no division by zero)
    assert gold_reward(Arithmetic("-", 1), zero, "0") == 1.0
    words = default_tasks()["spell"]
    wex = words.make(0, "validation")
    assert gold_reward(words, wex, wex.answer) == 1.0 and gold_reward(words, wex, "x") == 0.0
    with pytest.raises(TypeError):
        gold_reward(task, ex, 12)  # type: ignore[arg-type]


def test_the_bradley_terry_loss_is_the_log_of_the_win_probability_and_stable():
    rc = torch.tensor([2.0, -1.0, 0.5, 300.0], dtype=torch.float64)
    rr = torch.tensor([1.0, 1.0, 0.5, -300.0], dtype=torch.float64)
    expected = sum(math.log(1 + math.exp(-(c - r))) for c, r in zip(rc.tolist(), rr.tolist())) / 4
    assert math.isclose(float(bradley_terry_loss(rc, rr)), expected, rel_tol=1e-12)
    far = bradley_terry_loss(torch.tensor([-200.0]), torch.tensor([200.0]))
    assert math.isfinite(float(far)) and math.isclose(float(far), 400.0, rel_tol=1e-6)
    assert math.isclose(float(bradley_terry_loss(rc + 7, rr + 7)), float(bradley_terry_loss(rc, rr)))  # differences
    with pytest.raises(ValueError):
        bradley_terry_loss(rc, rr[:2])


def test_the_reward_model_reads_the_last_real_token_and_ignores_padding():
    gpt = tiny_model(seed=4)
    rm = RewardModel(gpt).eval()
    assert rm.gpt is not gpt  # the policy is left alone
    prompt = render_prompt(QUESTION, TOK)
    a, b = TOK.encode("46") + [TOK.end_id], TOK.encode("a much longer reply") + [TOK.end_id]
    with torch.no_grad():
        both = rm.score([prompt, prompt], [a, b], pad=TOK.end_id)
        alone = rm.score([prompt], [a], pad=TOK.end_id)
        hidden = rm.gpt.hidden_states(torch.tensor([prompt + a]))[0, -1]
    assert torch.allclose(both[0], alone[0], atol=1e-6)
    assert torch.allclose(alone[0], rm.head(hidden).squeeze(), atol=1e-6)
    with pytest.raises(ValueError):
        rm(torch.zeros(2, 5, dtype=torch.long), torch.tensor([0, 5]))


def test_calibration_bins_find_a_calibrated_model_calibrated():
    g = torch.Generator().manual_seed(0)
    margins = torch.randn(20000, generator=g) * 2
    a_won = torch.rand(20000, generator=g) < torch.sigmoid(margins)
    for b in calibration_bins(margins, a_won):
        assert abs(b["observed"] - b["predicted"]) < 4 * math.sqrt(0.25 / b["n"]) + 0.01
    assert sum(b["n"] for b in calibration_bins(margins, a_won)) == 20000
    m, won = orient_pairs(torch.tensor([3.0, 1.0]), torch.tensor([1.0, 3.0]), seed=1)
    assert torch.equal(m.abs(), torch.tensor([2.0, 2.0])) and ((m > 0) == torch.tensor([True, False]).eq(won)).all()


def _margin_parts(rm, pairs):
    with torch.no_grad():
        prompts = [p.prompt_ids for p in pairs]
        return (rm.score(prompts, [p.chosen for p in pairs], TOK.end_id),
                rm.score(prompts, [p.rejected for p in pairs], TOK.end_id))


def test_a_reward_model_learns_a_preference_it_can_see():
    pairs = _toy_pairs(96, seed=1)
    held_out = _toy_pairs(32, seed=2)
    rm = RewardModel(tiny_model(seed=7))
    start_loss = float(bradley_terry_loss(*_margin_parts(rm, pairs)))
    log = train_reward_model(rm, pairs, TOK.end_id, steps=30, lr=3e-3, batch_size=16, log_every=10, val_pairs=held_out)
    assert [r["step"] for r in log["rows"]] == [10, 20, 30]
    assert log["rows"][-1]["val_accuracy"] >= 0.9
    assert float(bradley_terry_loss(*_margin_parts(rm, pairs))) < min(start_loss, math.log(2)) / 2
    assert torch.equal(reward_margins(rm, held_out, TOK.end_id) > 0,
                       _margin_parts(rm, held_out)[0] > _margin_parts(rm, held_out)[1])
    with pytest.raises(ValueError, match="fewer than one batch"):
        train_reward_model(rm, pairs[:3], TOK.end_id, steps=1, batch_size=16)


# ------------------------------------------------------------------ pairs and best-of-N


def test_best_of_n_value_is_the_enumeration_over_every_subset():
    g = torch.Generator().manual_seed(0)
    for k in (1, 4, 7):
        scores = torch.randint(0, 3, (k,), generator=g).tolist()  # ties included
        gold = [Fraction(int(x), 7) for x in torch.randint(0, 8, (k,), generator=g)]
        for n in range(1, k + 1):
            picks = [gold[max(s, key=lambda i: (scores[i], i))] for s in itertools.combinations(range(k), n)]
            exact = sum(picks, Fraction(0)) / len(picks)
            assert math.isclose(best_of_n_value(scores, [float(x) for x in gold], n), float(exact), abs_tol=1e-12)
    assert best_of_n_value([1, 2, 3], [0.0, 0.5, 1.0], 1) == 0.5  # N = 1: the mean
    assert best_of_n_value([3, 2, 1], [0.0, 0.5, 1.0], 3) == 0.0  # N = k: the scorer's favourite
    with pytest.raises(ValueError):
        best_of_n_value([1, 2], [0.0, 1.0], 3)


def test_the_best_of_n_kl_formula_bounds_the_exact_kl_and_is_its_limit():
    assert best_of_n_kl(1) == 0.0
    for n in (2, 4, 16, 64):
        for m in (8, 100, 20000):  # a uniform policy over m replies with distinct scores
            i = torch.arange(1, m + 1, dtype=torch.float64)
            q = (i / m) ** n - ((i - 1) / m) ** n  # best-of-n picks the i-th ranked reply with this probability
            kl = float((q[q > 0] * torch.log(q[q > 0] * m)).sum())
            assert kl <= best_of_n_kl(n) + 1e-9
        assert math.isclose(kl, best_of_n_kl(n), rel_tol=2e-3)


def test_pairs_prefer_the_higher_gold_reward_except_where_the_annotator_erred(assistant, tasks):
    model, tok = assistant
    ps = sample_pairs(model, tok, tasks, "train", 12, k=6, noise=0.3, seed=3)
    assert ps.prompts == 36 and len(ps.pairs) + ps.ties == 36 and ps.pairs
    for p in ps.pairs:
        assert p.gold_chosen != p.gold_rejected
        assert (p.gold_chosen > p.gold_rejected) != p.flipped
        assert p.chosen[-1] == tok.end_id and tok.decode(p.chosen[:-1]) == p.chosen_text
    assert 0 < ps.noise < 0.7
    again = sample_pairs(model, tok, tasks, "train", 12, k=6, noise=0.3, seed=3)
    assert again.pairs == ps.pairs
    with pytest.raises(ValueError, match="noise"):
        sample_pairs(model, tok, tasks, "train", 1, noise=0.5)


def test_label_noise_flips_the_stated_fraction(assistant, tasks):
    model, tok = assistant
    ps = sample_pairs(model, tok, tasks, "train", 100, k=4, noise=0.2, seed=0)
    n = len(ps.pairs)
    assert n > 200
    assert abs(ps.noise - 0.2) < 4 * math.sqrt(0.16 / n)


# ------------------------------------------------------------------ DPO


def _trl_dpo_loss(pc, pr, rc, rr, beta):
    """TRL's DPOTrainer._compute_loss (loss_type "sigmoid"), run on a stub trainer and a stub model."""
    from trl.trainer.dpo_trainer import DPOTrainer

    n = len(pc)
    per_token = torch.zeros(2 * n, 3)
    per_token[:, 0] = torch.cat([pc, pr]) / 2  # TRL sums the completion's per-token log-probs
    per_token[:, 2] = torch.cat([pc, pr]) / 2
    completion = torch.tensor([[0, 1, 0, 1]] * (2 * n))

    def model(**kwargs):
        return SimpleNamespace(log_probs=per_token, entropy=torch.zeros(2 * n, 3), mean_logits=torch.zeros(2 * n, 3),
                               is_top1=torch.zeros(2 * n, 3, dtype=torch.bool))

    acc = SimpleNamespace(device="cpu", gather_for_metrics=lambda x: x, gather=lambda x: x)
    stub = SimpleNamespace(
        model=SimpleNamespace(training=True), accelerator=acc, aux_loss_enabled=False, ld_alpha=None,
        precompute_ref_logps=True, f_divergence_type="reverse_kl", loss_types=["sigmoid"], loss_weights=[1.0],
        beta=beta, label_smoothing=0.0, use_weighting=False, _metrics={"train": defaultdict(list)},
        _total_train_tokens=0, _tp_size=1,
    )
    inputs = {"input_ids": torch.zeros(2 * n, 4, dtype=torch.long), "attention_mask": torch.ones(2 * n, 4),
              "completion_mask": completion, "ref_chosen_logps": rc, "ref_rejected_logps": rr}
    return DPOTrainer._compute_loss(stub, model, inputs, False), stub._metrics["train"]


def test_the_dpo_loss_equals_trl_and_the_papers_formula():
    g = torch.Generator().manual_seed(0)
    pc, pr, rc, rr = (torch.randn(16, generator=g, dtype=torch.float64) * 5 for _ in range(4))
    for beta in (0.05, 0.1, 0.5, 2.0):
        ours, chosen_reward, rejected_reward = dpo_loss(pc, pr, rc, rr, beta)
        paper = sum(-math.log(1 / (1 + math.exp(-beta * ((a - c) - (b - d)))))
                    for a, b, c, d in zip(pc.tolist(), pr.tolist(), rc.tolist(), rr.tolist())) / 16
        assert math.isclose(float(ours), paper, rel_tol=1e-10)
        trl, metrics = _trl_dpo_loss(pc.float(), pr.float(), rc.float(), rr.float(), beta)
        assert math.isclose(float(ours), float(trl), rel_tol=1e-5), beta
        assert math.isclose(metrics["rewards/margins"][-1], float((chosen_reward - rejected_reward).mean()),
                            rel_tol=1e-5, abs_tol=1e-6)
        assert metrics["rewards/accuracies"][-1] == float((chosen_reward > rejected_reward).float().mean())
        assert torch.allclose(chosen_reward, beta * (pc - rc)) and torch.allclose(rejected_reward, beta * (pr - rr))


def test_the_dpo_gradient_at_the_reference_is_half_beta():
    pc = torch.zeros(4, requires_grad=True)
    pr = torch.zeros(4, requires_grad=True)
    loss, _, _ = dpo_loss(pc, pr, torch.zeros(4), torch.zeros(4), 0.3)
    loss.backward()
    assert math.isclose(loss.item(), math.log(2), rel_tol=1e-6)
    assert torch.allclose(pc.grad, torch.full((4,), -0.3 / 2 / 4)) and torch.allclose(pr.grad, -pc.grad)
    with pytest.raises(ValueError):
        dpo_loss(pc, pr, torch.zeros(4), torch.zeros(4), 0.0)
    with pytest.raises(ValueError):
        dpo_loss(pc, pr[:2], torch.zeros(4), torch.zeros(4), 0.1)


def _toy_pairs(n=64, seed=0):
    """Pairs that prefer replies starting with '1' over replies starting with '9' (one prompt per pair)."""
    g = torch.Generator().manual_seed(seed)
    pairs = []
    for i in range(n):
        a, b = (int(x) for x in torch.randint(0, 90, (2,), generator=g))
        prompt = tuple(render_prompt([{"role": "user", "content": f"What is {a}+{b}?"}], TOK))
        c, r = f"1{a}", f"9{b}"
        pairs.append(PreferencePair("add", f"{a}+{b}", prompt, tuple(TOK.encode(c) + [TOK.end_id]),
                                    tuple(TOK.encode(r) + [TOK.end_id]), c, r, 1.0, 0.0, False))
    return pairs


def test_dpo_training_learns_the_preference_and_leaves_the_reference_alone():
    ref = tiny_model(seed=6)
    policy = copy.deepcopy(ref)
    pairs = _toy_pairs()
    rc, rr = reference_logprobs(ref, TOK, pairs)
    before = [p.clone() for p in ref.parameters()]
    history = train_dpo(policy, TOK, pairs, rc, rr, beta=0.5, steps=40, lr=3e-3, batch_size=16, log_every=10)
    assert [r["step"] for r in history.rows] == [10, 20, 30, 40]
    assert history.rows[-1]["loss"] < 0.3 < math.log(2)
    assert history.rows[-1]["reward_accuracy"] == 1.0
    assert all(torch.equal(a, b) for a, b in zip(before, ref.parameters()))
    with torch.no_grad():
        pc = reply_logprobs(policy, TOK, [p.prompt_ids for p in pairs], [p.chosen for p in pairs]).sums
        pr = reply_logprobs(policy, TOK, [p.prompt_ids for p in pairs], [p.rejected for p in pairs]).sums
    assert ((pc - rc) > (pr - rr)).float().mean() > 0.95
    with pytest.raises(ValueError, match="reference_logprobs"):
        train_dpo(policy, TOK, pairs, rc[:3], rr, beta=0.1, steps=1)


# ------------------------------------------------------------------ GRPO and REINFORCE


def test_group_advantages_match_trl_and_an_equal_group_teaches_nothing():
    from trl.trainer.utils import nanstd

    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 1.0]])
    ours = group_advantages(rewards)
    mean = rewards.mean(1, keepdim=True)
    trl = (rewards - mean) / (nanstd(rewards, dim=1, keepdim=True) + 1e-4)
    assert torch.allclose(ours, trl)
    assert torch.equal(ours[1], torch.zeros(4))
    assert torch.allclose(ours.sum(1), torch.zeros(3), atol=1e-6)
    assert torch.allclose(group_advantages(rewards, scale=False), rewards - mean)
    assert math.isclose(float(ours[2, 3]), 0.75 / (0.5 + 1e-4), rel_tol=1e-6)  # std of (0,0,0,1) with n-1 is 0.5
    with pytest.raises(ValueError, match="group"):
        group_advantages(torch.ones(3, 1))


def _per_token_grpo(logps, old, ref, mask, adv, clip, kl_coef):
    """The GRPO objective written out token by token (float64), negated."""
    total = 0.0
    for i in range(len(logps)):
        terms = []
        for t in range(len(logps[i])):
            if mask[i][t]:
                r = math.exp(logps[i][t] - old[i][t])
                s = min(r * adv[i], max(min(r, 1 + clip), 1 - clip) * adv[i])
                d = ref[i][t] - logps[i][t]
                terms.append(s - kl_coef * (math.exp(d) - d - 1))
        total += sum(terms) / len(terms)
    return -total / len(logps)


def test_the_grpo_loss_is_the_per_token_formula_and_its_gradient_clips():
    g = torch.Generator().manual_seed(0)
    logps = -torch.rand(5, 4, generator=g, dtype=torch.float64)
    old = logps + 0.3 * torch.randn(5, 4, generator=g, dtype=torch.float64)
    ref = logps + 0.2 * torch.randn(5, 4, generator=g, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.float64)
    adv = torch.randn(5, generator=g, dtype=torch.float64)
    for clip, kl_coef in ((0.2, 0.0), (0.2, 0.1), (0.05, 0.5)):
        loss, stats = grpo_loss(logps, old, ref, mask, adv, clip=clip, kl_coef=kl_coef)
        expected = _per_token_grpo(logps.tolist(), old.tolist(), ref.tolist(), mask.tolist(), adv.tolist(), clip,
                                   kl_coef)
        assert math.isclose(float(loss), expected, rel_tol=1e-10)
        assert 0 <= stats["clip_fraction"] <= 1 and stats["kl"] >= 0
    # A token whose ratio is already above 1 + clip with a positive advantage gets no gradient
    x = torch.tensor([[math.log(1.5)]], requires_grad=True)
    loss, stats = grpo_loss(x, torch.zeros(1, 1), None, torch.ones(1, 1), torch.tensor([1.0]))
    loss.backward()
    assert x.grad.item() == 0.0 and stats["clip_fraction"] == 1.0
    with pytest.raises(ValueError, match="ref_logps"):
        grpo_loss(x, torch.zeros(1, 1), None, torch.ones(1, 1), torch.tensor([1.0]), kl_coef=0.1)


def test_on_policy_grpo_is_reinforce_with_scaled_advantages():
    g = torch.Generator().manual_seed(1)
    logps = (-torch.rand(6, 3, generator=g)).requires_grad_()
    mask = torch.ones(6, 3)
    adv = torch.randn(6, generator=g)
    loss, stats = grpo_loss(logps, logps.detach(), None, mask, adv)
    (grad_grpo,) = torch.autograd.grad(loss, logps)
    assert stats["clip_fraction"] == 0.0 and math.isclose(loss.item(), -float(adv.mean()), rel_tol=1e-6)
    (grad_reinforce,) = torch.autograd.grad(reinforce_loss(logps, mask, adv), logps)
    assert torch.allclose(grad_grpo * 3, grad_reinforce)  # GRPO averages a reply's tokens, REINFORCE sums them


def test_rl_training_runs_logs_and_repeats_exactly(assistant, tasks):
    model, tok = assistant
    runs = []
    for _ in range(2):
        policy = copy.deepcopy(model)
        runs.append(train_rl(policy, model, tok, tasks, RLConfig(steps=2, prompts_per_step=3, group_size=4), seed=1))
    assert runs[0].rows == runs[1].rows
    row = runs[0].rows[-1]
    assert set(row) == {"step", "reward", "all_equal_groups", "length", "entropy", "kl", "clip_fraction", "loss"}
    assert runs[0].rows[0]["kl"] == pytest.approx(0.0, abs=1e-4)  # the first batch comes from the reference itself
    assert 0 <= row["reward"] <= 1 and 0 <= row["all_equal_groups"] <= 1 and row["length"] >= 1
    policy = copy.deepcopy(model)
    r = train_rl(policy, model, tok, tasks, RLConfig(method="reinforce", steps=1, prompts_per_step=2, group_size=2))
    assert r.rows[0]["clip_fraction"] == 0.0
    with pytest.raises(ValueError, match="method"):
        RLConfig(method="ppo")
    with pytest.raises(ValueError, match="group_size"):
        RLConfig(group_size=1)


# ------------------------------------------------------------------ evaluating a policy


def test_policy_evaluation_is_reproducible_and_its_measures_are_consistent(assistant, tasks):
    model, tok = assistant
    a = evaluate_policy(model, tok, tasks, "validation", 4, samples=4, reference=model, seed=2)
    b = evaluate_policy(model, tok, tasks, "validation", 4, samples=4, reference=model, seed=2)
    assert a == b
    assert set(a) == {*tasks, "all"} and a["all"]["prompts"] == 12
    for m in a.values():
        ks = [m["pass_at_k"][k] for k in range(1, 5)]
        assert ks == sorted(ks) and 0 <= ks[0] and ks[-1] <= 1
        assert abs(m["kl"]) < 1e-4  # the policy against itself
        assert 0 <= m["gold"] <= 1 and m["ended"] == 1.0
    with pytest.raises(ValueError):
        evaluate_policy(model, tok, tasks, "validation", 1, samples=0)


# ------------------------------------------------------------------ figures


def test_the_figures_draw_what_they_are_given():
    import matplotlib.pyplot as plt

    from course.plots.preferences import plot_best_of_n, plot_beta_sweep, plot_calibration, plot_rl_curves

    bins = {"0": [{"predicted": 0.2, "observed": 0.25, "n": 10}, {"predicted": 0.8, "observed": 0.7, "n": 30}]}
    fig = plot_calibration(bins)
    assert list(fig.axes[0].lines[-1].get_xdata()) == [0.2, 0.8]
    ns = [1, 2, 4]
    fig = plot_best_of_n(ns, gold=[[0.4, 0.5, 0.55], [0.42, 0.48, 0.5]], proxy=[[0, 1, 2], [0, 1.5, 2.5]],
                         oracle=[0.4, 0.6, 0.7], kl=[best_of_n_kl(n) for n in ns])
    assert np.allclose(fig.axes[0].lines[1].get_ydata(), [0.41, 0.49, 0.525])  # the mean over seeds
    with pytest.raises(ValueError):
        plot_best_of_n(ns, gold=[[0.4]], proxy=[[0, 1, 2]], oracle=[0.4, 0.6, 0.7], kl=[0, 0.3, 0.6])
    fig = plot_beta_sweep([0.1, 1.0], {"gold": [[0.4, 0.5], [0.6, 0.7]]}, references={"gold": 0.45})
    assert np.allclose(fig.axes[0].lines[0].get_ydata(), [0.45, 0.65])
    fig = plot_rl_curves({"grpo": {"pass@1": [[0.1, 0.2], [0.1, 0.3]]}}, steps=[0, 50])
    assert np.allclose(fig.axes[0].lines[0].get_ydata(), [0.1, 0.25])
    plt.close("all")
