"""Tests of course.calculator (chapter 11): exact arithmetic, agreement with Python's own arithmetic on random
expressions, and hostile inputs refused quickly, by the whole evaluator and by its tree walker alone."""

from __future__ import annotations

import ast
import doctest
import re
import time
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import course.calculator as calculator
from course.calculator import (
    MAX_DIGITS,
    MAX_LENGTH,
    CalculatorError,
    calculate,
    evaluate,
    evaluate_tree,
    format_number,
)

TIME_LIMIT_S = 0.5  # per refusal; each takes microseconds, the margin is for a loaded 2-core machine


def test_doctests() -> None:
    assert doctest.testmod(calculator).failed == 0


@pytest.mark.parametrize("expression, value", [
    ("1234*5678", 7006652),
    ("12 + 34", 46),
    ("2+3*4", 14),  # precedence as in school and in Python
    ("(2+3)*4", 20),
    ("10-4-3", 3),  # left to right
    ("100/8/5", Fraction(5, 2)),
    ("-7", -7),
    ("--7", 7),
    ("+7", 7),
    ("-(3-10)", 7),
    ("0.1+0.2", Fraction(3, 10)),  # exact: no float rounding
    ("1.5*4", 6),
    (".5+1.", Fraction(3, 2)),
    ("1/3", Fraction(1, 3)),
    ("  6 / 4  ", Fraction(3, 2)),
])
def test_values_are_exact(expression: str, value: Fraction) -> None:
    assert evaluate(expression) == value


@pytest.mark.parametrize("value, text", [
    (Fraction(7006652), "7006652"), (Fraction(-12), "-12"), (Fraction(0), "0"), (Fraction(1, 3), "0.333333"),
    (Fraction(2, 3), "0.666667"), (Fraction(-1, 8), "-0.125"), (Fraction(5, 2), "2.5"), (Fraction(1, 10**9), "0"),
    (Fraction(-1, 10**9), "0"), (Fraction(1, 2 * 10**6), "0"), (Fraction(3, 2 * 10**6), "0.000002"),
    (Fraction(10**7 + 1, 10**7), "1"), (7, "7"),
])
def test_format_number(value: Fraction, text: str) -> None:
    assert format_number(value) == text


def test_calculate_returns_the_tool_text() -> None:
    assert calculate("4110*390") == "1602900"
    assert calculate("10/4") == "2.5"


HOSTILE = [
    "__import__('os')",
    "__import__('os').system('echo hacked')",
    "().__class__",
    "().__class__.__bases__[0].__subclasses__()",
    "9**9**9",
    "2**10",
    "1" * 10_000,
    "1+" * 5_000 + "1",
    "9" * 199,  # short enough, but a number with 199 digits
    "999999999999999999999999999999*999999999999999999999999999999",  # 60 digits of product
    "lambda: 1",
    "(lambda: 1)()",
    "[x for x in range(10**9)]",
    "{x for x in ()}",
    "(x for x in ())",
    "'a'*3",
    "\"abc\"",
    "b'x'",
    "f'{1}'",
    "x",
    "print",
    "True",
    "None",
    "...",
    "1j",
    "1e999",
    "0x10",
    "1_000",
    "1//2",
    "1%2",
    "~1",
    "1<2",
    "1 if 1 else 2",
    "(1)(2)",
    "(1, 2)",
    "[1][0]",
    "1/0",
    "1/(3-3)",
    "0.0/0",
    "5/0.000",
    "",
    "   ",
    "1 +",
    ")(",
    "1..2",
    "007",
    "1\x00",
    "\u0661\u0662",  # Arabic-Indic digits: Python's int() would accept them
    "\uff11+\uff12",  # full-width digits
    b"1+1",
    12,
    None,
]


@pytest.mark.parametrize("expression", HOSTILE, ids=lambda e: repr(e)[:30])
def test_hostile_inputs_are_refused_fast(expression: object) -> None:
    start = time.perf_counter()
    with pytest.raises(CalculatorError):
        evaluate(expression)  # type: ignore[arg-type]
    assert time.perf_counter() - start < TIME_LIMIT_S


def test_the_messages_say_what_is_allowed() -> None:
    cases = {
        "__import__('os')": r"character '_' at position 0 is not allowed.*digits",
        "9**9**9": r"powers \(\*\*\).*\+ - \* /",
        "(1)(2)": r"function calls",
        "1/(2-2)": r"division by zero",
        "1" * 300: rf"300 characters long.*at most {MAX_LENGTH}",
        "9" * 60: rf"more than {MAX_DIGITS} digits",
        "10000000000000000000000000000*10000000000000000000000000": r"the result of \* is too large",
        "007": r"cannot start with 0",
        "1 +": r"not a well-formed arithmetic expression",
        "": r"empty",
    }
    for expression, pattern in cases.items():
        with pytest.raises(CalculatorError, match=pattern):
            evaluate(expression)


