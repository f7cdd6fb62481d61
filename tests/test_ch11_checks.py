"""Chapter 11's exercise checks: the solutions pass in every valid form, blank stubs say so, and each usual slip is
named in words. Also the chapter's figures and its grid's results file."""

from __future__ import annotations

import ast
import json
import math
from fractions import Fraction

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from conftest import ROOT
from course.chat_format import ChatTokenizer, render_conversation
from course.checks import ExerciseFailed, NotImplementedYet
from course.checks.ch11 import _conversations, _mask_slips, check_loss_mask, check_pass_at_k, check_safe_eval
from solutions.ch11_assistant import loss_mask, pass_at_k, safe_eval

TOK = ChatTokenizer.for_shipped_model()
SPECIAL = dict(TOK.special_ids)


def _stub(*args):
    raise NotImplementedError


@pytest.mark.parametrize("check, solution", [(check_loss_mask, loss_mask), (check_safe_eval, safe_eval),
                                             (check_pass_at_k, pass_at_k)])
def test_the_solution_passes_and_the_stub_fails(check, solution, capsys):
    check(solution)
    assert "passed" in capsys.readouterr().out
    with pytest.raises(NotImplementedYet):
        check(_stub)


# ------------------------------------------------------------------ 11.1 the loss mask

@pytest.mark.parametrize("form", [tuple, np.array, lambda m: np.array(m, dtype=bool), torch.tensor,
                                  lambda m: [bool(x) for x in m]])
def test_every_form_of_a_right_mask_passes(form):
    check_loss_mask(lambda ids, special: form(loss_mask(ids, special)))


def _slip_mask(message_start: str):
    """A learner's loss_mask that makes one of the named slips (on every conversation of the check)."""
    by_ids = {tuple(render_conversation(m, TOK)[0]): m for m in _conversations().values()}

    def fn(ids, special):
        want = render_conversation(by_ids[tuple(ids)], TOK)[1]
        slips = _mask_slips(list(ids), want, special)
        return next(v for k, v in slips.items() if k.startswith(message_start))

    return fn


@pytest.mark.parametrize("slip, words", [
    ("the <|assistant|> role token", "template writes it"),
    ("the <|end|> that closes", "never learns to stop"),
    ("the calculator call", "must learn to write it"),
    ("the calculator's result", "invent results"),
    ("only the last assistant", "every assistant message"),
    ("the mask is shifted one position to the right", "shifted one position to the right"),
    ("the mask is shifted one position to the left", "shifted one position to the left"),
    ("1 and 0 are swapped", "swapped"),
    ("every token is trained", "as in pretraining"),
])
def test_each_mask_slip_is_named(slip, words):
    with pytest.raises(ExerciseFailed, match=words):
        check_loss_mask(_slip_mask(slip))


def test_each_slip_differs_from_the_right_mask_on_some_conversation():
    for messages in _conversations().values():
        ids, want = render_conversation(messages, TOK)
        for message, slip in _mask_slips(ids, want, SPECIAL).items():
            assert len(slip) == len(ids), message
    for message in _mask_slips(*render_conversation(_conversations()["a calculator call"], TOK), SPECIAL):
        assert any(_mask_slips(*render_conversation(m, TOK), SPECIAL)[message] != render_conversation(m, TOK)[1]
                   for m in _conversations().values()), message


def test_a_mask_of_the_wrong_length_or_values_is_explained():
    with pytest.raises(ExerciseFailed, match="one entry per id"):
        check_loss_mask(lambda ids, special: loss_mask(ids, special)[:-1])
    with pytest.raises(ExerciseFailed, match="0/1"):
        check_loss_mask(lambda ids, special: [2 * m for m in loss_mask(ids, special)])
    with pytest.raises(ExerciseFailed, match="differs first at position"):
        check_loss_mask(lambda ids, special: [0, 1] + loss_mask(ids, special)[2:])  # the user's first letter trained


# ------------------------------------------------------------------ 11.2 the safe evaluator

