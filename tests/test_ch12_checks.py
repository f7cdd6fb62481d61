"""Chapter 12's exercise checks: each reference solution passes (in every valid form), the blank stub fails, and
every usual slip fails with a message that names it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from check_helpers import fails, stub
from course.checks import NotImplementedYet
from course.checks.ch12 import check_bradley_terry, check_dpo_loss, check_group_advantages
from solutions.ch12_preferences import bradley_terry_loss, dpo_loss, group_advantages


# ------------------------------------------------------------------ 12.1


def test_bradley_terry_solution_and_other_valid_forms_pass(capsys):
    check_bradley_terry(bradley_terry_loss)
    check_bradley_terry(lambda c, r: float(F.softplus(r - c).mean()))  # a float, via softplus
    check_bradley_terry(lambda c, r: -F.logsigmoid(c - r).mean().reshape(1))  # a one-element tensor
    check_bradley_terry(lambda c, r: F.binary_cross_entropy_with_logits(c - r, torch.ones_like(c)))
    assert "passed" in capsys.readouterr().out


@pytest.mark.parametrize("slip, words", [
    (lambda c, r: -F.logsigmoid(r - c).mean(), ["swapped"]),
    (lambda c, r: F.logsigmoid(c - r).mean(), ["negative"]),
    (lambda c, r: -F.logsigmoid(c - r).sum(), ["sum"]),
    (lambda c, r: torch.sigmoid(c - r).mean(), ["probability"]),
    (lambda c, r: -F.logsigmoid(c - r), ["shape"]),
    (lambda c, r: -torch.log(torch.sigmoid(c - r)).mean(), ["logsigmoid"]),
    (lambda c, r: None, ["None"]),
    (lambda c, r: (c - r).mean(), ["expected"]),
])
def test_bradley_terry_slips_are_named(slip, words):
    fails(check_bradley_terry, slip, *words)


def test_bradley_terry_stub_fails_as_a_stub():
    with pytest.raises(NotImplementedYet):
        check_bradley_terry(stub)


# ------------------------------------------------------------------ 12.2


def test_dpo_solution_and_other_valid_forms_pass():
    check_dpo_loss(dpo_loss)
    check_dpo_loss(lambda pc, pr, rc, rr, b: F.softplus(-b * ((pc - pr) - (rc - rr))).mean().item())
    check_dpo_loss(lambda pc, pr, rc, rr, b: np.float32(-F.logsigmoid(b * (pc - rc) - b * (pr - rr)).mean()))


@pytest.mark.parametrize("slip, words", [
    (lambda pc, pr, rc, rr, b: -F.logsigmoid(b * ((pr - rr) - (pc - rc))).mean(), ["rejected"]),
    (lambda pc, pr, rc, rr, b: -F.logsigmoid(b * (pc - pr)).mean(), ["reference"]),
    (lambda pc, pr, rc, rr, b: -F.logsigmoid(b * ((rc - pc) - (rr - pr))).mean(), ["policy first"]),
    (lambda pc, pr, rc, rr, b: -F.logsigmoid((pc - rc) - (pr - rr)).mean(), ["beta"]),
    (lambda pc, pr, rc, rr, b: -F.logsigmoid(b * (pc - rc) - (pr - rr)).mean(), ["only the chosen"]),
    (lambda pc, pr, rc, rr, b: -F.logsigmoid(b * ((pc - rc) - (pr - rr))).sum(), ["sum"]),
    (lambda pc, pr, rc, rr, b: F.logsigmoid(b * ((pc - rc) - (pr - rr))).mean(), ["negative"]),
    (lambda pc, pr, rc, rr, b: -torch.log(torch.sigmoid(b * ((pc - rc) - (pr - rr)))).mean(), ["logsigmoid"]),
])
def test_dpo_slips_are_named(slip, words):
    fails(check_dpo_loss, slip, *words)


def test_dpo_stub_fails_as_a_stub():
    with pytest.raises(NotImplementedYet):
        check_dpo_loss(stub)


# ------------------------------------------------------------------ 12.3


def test_group_advantages_solution_and_other_valid_forms_pass():
    check_group_advantages(group_advantages)
    check_group_advantages(lambda r: ((r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-6)).tolist())
    check_group_advantages(lambda r: np.array([[(x - float(np.mean(row))) / (float(np.std(row, ddof=1)) + 1e-4)
                                                for x in row] for row in r.tolist()]))


@pytest.mark.parametrize("slip, words", [
    (lambda r: (r - r.mean(1, keepdim=True)) / r.std(1, keepdim=True), ["eps", "0/0"]),
    (lambda r: (r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True, unbiased=False) + 1e-4), ["population"]),
    (lambda r: (r - r.mean()) / (r.std() + 1e-4), ["whole batch"]),
    (lambda r: (r - r.mean(0, keepdim=True)) / (r.std(0, keepdim=True) + 1e-4), ["dim=0"]),
    (lambda r: r - r.mean(1, keepdim=True), ["not divided"]),
    (lambda r: r / (r.std(1, keepdim=True) + 1e-4), ["mean is not"]),
    (lambda r: None, ["None"]),
    (lambda r: (r - r.mean(1, keepdim=True)).flatten(), ["shape"]),
])
def test_group_advantage_slips_are_named(slip, words):
    fails(check_group_advantages, slip, *words)


def test_group_advantages_stub_fails_as_a_stub():
    with pytest.raises(NotImplementedYet):
        check_group_advantages(stub)


def test_the_package_agrees_with_the_solutions():
    """course.rewards / course.dpo / course.grpo compute what the exercises ask for."""
    from course.dpo import dpo_loss as package_dpo
    from course.grpo import group_advantages as package_advantages
    from course.rewards import bradley_terry_loss as package_bt

    g = torch.Generator().manual_seed(0)
    a, b, c, d = (torch.randn(9, generator=g) for _ in range(4))
    assert math.isclose(float(package_bt(a, b)), float(bradley_terry_loss(a, b)), rel_tol=1e-6)
    assert math.isclose(float(package_dpo(a, b, c, d, 0.3)[0]), float(dpo_loss(a, b, c, d, 0.3)), rel_tol=1e-6)
    r = (torch.rand(5, 6, generator=g) > 0.5).float()
    assert torch.allclose(package_advantages(r), group_advantages(r))


# ------------------------------------------------------------------ the grid the chapter reads


def test_the_grid_results_hold_the_whole_plan():
    """benchmarks/results/preferences.json (make preference-grid), which chapter 12 reads, holds every run of its
    plan, made with the plan's own settings, and the test split was scored with the settings chosen on validation."""
    import json
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "benchmarks"))
    from preference_grid import FULL, PARTS

    results = json.loads((root / "benchmarks" / "results" / "preferences.json").read_text())
    assert results["config"] == FULL
    assert not Path(FULL["run_dir"]).is_absolute()
    seeds, n_tasks = FULL["seeds"], len(FULL["pref_tasks"])
    assert set(PARTS) <= set(results)
    for key in ("pref", "rl"):
        assert results["sft"][key]["validation"]["all"]["prompts"] == n_tasks * FULL["eval_prompts"]
    assert results["pairs"]["train"]["prompts"] == n_tasks * FULL["train_pair_prompts"]
    assert results["pairs"]["validation"]["prompts"] == n_tasks * FULL["val_pair_prompts"]
    assert set(results["rm"]) == {str(s) for s in seeds}
    for rm in results["rm"].values():
        assert rm["curve"][-1]["step"] == FULL["rm_steps"] and sum(b["n"] for b in rm["calibration"]) == \
            results["pairs"]["validation"]["pairs"]
    n_train = results["pairs"]["train"]["pairs"]
    assert set(results["rm_data"]) == {f"{f}/{s}" for f in FULL["rm_data_fractions"] for s in seeds}
    for key, run in results["rm_data"].items():
        assert run["pairs"] == round(float(key.split("/")[0]) * n_train) and run["curve"][-1]["step"] == FULL["rm_steps"]
    bon = results["bon"]["validation"]
    assert bon["k"] == FULL["bon_k"] and bon["prompts"] == n_tasks * FULL["bon_prompts"]
    assert set(bon["by_n"]) == {str(n) for n in FULL["bon_n"]}
    assert all(set(v[m]) == {str(s) for s in seeds} for v in bon["by_n"].values() for m in ("gold", "proxy", "exact"))
    assert set(results["dpo"]) == {f"{b}/{s}" for b in FULL["dpo_betas"] for s in seeds}
    assert all(r["curve"][-1]["step"] == FULL["dpo_steps"] for r in results["dpo"].values())
    assert set(results["rl"]) == {f"{v}/{s}" for v in FULL["rl_variants"] for s in seeds}
    for run in results["rl"].values():
        assert len(run["steps"]) == FULL["rl_steps"]
        assert [c["step"] for c in run["curve"]] == list(range(0, FULL["rl_steps"] + 1, FULL["rl_eval_every"]))
    test = results["test"]
    chosen = test["chosen_on_validation"]
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    assert chosen["bon_n"] == max(FULL["bon_n"], key=lambda n: mean(list(bon["by_n"][str(n)]["gold"].values())))
    assert chosen["dpo_beta"] == max(FULL["dpo_betas"], key=lambda b: mean(
        [results["dpo"][f"{b}/{s}"]["validation"]["all"]["gold"] for s in seeds]))
    assert chosen["rl_variant"] == max(FULL["rl_variants"], key=lambda v: mean(
        [results["rl"][f"{v}/{s}"]["validation"]["all"]["pass_at_k"]["1"] for s in seeds]))
    assert set(test["dpo"]) == set(test["rl"]) == {str(s) for s in seeds}
    assert test["sft"]["pref"]["all"]["prompts"] == n_tasks * FULL["eval_prompts"]