def test_a_calculator_error_is_a_value_error() -> None:
    assert issubclass(CalculatorError, ValueError)


WALKER_HOSTILE = {
    "__import__('os')": "function calls",
    "().__class__": "attribute access",
    "9**9**9": "powers",
    "lambda: 1": "lambda",
    "[x for x in y]": "comprehensions",
    "{1: 2}": "dictionaries",
    "'abc'": "strings",
    "b'x'": "bytes",
    "x": "names",
    "True": "bool",
    "1j": "complex",
    "1 < 2": "comparisons",
    "(1)(2)": "function calls",
    "[1][0]": "indexing",
    "-~1": "bitwise negation",
    "1 // 2": "floor division",
    "f'{1}'": "f-strings",
    "(y := 1)": "assignments",
    "1 if 1 else 2": "conditional",
}


@pytest.mark.parametrize("expression", list(WALKER_HOSTILE))
def test_the_tree_walker_alone_refuses(expression: str) -> None:
    """Even a tree that never went through the length and character checks is refused, by name."""
    start = time.perf_counter()
    with pytest.raises(CalculatorError, match=WALKER_HOSTILE[expression]):
        evaluate_tree(ast.parse(expression, mode="eval"), expression)
    assert time.perf_counter() - start < TIME_LIMIT_S


def test_the_tree_walker_without_source() -> None:
    assert evaluate_tree(ast.parse("0.5 * 4 - 1", mode="eval")) == 1
    with pytest.raises(CalculatorError, match="finite"):
        evaluate_tree(ast.Expression(body=ast.Constant(value=float("inf"))))
    with pytest.raises(TypeError, match="ast node"):
        evaluate_tree("1+1")  # type: ignore[arg-type]


def test_deep_but_short_expressions_are_fine() -> None:
    assert evaluate("-" * 199 + "1") == -1
    assert evaluate("(" * 99 + "7" + ")" * 99) == 7


def test_numbers_up_to_the_limit_are_accepted() -> None:
    big = "9" * MAX_DIGITS
    assert evaluate(big) == 10**MAX_DIGITS - 1
    assert evaluate(f"{big}-{big}") == 0
    with pytest.raises(CalculatorError):
        evaluate(f"{big}+1")  # 51 digits


# ------------------------------------------------------------------ agreement with Python's arithmetic
_INT = st.integers(0, 9999).map(str)
_DECIMAL = st.tuples(st.integers(0, 999), st.integers(0, 999)).map(lambda p: f"{p[0]}.{p[1]}")
_OPERATOR = st.sampled_from(["+", "-", "*", "/"])


def _tree(leaf: st.SearchStrategy[str], ops: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Nested expressions: parentheses, unary minus, optional spaces around operators."""
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.tuples(inner, ops, inner, st.sampled_from(["", " "])).map(lambda t: f"({t[0]}{t[3]}{t[1]}{t[3]}{t[2]})"),
            inner.map(lambda e: f"-{e}"),
        ),
        max_leaves=6,
    )


_FLAT = st.tuples(st.lists(st.tuples(st.one_of(_INT, _DECIMAL), _OPERATOR), max_size=5), st.one_of(_INT, _DECIMAL)).map(
    lambda t: "".join(n + op for n, op in t[0]) + t[1]
)  # no parentheses: precedence decides


def _python_exact(expression: str) -> Fraction:
    """Python evaluates the same text, every literal as an exact Fraction (the test wrote the text itself)."""
    exact = re.sub(r"\d+\.\d+|\d+", lambda m: f"F('{m.group(0)}')", expression)
    return eval(exact, {"__builtins__": {}, "F": Fraction})  # noqa: S307  (trusted, generated above)


@settings(max_examples=300, deadline=None)
@given(st.one_of(_tree(st.one_of(_INT, _DECIMAL), _OPERATOR), _FLAT))
def test_agrees_with_python_on_random_expressions(expression: str) -> None:
    try:
        expected = _python_exact(expression)
    except ZeroDivisionError:
        with pytest.raises(CalculatorError, match="division by zero"):
            evaluate(expression)
        return
    assert evaluate(expression) == expected
    assert calculate(expression) == format_number(expected)


@settings(max_examples=200, deadline=None)
@given(_tree(_INT, st.sampled_from(["+", "-", "*"])))
def test_agrees_with_python_ints(expression: str) -> None:
    """Without division and decimals, Python's own int arithmetic on the very same text."""
    value = eval(expression, {"__builtins__": {}})  # noqa: S307  (trusted, generated above)
    assert isinstance(value, int)
    assert evaluate(expression) == value
    assert calculate(expression) == str(value)
