"""Numbers in the prose: MyST's `{eval}` inline expressions, one mechanism for every reader.

A chapter's prose quotes a value of its own code as an inline expression,

    the run took {eval}`f"{ch05_cpu_minutes:.1f}"` minutes

JupyterLab (jupyterlab-myst) evaluates such an expression in the kernel when the
markdown cell is run, and stores the result in the cell's metadata
(``user_expressions``: a list of ``{"expression": ..., "result": <a kernel's
user_expressions reply>}``); before anything runs, it shows the stored result.
Everything else reads the same stored results, so one executed value reaches every
reader:

- tools/execute_notebooks.py evaluates each markdown cell's expressions in the kernel
  at the cell's place in the run (as JupyterLab does) and stores them;
- the book (Jupyter Book 1, whose myst-nb only evaluates `{eval}` with a live kernel)
  renders them from the stored results through `setup`, a Sphinx extension
  (book.yml: ``sphinx.local_extensions``);
- the tests re-evaluate them under nbval and compare (tests/nbval_inline.py);
- the plain edition for Colab and GitHub substitutes them (tools/make_plain.py).

An expression shows its value's ``text/plain`` with one pair of quotes removed
(exactly what jupyterlab-myst does), so a string shows as its text and a number as
its repr: format numbers in the expression (an f-string), never by hand.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat

# {eval}`expression`: the expression is anything without a backtick (MyST's inline role syntax)
EVAL_ROLE = re.compile(r"\{eval\}`([^`]+)`")
_QUOTED = re.compile(r"""^(["'])(.*)\1$""", re.S)


def expressions(markdown: str) -> list[str]:
    """The distinct inline expressions of a markdown cell, in order of first appearance."""
    found: list[str] = []
    for expr in EVAL_ROLE.findall(markdown):
        if expr not in found:
            found.append(expr)
    return found


def shown(result: dict[str, Any]) -> str:
    """The text a stored result shows in the prose (its text/plain, one pair of quotes removed).

    Raises ValueError for an expression that raised or has no text/plain value.
    """
    if result.get("status") != "ok":
        raise ValueError(f"{result.get('ename', 'error')}: {result.get('evalue', '')}".strip())
    plain = result.get("data", {}).get("text/plain")
    if plain is None:
        raise ValueError("the value has no text/plain form: show a str or a number")
    return _QUOTED.sub(r"\2", plain)


class MissingValue(LookupError):
    """An inline expression without a stored result: the chapter was not executed since it was edited."""


def stored(cell: dict) -> dict[str, dict]:
    """{expression: stored result} of one markdown cell, checked against the expressions its text uses."""
    results = {entry["expression"]: entry["result"] for entry in cell.get("metadata", {}).get("user_expressions", [])}
    missing = [e for e in expressions(cell.get("source", "")) if e not in results]
    if missing:
        raise MissingValue(f"no stored value for {', '.join(missing)}: execute the chapter "
                           "(make execute NOTEBOOKS=notebooks/<chapter>.md, or tools/execute_notebooks.py)")
    return results


def chapter_values(notebook: Path | str) -> dict[str, str]:
    """{expression: what the prose shows} over a whole executed chapter.

    An expression used in several cells must show the same text in all of them (the book,
    which renders a role without knowing its cell, relies on it).
    """
    nb = nbformat.read(str(notebook), as_version=4)
    values: dict[str, str] = {}
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        for expr, result in stored(cell).items():
            try:
                text = shown(result)
            except ValueError as err:
                raise ValueError(f"{Path(notebook).name}, cell {index}: {{eval}}`{expr}` failed: {err}") from None
            if values.setdefault(expr, text) != text:
                raise ValueError(f"{Path(notebook).name}: {{eval}}`{expr}` shows {values[expr]!r} in one cell and "
                                 f"{text!r} in cell {index}; give the later value another name")
    return values


# --- the book: a Sphinx role that renders {eval} from the stored results -------------------------


def _eval_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    from docutils import nodes

    env = inliner.document.settings.env
    cache = env.temp_data.setdefault("inline_values", {})
    if env.docname not in cache:
        source = Path(env.doc2path(env.docname))
        try:
            cache[env.docname] = chapter_values(source) if source.suffix == ".ipynb" else {}
        except (MissingValue, ValueError) as err:
            cache[env.docname] = err
    values = cache[env.docname]
    problem = str(values) if isinstance(values, Exception) else None
    if problem is None and text not in values:
        problem = (f"{{eval}}`{text}` has no stored value in {env.docname}: the book renders the values "
                   "tools/execute_notebooks.py stored; execute the chapter")
    if problem:
        msg = inliner.reporter.error(problem, line=lineno)
        return [inliner.problematic(rawtext, rawtext, msg)], [msg]
    return [nodes.inline(rawtext, values[text], classes=["inline-value"])], []


def setup(app) -> dict:
    """Sphinx extension: `{eval}` renders the executed value (replaces myst-nb's live-kernel role)."""
    app.add_role("eval", _eval_role, override=True)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
