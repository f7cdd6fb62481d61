"""A safe calculator for the assistant's tool calls (chapter 11).

The assistant of chapter 11 learns to write a calculator call such as
``<|tool_call|>1234*5678<|end|>``; the decoding engine stops there, evaluates the
expression with `calculate` and forces the result into the context. The
expression comes from a model, so it is untrusted text: it must never reach
Python's ``eval``. This module evaluates it itself, in four checks, each of which
refuses with a `CalculatorError` whose message says what is allowed:

1. **Length**: at most `MAX_LENGTH` characters (checked first, so a megabyte of
   input costs nothing).
2. **Characters**: digits, ``.``, ``+ - * /``, parentheses and spaces only. No
   letter, underscore, quote or bracket gets through, so names, attributes,
   strings, bytes, ``1e9``, ``1_000`` and complex numbers are refused here.
3. **Syntax**: Python's own parser (``ast.parse``) builds the tree; a malformed
   expression (``1 +``, ``007``, ``1..2``) is refused.
4. **The tree walk**, the real guarantee: `evaluate_tree` accepts only numbers,
   the binary operators ``+ - * /`` and unary ``-`` / ``+``. Anything else
   (``**``, ``//``, ``%``, a call such as ``(1)(2)``, a name, an attribute, a
   lambda, a comprehension...) is refused by name, even on a tree that did not
   come through checks 1-2.

Arithmetic is exact: every number is a `fractions.Fraction` read from its digits
(``0.1`` is exactly 1/10, not a float), so ``0.1+0.2`` is ``0.3``. Division by
zero is refused, and so is any number, given or computed, with more than
`MAX_DIGITS` digits in its numerator or denominator (``9**9**9`` is refused at
``**`` already; a long product of long numbers is refused at the multiplication
that gets too big). Each step works on numbers of at most about
2 × `MAX_DIGITS` digits, so every call returns quickly.

`calculate(expression)` returns the result as the text the tool writes into the
conversation (`format_number`): an integer in plain digits (``"7006652"``), any
other value as a decimal rounded to `DECIMAL_PLACES` places, trailing zeros
removed (``"0.333333"``).
"""

from __future__ import annotations

import ast
from fractions import Fraction

__all__ = [
    "ALLOWED_CHARACTERS", "CalculatorError", "DECIMAL_PLACES", "MAX_DIGITS", "MAX_LENGTH",
    "calculate", "evaluate", "evaluate_tree", "format_number",
]

MAX_LENGTH = 200  # characters in an expression
MAX_DIGITS = 50  # digits in the numerator or the denominator of any number, given or computed
DECIMAL_PLACES = 6  # a non-integer result is written with at most this many decimals
ALLOWED_CHARACTERS = frozenset("0123456789.+-*/() ")

_ALLOWED_TEXT = "numbers with + - * / and parentheses"
_BINARY = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_UNARY = {ast.USub: "-", ast.UAdd: "+"}
#: Friendly names of the constructs people (and models) try; any other node is named by its class.
_REFUSED_NAMES = {
    ast.Pow: "powers (**)", ast.FloorDiv: "floor division (//)", ast.Mod: "the remainder operator (%)",
    ast.MatMult: "matrix multiplication (@)", ast.LShift: "shifts (<<)", ast.RShift: "shifts (>>)",
    ast.BitAnd: "bitwise operators (&)", ast.BitOr: "bitwise operators (|)", ast.BitXor: "bitwise operators (^)",
    ast.Invert: "bitwise negation (~)", ast.Not: "'not'", ast.Name: "names", ast.Attribute: "attribute access (a.b)",
    ast.Call: "function calls", ast.Subscript: "indexing (a[b])", ast.Lambda: "lambda functions",
    ast.ListComp: "comprehensions", ast.SetComp: "comprehensions", ast.DictComp: "comprehensions",
    ast.GeneratorExp: "generator expressions", ast.Compare: "comparisons", ast.BoolOp: "'and' / 'or'",
    ast.IfExp: "conditional expressions", ast.Tuple: "tuples", ast.List: "lists", ast.Dict: "dictionaries",
    ast.Set: "sets", ast.JoinedStr: "f-strings", ast.Starred: "starred expressions", ast.NamedExpr: "assignments (:=)",
}


class CalculatorError(ValueError):
    """The calculator refused an expression; the message says why and what it accepts."""


def _refuse(node: ast.AST) -> CalculatorError:
    what = _REFUSED_NAMES.get(type(node), f"{type(node).__name__} expressions")
    return CalculatorError(f"{what}: not allowed; the calculator evaluates only {_ALLOWED_TEXT}.")


def _digits(n: int) -> int:
    return len(str(abs(n)))


def _checked(value: Fraction, what: str) -> Fraction:
    """``value`` unless its numerator or denominator has more than `MAX_DIGITS` digits."""
    if _digits(value.numerator) > MAX_DIGITS or _digits(value.denominator) > MAX_DIGITS:
        raise CalculatorError(
            f"{what} is too large: the calculator refuses numbers with more than {MAX_DIGITS} digits."
        )
    return value