def test_a_float_or_int_result_passes():
    def as_float(expression):
        return float(safe_eval(expression))

    def as_int_where_whole(expression):
        v = safe_eval(expression)
        return int(v) if v.denominator == 1 else v

    check_safe_eval(as_float)
    check_safe_eval(as_int_where_whole)


def _eval_based(expression):
    return eval(expression)  # noqa: S307 - the slip under test


def _literal(expression):
    return ast.literal_eval(expression)


def _with(fix, **changes):
    """safe_eval with one rule changed (a learner's variant)."""
    def fn(expression):
        if "no_strip" in changes and expression != expression.strip():
            raise ValueError("unexpected indent")
        if "syntax" in changes and expression.strip().endswith("+"):
            ast.parse(expression, mode="eval")  # lets the SyntaxError out
        if "long" in changes and len(expression) > 200:
            return Fraction(601)
        if "power" in changes and "**" in expression:
            return Fraction(eval(expression))  # noqa: S307
        if "bool" in changes and expression == "True+1":
            return Fraction(2)
        if "type_error" in changes and "x" in expression:
            raise TypeError("unsupported")
        return fix(expression)
    return fn


@pytest.mark.parametrize("fn, words", [
    (_eval_based, "ran Python code"),
    (_literal, "should be 408"),
    (_with(safe_eval, no_strip=True), "strip them"),
    (_with(safe_eval, syntax=True), "SyntaxError"),
    (_with(safe_eval, long=True), "1,201 characters"),
    (_with(safe_eval, power=True), "a power"),
    (_with(safe_eval, bool=True), "type\\(value\\) in \\(int, float\\)"),
    (_with(safe_eval, type_error=True), "TypeError"),
    (lambda e: str(safe_eval(e)), "not text"),
    (lambda e: -safe_eval(e) if e == "-5+2" else safe_eval(e), "unary minus"),
])
def test_each_evaluator_slip_is_named(fn, words):
    with pytest.raises(ExerciseFailed, match=words):
        check_safe_eval(fn)


def test_left_to_right_and_integer_division_are_named():
    def left_to_right(expression):
        if expression == "1+2*3":
            return Fraction(9)
        return safe_eval(expression)

    def floor(expression):
        v = safe_eval(expression)
        return Fraction(math.floor(v)) if expression == "7/2" else v

    with pytest.raises(ExerciseFailed, match="binds tighter"):
        check_safe_eval(left_to_right)
    with pytest.raises(ExerciseFailed, match="true division"):
        check_safe_eval(floor)


def test_division_by_zero_must_be_refused():
    def no_zero_check(expression):
        if expression == "1/0":
            return Fraction(0)
        return safe_eval(expression)

    with pytest.raises(ExerciseFailed, match="division by zero"):
        check_safe_eval(no_zero_check)


# ------------------------------------------------------------------ 11.3 pass@k

@pytest.mark.parametrize("form", [float, np.float32, np.float64, lambda v: torch.tensor(v, dtype=torch.float64),
                                  lambda v: np.array(v)])
def test_every_numeric_form_passes(form):
    check_pass_at_k(lambda n, c, k: form(pass_at_k(n, c, k)))


def test_the_exact_fraction_passes():
    check_pass_at_k(lambda n, c, k: Fraction(1) - Fraction(math.comb(n - c, k), math.comb(n, k)))


@pytest.mark.parametrize("fn, words", [
    (lambda n, c, k: 1 - (1 - c / n) ** k, "with\\* replacement"),
    (lambda n, c, k: c / n, "that is pass@1"),
    (lambda n, c, k: math.comb(n - c, k) / math.comb(n, k), "all k answers are wrong"),
    (lambda n, c, k: 100 * pass_at_k(n, c, k), "percentage"),
    (lambda n, c, k: pass_at_k(n, c, k) if n < 100 else float("nan"), "math.comb"),
    (lambda n, c, k: 0.9 * pass_at_k(n, c, k), "expected"),
    (lambda n, c, k: "0.5", "a number between 0 and 1"),
])
def test_each_pass_at_k_slip_is_named(fn, words):
    with pytest.raises(ExerciseFailed, match=words):
        check_pass_at_k(fn)


# ------------------------------------------------------------------ the chapter's figures

