"""Every exercise: the blank stub fails its check, the reference solution passes it.

The stub and check cells are self-contained (CONTRIBUTING.md), so each runs here
in a fresh namespace, without executing the rest of the chapter.
"""

from __future__ import annotations

import contextlib
import io
import os
import re

import pytest

from course.checks import ExerciseFailed
from notebook_utils import NOTEBOOKS, exercises, read_md, sources

CASES = [
    pytest.param(md, i, ex, id=f"{md.stem}-{i}")
    for md in sources()
    for i, ex in enumerate(exercises(read_md(md)))
]


@contextlib.contextmanager
def _in_notebooks_dir():
    old = os.getcwd()
    os.chdir(NOTEBOOKS)
    try:
        yield
    finally:
        os.chdir(old)


def _run(*cells: str) -> str:
    namespace: dict = {"__name__": "__exercise__"}
    out = io.StringIO()
    with _in_notebooks_dir(), contextlib.redirect_stdout(out):
        for source in cells:
            exec(compile(source, "<cell>", "exec"), namespace)
    return out.getvalue()


@pytest.mark.parametrize("md, index, ex", CASES)
def test_blank_stub_fails_its_check(md, index, ex):
    with pytest.raises(ExerciseFailed):
        _run(ex["stub"], ex["check"])


@pytest.mark.parametrize("md, index, ex", CASES)
def test_solution_passes_its_check(md, index, ex):
    printed = _run(ex["stub"], ex["solution"], ex["check"])
    assert "passed" in printed, f"the check printed no success line: {printed!r}"


@pytest.mark.parametrize("md", sources(), ids=lambda p: p.stem)
def test_exercise_structure(md):
    nb = read_md(md)
    found = exercises(nb)  # raises on a broken stub/solution/check order
    minimum = 1 if md.stem.startswith("00") else 3
    assert len(found) >= minimum, f"{md.stem} has {len(found)} exercise(s); chapters need at least {minimum}"
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    labels = re.findall(r"```\{exercise\}[^\n]*\n:label: (\S+)", text)
    assert len(labels) == len(found), f"{md.stem}: {len(labels)} exercise boxes but {len(found)} stub/solution/check triples"
    for label in labels:
        assert re.search(r"\{solution-start\} " + re.escape(label) + r"\s", text), f"{md.stem}: no solution for {label}"
    for cell in nb.cells:
        if cell.cell_type == "markdown" and "{solution-start}" in cell.source:
            assert "{solution-end}" in cell.source, f"{md.stem}: a solution block must sit in one markdown cell (+++ around it)"
            stripped = re.sub(r"`{3,}\{solution-start\}.*?`{3,}\{solution-end\}\s*`{3,}", "", cell.source, flags=re.S)
            assert not stripped.strip(), f"{md.stem}: text shares a cell with a solution block: {stripped.strip()[:80]!r}"
