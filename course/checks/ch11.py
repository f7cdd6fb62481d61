"""Checks for the exercises of chapter 11 (from a language model to an assistant)."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from numbers import Real
from typing import Any

import numpy as np

from . import ExerciseFailed, NotImplementedYet, _as_array, call, exercise_check, expect

# ============================================================================ 11.1 the loss mask


def _conversations() -> dict[str, list[dict[str, str]]]:
    return {
        "one question": [{"role": "user", "content": "What is 2+3?"}, {"role": "assistant", "content": "5"}],
        "a system message and two turns": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "Spell 'king'."},
            {"role": "assistant", "content": "k-i-n-g"},
            {"role": "user", "content": "And in capitals?"},
            {"role": "assistant", "content": "KING"},
        ],
        "a calculator call": [
            {"role": "user", "content": "What is 12*34?"},
            {"role": "assistant", "content": "", "tool_call": "12*34"},
            {"role": "tool", "content": "408"},
            {"role": "assistant", "content": "408"},
            {"role": "user", "content": "Thanks."},
            {"role": "assistant", "content": "You are welcome."},
        ],
    }


def _mask_slips(ids: list[int], want: list[int], special: dict[str, int]) -> dict[str, list[int]]:
    """Wrong masks learners write, each with what to say about it."""
    a, end, call_id = special["<|assistant|>"], special["<|end|>"], special["<|tool_call|>"]
    slips: dict[str, list[int]] = {}
    slips["the <|assistant|> role token is marked as trained. The template writes it (the engine puts it in the "
          "prompt), so the model is never asked to produce it: mask 0"] = [1 if t == a else m for t, m in zip(ids, want)]
    slips["the <|end|> that closes an assistant message is not trained. Then the model never learns to stop, and "
          "every reply runs to the token limit: that <|end|> gets mask 1"] = [
        0 if (t == end and m) else m for t, m in zip(ids, want)]
    slips["the calculator call (<|tool_call|> and the expression) is not trained. The assistant writes the call, so "
          "the model must learn to write it: mask 1"] = [
        0 if m and (t == call_id or (0 < i and _in_call(ids, i, call_id, end))) else m
        for i, (t, m) in enumerate(zip(ids, want))]
    until_user, on = [], False  # everything from an <|assistant|> until the next user or system message
    for t in ids:
        if t == a:
            on = True
            until_user.append(0)
        elif t in (special["<|user|>"], special["<|system|>"]):
            on = False
            until_user.append(0)
        else:
            until_user.append(int(on))
    slips["the calculator's result (and the role tokens around it) is trained. The tool writes the result, not the "
          "model: training on it teaches the model to invent results. Only the assistant's own tokens get mask 1"] = until_user
    last = max(i for i, t in enumerate(ids) if t == a)
    slips["only the last assistant message is trained. In a multi-turn conversation every assistant message is "
          "the model's own writing: each gets mask 1"] = [m if i > last else 0 for i, m in enumerate(want)]
    slips["the mask is shifted one position to the right: mask[i] belongs to ids[i] itself (is predicting ids[i] "
          "from ids[:i] trained?), not to the token after it"] = [0] + want[:-1]
    slips["the mask is shifted one position to the left: mask[i] belongs to ids[i] itself, not to the token before "
          "it"] = want[1:] + [0]
    slips["1 and 0 are swapped: 1 means trained (the assistant's tokens), 0 means read only"] = [1 - m for m in want]
    slips["every token is trained, as in pretraining. An assistant is trained on its replies only: the user's text is "
          "given, not predicted"] = [1] * len(ids)
    return slips


def _in_call(ids: list[int], i: int, call_id: int, end: int) -> bool:
    """Is position i inside a calculator expression (after <|tool_call|>, before its <|end|>)?"""
    j = i - 1
    while j >= 0 and ids[j] not in (call_id, end):
        j -= 1
    return j >= 0 and ids[j] == call_id and ids[i] != end


def _as_mask(value: Any, what: str, length: int) -> list[int]:
    if isinstance(value, (str, bytes)):
        raise ExerciseFailed(f"{what}: return a list of 0s and 1s, got a {type(value).__name__}.")
    m = _as_array(value)
    expect(m.ndim == 1, f"{what}: return a flat list of 0s and 1s (one per id), got an array of shape {m.shape}.")
    expect(len(m) == length, f"{what}: {len(m)} entries for {length} ids: the mask has one entry per id.")
    expect(m.dtype == bool or np.isin(m, (0, 1)).all(), f"{what}: the entries must be 0/1 (or False/True).")
    return [int(x) for x in m]


@exercise_check("the loss mask of a conversation")
def check_loss_mask(loss_mask) -> None:
    """Compare with `course.chat_format.render_conversation` on three conversations, naming the usual slips."""
    from course.chat_format import ChatTokenizer, render_conversation

    tok = ChatTokenizer.for_shipped_model()
    special = dict(tok.special_ids)
    for name, messages in _conversations().items():
        ids, want = render_conversation(messages, tok)
        got = _as_mask(call(loss_mask, list(ids), dict(special)), f"your mask for {name}", len(ids))
        if got == want:
            continue
        for message, slip in _mask_slips(ids, want, special).items():
            if got == slip:
                raise ExerciseFailed(f"for {name}: {message}.")
        first = next(i for i, (g, w) in enumerate(zip(got, want)) if g != w)
        shown = tok.decode([ids[first]])
        raise ExerciseFailed(
            f"for {name} ({tok.decode(ids)!r}) the mask differs first at position {first} (the token {shown!r}): "
            f"you have {got[first]}, expected {want[first]}. Trained (1): the assistant's text, its calculator call and "
            "the <|end|> that closes its message; read only (0): everything else.")


# ============================================================================ 11.2 the safe evaluator

_VALID = [
    ("12*34", Fraction(408)), ("1+2*3", Fraction(7)), ("(1+2)*3", Fraction(9)), ("10-4-3", Fraction(3)),
    ("-5+2", Fraction(-3)), ("7/2", Fraction(7, 2)), ("2*(3+4)-5/5", Fraction(13)), (" 4821 * 376 ", Fraction(1812696)),
    ("0.5*4", Fraction(2)), ("-(2-5)", Fraction(3)), ("123456789*987654321", Fraction(121932631112635269)),
]
_REFUSE = [  # (expression, why it must be refused)
    ("__import__('os').getcwd()", "an import and a call"),
    ("2**10", "a power (**): 9**9**9 has about 370 million digits, so a power would let one call run for hours"),
    ("(1).__class__", "an attribute"),
    ("abs(-3)", "a function call"),
    ("x+1", "a name"),
    ("[1, 2]", "a list"),
    ("1 if 1 else 2", "a conditional"),
    ("7 // 2", "floor division (not one of + - * /)"),
    ("7 % 2", "the remainder (not one of + - * /)"),
    ("'a'*3", "a string"),
    ("True+1", "a bool (Python counts True as the int 1: test type(value) in (int, float), not isinstance)"),
    ("1+", "a malformed expression"),
    ("1+" * 600 + "1", "an expression of 1,201 characters (the limit is 200)"),
]


def _value(x: Any) -> Fraction | float | None:
    if isinstance(x, (bool, np.bool_)):
        return None
    if isinstance(x, Fraction):
        return x
    if isinstance(x, (int, np.integer)):
        return Fraction(int(x))
    if isinstance(x, Real):
        return float(x)
    return None


@exercise_check("the safe evaluator")
def check_safe_eval(safe_eval) -> None:
    """Right values on valid expressions; a ValueError for every hostile or malformed one."""
    for expression, want in _VALID:
        try:
            got = call(safe_eval, expression)
        except ExerciseFailed as err:
            if isinstance(err, NotImplementedYet):
                raise
            raise ExerciseFailed(f"safe_eval({expression!r}) should be {want}, but {err}"
                                 + (" (spaces around the expression: strip them before ast.parse)"
                                    if expression != expression.strip() else "")) from None
        value = _value(got)
        if value is None:
            raise ExerciseFailed(f"safe_eval({expression!r}) returned {got!r} ({type(got).__name__}): return the number "
                                 "(an int, a Fraction or a float), not text.")
        ok = value == want if isinstance(value, Fraction) else math.isclose(value, float(want), rel_tol=1e-9, abs_tol=1e-12)
        if not ok:
            hint = ""
            if expression == "10-4-3" and value == 9:
                hint = " Subtraction goes left to right: (10-4)-3, as Python's parser builds it."
            elif expression == "1+2*3" and value == 9:
                hint = " * binds tighter than +: let ast.parse build the tree, do not evaluate left to right."
            elif expression == "7/2" and value == 3:
                hint = " / is true division: 7/2 is 3.5 (a Fraction keeps it exact), not 3."
            elif expression.strip().startswith("-") and value == -want:
                hint = " Look at unary minus (ast.UnaryOp with ast.USub)."
            raise ExerciseFailed(f"safe_eval({expression!r}) gave {value}, expected {want}.{hint}")
    for expression, why in _REFUSE:
        shown = expression if len(expression) < 40 else expression[:20] + "..." + expression[-10:]
        try:
            got = safe_eval(expression)
        except NotImplementedError:
            raise NotImplementedYet("`safe_eval` is still the blank stub (it raises NotImplementedError). Replace the "
                                    "`raise NotImplementedError` line with your code, run that cell, then run the check "
                                    "again.") from None
        except ValueError:
            continue
        except SyntaxError:
            raise ExerciseFailed(f"safe_eval({shown!r}) let a SyntaxError out: catch it and raise ValueError, so "
                                 "that the caller handles every refusal the same way.") from None
        except Exception as err:  # noqa: BLE001 - any other exception is reported by type
            raise ExerciseFailed(f"safe_eval({shown!r}) raised {type(err).__name__}: {err}. Refuse it with a "
                                 f"ValueError that says why: it is {why}.") from None
        if expression.startswith("__import__") and isinstance(got, str):
            raise ExerciseFailed("safe_eval ran Python code: it imported a module and called a function. The text "
                                 "came from a model, so it must never reach eval(): parse it with ast.parse and walk "
                                 "the tree, allowing only numbers and + - * /.")
        raise ExerciseFailed(f"safe_eval({shown!r}) returned {got!r}: it must raise ValueError, because it is {why}.")
    try:
        safe_eval("1/0")
    except (ValueError, ZeroDivisionError):
        pass
    except Exception as err:  # noqa: BLE001
        raise ExerciseFailed(f"safe_eval('1/0') raised {type(err).__name__}: refuse a division by zero with a "
                             "ValueError (or let ZeroDivisionError out).") from None
    else:
        raise ExerciseFailed("safe_eval('1/0') returned a value: a division by zero must be refused.")


# ============================================================================ 11.3 pass@k


_REL, _ABS = 1e-6, 1e-9  # float32 answers pass; every wrong formula the check names is off by far more


def _enumerated(n: int, c: int, k: int) -> Fraction:
    """The definition: the share of the k-subsets of n answers (c correct) that hold a correct one."""
    hits = total = 0
    for subset in itertools.combinations(range(n), k):
        total += 1
        hits += any(i < c for i in subset)
    return Fraction(hits, total)


def _number_of(value: Any, what: str) -> float:
    if hasattr(value, "detach") or isinstance(value, np.ndarray):
        arr = _as_array(value)
        expect(arr.size == 1, f"{what}: return one number, got an array of shape {arr.shape}.")
        value = arr.reshape(()).item()
    expect(isinstance(value, (Real, Fraction)) and not isinstance(value, (bool, np.bool_)),
           f"{what} returned {value!r}: return a number between 0 and 1.")
    return float(value)


@exercise_check("the unbiased pass@k estimator")
def check_pass_at_k(pass_at_k) -> None:
    """Against enumerating every k-subset (n <= 8), plus a large case, naming the usual wrong formulas."""
    for n in range(1, 9):
        for c in range(0, n + 1):
            for k in range(1, n + 1):
                what = f"pass_at_k(n={n}, c={c}, k={k})"
                got = _number_of(call(pass_at_k, n, c, k), what)
                want = float(_enumerated(n, c, k))
                if math.isclose(got, want, rel_tol=_REL, abs_tol=_ABS):
                    continue
                if math.isclose(got, 1 - (1 - c / n) ** k, rel_tol=_REL, abs_tol=_ABS):
                    raise ExerciseFailed(f"{what} = {got:.6g} is 1 - (1 - c/n)**k, the chance when the k answers are "
                                         "drawn *with* replacement. pass@k draws k of the n answers without "
                                         f"replacement: 1 - C(n-c, k) / C(n, k) = {want:.6g}. The formula you used is "
                                         "biased low.")
                if math.isclose(got, c / n, rel_tol=_REL, abs_tol=_ABS):
                    raise ExerciseFailed(f"{what} = {got:.6g} = c/n: that is pass@1, for any k. With k tries the chance "
                                         f"that at least one is right is higher: {want:.6g}.")
                if math.isclose(got, 1 - want, rel_tol=_REL, abs_tol=_ABS):
                    raise ExerciseFailed(f"{what} = {got:.6g} is the chance that all k answers are wrong, "
                                         "C(n-c, k) / C(n, k): pass@k is one minus that.")
                if math.isclose(got, 100 * want, rel_tol=_REL):
                    raise ExerciseFailed(f"{what} = {got:.6g} looks like a percentage: return a fraction between 0 and 1.")
                raise ExerciseFailed(f"{what} = {got:.6g}, expected {want:.6g} (the share of the k-subsets of the n "
                                     "answers that hold at least one correct answer).")
    got = _number_of(call(pass_at_k, 200, 3, 100), "pass_at_k(n=200, c=3, k=100)")
    want = 1 - math.comb(197, 100) / math.comb(200, 100)
    expect(math.isfinite(got) and math.isclose(got, want, rel_tol=_REL),
           f"pass_at_k(n=200, c=3, k=100) = {got!r}, expected {want:.9g}. With n = 200 the binomials have about 60 "
           "digits: math.comb computes them exactly; factorials as floats overflow or lose digits.")