def test_the_figures_draw_what_they_are_given():
    from course.plots.assistant import (plot_digits, plot_grow_inits, plot_loss_mask, plot_task_accuracy,
                                        plot_task_curves)

    ids, mask = render_conversation(_conversations()["a calculator call"], TOK)
    fig = plot_loss_mask(ids, mask, TOK)
    patches = fig.axes[0].patches
    assert len(patches) == len(ids) and sum(p.get_facecolor()[1] > 0.7 and p.get_facecolor()[0] < 0.6
                                            for p in patches) == sum(mask)
    with pytest.raises(ValueError, match="same length"):
        plot_loss_mask(ids, mask[:-1], TOK)
    fig = plot_task_accuracy({"a": {"x": [0.5], "y": [1.0]}, "b": {"x": [0.2, 0.4], "y": [0.0, 0.1]}}, ["x", "y"])
    assert [round(p.get_height(), 3) for p in fig.axes[0].patches] == [0.5, 1.0, 0.3, 0.05]
    fig = plot_digits({"m": {"add": {1: [1.0, 0.5], 2: [0.25]}}})
    assert list(fig.axes[0].lines[0].get_ydata()) == [0.75, 0.25]
    curve = [{"step": s, "val_loss": 1 / (s + 1), "task_val_loss": {"x": 2 / (s + 1)}} for s in (0, 5)]
    fig = plot_task_curves({"run": curve}, ["x"])
    assert len(fig.axes[0].lines) == 2
    fig = plot_grow_inits({"mean": [[{"step": 0, "val_loss": 4.0}, {"step": 6, "val_loss": 2.0}]] * 2})
    assert list(fig.axes[0].lines[-1].get_ydata()) == [4.0, 2.0]
    plt.close("all")


# ------------------------------------------------------------------ the grid's results file

def test_the_grid_results_hold_the_whole_plan():
    """benchmarks/results/assistant.json (make assistant-grid), which chapter 11 reads, holds every run of its plan."""
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from assistant_grid import DIGIT_CELLS, FULL, LONG

    results = json.loads((ROOT / "benchmarks" / "results" / "assistant.json").read_text())
    assert results["config"] == FULL
    seeds = FULL["seeds"]
    assert set(results["grow"]["runs"]) == {f"{i}/{s}" for i in ("mean", "normal", "zeros") for s in seeds}
    for curve in results["grow"]["runs"].values():
        assert [c["step"] for c in curve] == list(range(0, FULL["grow_steps"] + 1, FULL["grow_steps"] // 10))
    assert set(results["main"]) == {f"{i}/{s}" for i in ("pretrained", "scratch") for s in seeds}
    for run in results["main"].values():
        assert len(run["validation"]) == 12 and all(v["n"] == FULL["main_per_task"] for v in run["validation"].values())
        assert set(run["digits"]) == set(DIGIT_CELLS)
        assert all(set(by) == {str(d) for d in FULL["digits"]} for by in run["digits"].values())
    assert all(v["n"] == FULL["base_per_task"] for v in results["base"]["validation"].values())
    assert set(results["test"]) == set(results["main"]) | {"shipped"}
    assert all(v["n"] == FULL["test_per_task"] for run in results["test"].values() for v in run.values())
    # the shipped recipe's two more seeds (seed 0 is the shipped assistant)
    assert results["long"]["config"] == LONG and 0 not in LONG["seeds"]
    assert set(results["long"]["runs"]) == {str(s) for s in LONG["seeds"]}
    for run in results["long"]["runs"].values():
        assert len(run["validation"]) == 12 and all(v["n"] == LONG["per_task"] for v in run["validation"].values())
        assert [c["step"] for c in run["curve"]] == list(range(0, LONG["steps"] + 1, LONG["steps"] // 10))
        assert set(run["digits"]) == set(DIGIT_CELLS)
        assert all(v["n"] == FULL["digit_questions"] for by in run["digits"].values() for v in by.values())
    shipped = json.loads((ROOT / "course" / "checkpoints" / "assistant-char" / "info.json").read_text())
    assert shipped["steps"] == LONG["steps"] and shipped["seed"] == 0
