"""Helpers for the tests that read the chapters (pairing, exercises, student edition)."""

from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


def sources() -> list[Path]:
    """Every chapter's MyST source."""
    return sorted(p for p in NOTEBOOKS.glob("*.md") if p.name[0].isalnum() and p.stem[:2].isdigit())


def read_md(path: Path) -> nbformat.NotebookNode:
    return jupytext.read(path)


def read_ipynb(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def exercises(nb) -> list[dict]:
    """The (stub, solution, check) code cells of a notebook, in order.

    Raises ValueError when the cells do not follow the convention (CONTRIBUTING.md).
    """
    found: list[dict] = []
    current: dict | None = None
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        t = tags(cell)
        if "stub" in t:
            if current is not None:
                raise ValueError(f"cell {index}: a new stub starts before the previous exercise had its check")
            current = {"stub": cell.source, "index": index}
        elif "solution" in t:
            if current is None or "solution" in current:
                raise ValueError(f"cell {index}: a solution cell without a preceding stub")
            current["solution"] = cell.source
        elif "check" in t:
            if current is None or "solution" not in current:
                raise ValueError(f"cell {index}: a check cell without a preceding stub and solution")
            current["check"] = cell.source
            found.append(current)
            current = None
    if current is not None:
        raise ValueError(f"the exercise whose stub is cell {current['index']} has no check cell")
    return found


def quoted(nb_name: str, name: str) -> list[tuple[str, str]]:
    """(format spec, text shown) for every `{eval}` expression in a chapter's prose that shows the variable `name`.

    Expressions of the form ``name`` or ``f"{name:spec}"`` (tools/inline_values.py), as the executed
    chapter stores them.
    """
    import re
    import sys

    sys.path.insert(0, str(ROOT / "tools"))
    import inline_values

    pattern = re.compile(r'^(?:f"\{(?P<name>[\w\[\]]+)(?::(?P<spec>[^}]*))?\}"|(?P<bare>[\w\[\]]+))$')
    found = []
    for expr, text in inline_values.chapter_values(NOTEBOOKS / nb_name).items():
        match = pattern.match(expr)
        if match and (match["name"] or match["bare"]) == name:
            found.append((match["spec"] or "", text))
    return found


def assert_quoted(nb_name: str, name: str, value) -> None:
    """Every place the chapter's prose shows `name`, it shows `value` (formatted as the prose formats it)."""
    found = quoted(nb_name, name)
    assert found, f"{nb_name}: the prose quotes no {{eval}} expression of {name}"
    for spec, text in found:
        expected = format(value, spec) if spec else (value if isinstance(value, str) else repr(value))
        assert text == expected, f"{nb_name}: the prose shows {name} as {text!r}, expected {expected!r}"