def _number(node: ast.Constant, source: str | None) -> Fraction:
    value = node.value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = {str: "strings", bytes: "bytes"}.get(type(value), f"{type(value).__name__} constants")
        raise CalculatorError(f"{kind}: not allowed; the calculator evaluates only {_ALLOWED_TEXT}.")
    text = ast.get_source_segment(source, node) if source is not None else None
    if text is None:  # a tree built without its source: read the number back from Python's value
        text = repr(value)
    try:
        number = Fraction(text)
    except (ValueError, OverflowError):  # inf or nan from a hand-built tree
        raise CalculatorError(f"{text!r} is not a finite number.") from None
    return _checked(number, f"the number {text[:20]}{'...' if len(text) > 20 else ''}")


def _walk(node: ast.AST, source: str | None) -> Fraction:
    if isinstance(node, ast.Expression):
        return _walk(node.body, source)
    if isinstance(node, ast.Constant):
        return _number(node, source)
    if isinstance(node, ast.UnaryOp):
        if type(node.op) not in _UNARY:
            raise _refuse(node.op)
        operand = _walk(node.operand, source)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _BINARY:
            raise _refuse(node.op)  # before the operands: 9**9**9 never computes anything
        left, right = _walk(node.left, source), _walk(node.right, source)
        if isinstance(node.op, ast.Add):
            result = left + right
        elif isinstance(node.op, ast.Sub):
            result = left - right
        elif isinstance(node.op, ast.Mult):
            result = left * right
        else:
            if right == 0:
                raise CalculatorError("division by zero: the divisor evaluates to 0.")
            result = left / right
        return _checked(result, f"the result of {_BINARY[type(node.op)]}")
    raise _refuse(node)


def evaluate_tree(tree: ast.AST, source: str | None = None) -> Fraction:
    """The exact value of a parsed expression (``ast.parse(text, mode="eval")``), walking only allowed nodes.

    This is the check that makes the calculator safe: it raises `CalculatorError`
    at the first node that is not a number, ``+ - * /`` or a unary sign, whatever
    the tree holds. ``source`` (the parsed text) lets numbers be read from their
    digits exactly; without it they are read from Python's value.
    """
    if not isinstance(tree, ast.AST):
        raise TypeError(f"evaluate_tree expects an ast node (ast.parse(text, mode='eval')), got {type(tree).__name__}.")
    return _walk(tree, source)


def evaluate(expression: str) -> Fraction:
    """The exact value of an arithmetic expression such as ``"(12+3)*4/5"``, or a `CalculatorError`."""
    if not isinstance(expression, str):
        raise CalculatorError(f"the expression must be a str, got {type(expression).__name__}.")
    if len(expression) > MAX_LENGTH:
        raise CalculatorError(
            f"the expression is {len(expression):,} characters long; the calculator accepts at most {MAX_LENGTH}."
        )
    for pos, char in enumerate(expression):
        if char not in ALLOWED_CHARACTERS:
            raise CalculatorError(
                f"character {char!r} at position {pos} is not allowed: the calculator accepts digits, '.', "
                "'+', '-', '*', '/', parentheses and spaces."
            )
    if not expression.strip():
        raise CalculatorError("the expression is empty: write numbers with + - * / and parentheses, e.g. 12*34.")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
        detail = err.msg if isinstance(err, SyntaxError) else type(err).__name__
        if "leading zeros" in detail:  # Python's message suggests octal, which the calculator does not have
            detail = "a number cannot start with 0: write 7, not 007"
        raise CalculatorError(f"{expression!r} is not a well-formed arithmetic expression ({detail}).") from None
    return evaluate_tree(tree, expression.strip())


def format_number(value: Fraction | int) -> str:
    """The text of a result: integers as digits; other values rounded (half to even) to `DECIMAL_PLACES` decimals.

    >>> format_number(Fraction(7006652)), format_number(Fraction(1, 3)), format_number(Fraction(-1, 8))
    ('7006652', '0.333333', '-0.125')
    """
    value = Fraction(value)
    if value.denominator == 1:
        return str(value.numerator)
    scaled = round(value * 10**DECIMAL_PLACES)  # Fraction rounds half to even, exactly
    sign = "-" if scaled < 0 else ""
    whole, frac = divmod(abs(scaled), 10**DECIMAL_PLACES)
    frac_text = str(frac).rjust(DECIMAL_PLACES, "0").rstrip("0")
    if not frac_text:
        return f"{sign}{whole}" if whole else "0"
    return f"{sign}{whole}.{frac_text}"


def calculate(expression: str) -> str:
    """The tool: evaluate ``expression`` and return its result as text (see `format_number`), or a `CalculatorError`."""
    return format_number(evaluate(expression))
