"""Reference solutions for chapter 11 (from a language model to an assistant)."""

from __future__ import annotations


def loss_mask(ids, special):
    """1 where the assistant writes the token (its text, its call, its <|end|>), 0 elsewhere."""
    mask, writing = [], False
    for token in ids:
        if token == special["<|assistant|>"]:
            mask.append(0)  # the template writes the role token
            writing = True
        elif writing:
            mask.append(1)  # the assistant's text, <|tool_call|>, the expression, and the <|end|> that closes it
            if token == special["<|end|>"]:
                writing = False
        else:
            mask.append(0)  # system, user and tool messages: read, never trained
    return mask


def safe_eval(expression):
    """The exact value of numbers with + - * / and parentheses; ValueError for anything else."""
    import ast
    from fractions import Fraction

    if len(expression) > 200:
        raise ValueError("expression too long (at most 200 characters)")
    try:
        tree = ast.parse(expression.strip(), mode="eval")  # strip: a leading space is an "indent" to the parser
    except SyntaxError as err:
        raise ValueError(f"not an expression: {err.msg}") from None

    def walk(node):
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return Fraction(str(node.value))  # from its digits: 0.1 is exactly 1/10
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
            value = walk(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Add):
                return left + right
            if isinstance(node.op, ast.Sub):
                return left - right
            if isinstance(node.op, ast.Mult):
                return left * right
            if right == 0:
                raise ValueError("division by zero")
            return left / right
        raise ValueError(f"not allowed: {type(node).__name__} (only numbers, + - * / and parentheses)")

    return walk(tree)


def pass_at_k(n, c, k):
    """The unbiased pass@k of Chen et al. (2021): 1 - C(n-c, k) / C(n, k)."""
    from math import comb

    if n - c < k:
        return 1.0  # every draw of k answers holds a correct one
    return 1.0 - comb(n - c, k) / comb(n, k)
