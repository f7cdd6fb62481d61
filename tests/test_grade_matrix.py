"""Every exercise of every chapter, through the grader: the book's answer passes, a blank stub is blank, a
stub that raises is an error.

The answer is the code the chapter's solution box shows (in the book, JupyterLab and the plain edition alike),
checked against Sphinx's own `literalinclude` reader on the box's options (the file, `:pyobject:`, `:prepend:`,
and any line selection; tools/sync_solutions.py), so a box that forgets an import its code needs is caught
here, not by a student. One synthetic
class is graded in one `grade.grade()` call (two exercises at a time): a few minutes of CPU at most.
"""

from __future__ import annotations

import concurrent.futures
import dis
import functools
import re
import sys
import time
from types import CodeType

import builtins
import jupytext
import nbformat
import pytest

from notebook_utils import NOTEBOOKS, ROOT, tags

sys.path.insert(0, str(ROOT / "tools"))
import grade  # noqa: E402
from make_student import student_notebook  # noqa: E402

COURSE = grade.course_exercises()
EXERCISES = [ex for chapter in COURSE.values() for ex in chapter]
BOX = re.compile(r"`{3,}\{solution-start\}\s+(\S+).*?^% literalinclude\s+(\S+)\n((?:% :[\w-]+:[^\n]*\n)*)(`{3,})python\n(.*?)^\4",
                 re.S | re.M)


@functools.cache
def solution_boxes() -> dict[str, tuple[Path, dict, str]]:
    """{exercise label: (included file, the literalinclude options, the code the box shows)} from every chapter."""
    from sync_solutions import parse_options

    boxes = {}
    for md in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.md")):
        for cell in jupytext.read(md).cells:
            if cell.cell_type == "markdown" and "{solution-start}" in cell.source:
                for label, path, options, _, code in BOX.findall(cell.source):
                    boxes[label] = ((NOTEBOOKS / path).resolve(), parse_options(options), code)
    return boxes


def shown(label: str, *, prepend: bool = True) -> str:
    """The code of an exercise's solution box, as the book, JupyterLab and the plain edition show it (or, read
    again with Sphinx's literalinclude reader, without its `:prepend:` lines)."""
    from sync_solutions import include

    path, options, code = solution_boxes()[label]
    if prepend:
        assert code.rstrip("\n") == include(path, options).rstrip("\n"), f"{label}: the box is stale: run python tools/sync_solutions.py"
        return code
    return include(path, {k: v for k, v in options.items() if k != "prepend"})


def raising(stub: str) -> str:
    """The blank stub, with its body raising ValueError instead of NotImplementedError."""
    assert "raise NotImplementedError" in stub, stub
    return stub.replace("raise NotImplementedError", 'raise ValueError("boom")')


def test_every_exercise_has_a_solution_box():
    boxes = solution_boxes()
    assert len(EXERCISES) >= 30
    for ex in EXERCISES:
        assert ex.label in boxes, f"{ex.chapter}: no solution box for {ex.label}"
        path, options, _ = boxes[ex.label]
        assert path.is_file() and path.parent.name == "solutions", (ex.label, path)
        assert options.get("pyobject") in ex.names, (ex.label, options)


def _globals_read(code: CodeType) -> set[str]:
    """Every global name a code object (and the functions and comprehensions inside it) reads."""
    names = {i.argval for i in dis.get_instructions(code) if i.opname in ("LOAD_GLOBAL", "LOAD_NAME")}
    for const in code.co_consts:
        if isinstance(const, CodeType):
            names |= _globals_read(const)
    return names


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda e: e.label)
def test_the_solution_box_shows_the_imports_its_code_needs(ex):
    """The box's code defines, or imports in its `:prepend:` lines, every global name it reads (besides the
    functions of the chapter's earlier exercises, which the notebook has defined by then)."""
    code = shown(ex.label)
    namespace: dict = {}
    exec(compile(code, f"<box {ex.label}>", "exec"), namespace)  # defines the function (annotations evaluated)
    missing = sorted(_globals_read(compile(code, "<box>", "exec")) - set(namespace) - set(dir(builtins))
                     - set(ex.earlier))
    assert not missing, (
        f"{ex.label}: the solution box's code uses {missing} without importing them: add the import to the "
        f"box's `% :prepend:` line and run tools/sync_solutions.py (CONTRIBUTING.md)"
    )


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda e: e.label)
def test_the_stub_imports_what_the_solution_needs(ex):
    """Every stub cell carries its own imports: the modules the reference solution's body uses."""
    module = compile(shown(ex.label, prepend=False), "<box>", "exec")
    body = set().union(*(_globals_read(c) for c in module.co_consts if isinstance(c, CodeType)))  # not annotations
    needed = set()
    for name in body:
        for statement in grade.top_level_imports(shown(ex.label)):
            if name in grade.imported_names(statement):
                needed.add(statement)
    imported = set(grade.top_level_imports(ex.stub))
    assert needed <= imported, f"{ex.label}: the stub cell should import {sorted(needed - imported)}"


# ---------------------------------------------------------------------------
# the class: one grade.grade() call


def _edition_with(chapter: str, answers: dict[int, str]) -> nbformat.NotebookNode:
    nb = nbformat.from_dict(student_notebook(NOTEBOOKS / f"{chapter}.md"))
    stubs = [c for c in nb.cells if c.cell_type == "code" and "stub" in tags(c)]
    for i, source in answers.items():
        stubs[i].source = source
    return nb


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    """{(student, label): Result}: `shown` (the box's code), `alone` (the function without the box's imports,
    where the box has some), `blank` (the edition as it is) and `raising` (a stub raising ValueError)."""
    subs = tmp_path_factory.mktemp("class")
    answers = {
        "shown": lambda ex: shown(ex.label),
        "alone": lambda ex: shown(ex.label, prepend=False) if "prepend" in solution_boxes()[ex.label][1] else None,
        "blank": lambda ex: None,
        "raising": lambda ex: raising(ex.stub),
    }
    expected = {}
    for student, answer in answers.items():
        for chapter, exercises in COURSE.items():
            sources = {ex.position: answer(ex) for ex in exercises}
            sources = {i: s for i, s in sources.items() if s is not None}
            if student != "blank" and not sources:
                continue
            folder = subs / student
            folder.mkdir(exist_ok=True)
            jupytext.write(_edition_with(chapter, sources), folder / f"{chapter}.ipynb", fmt="ipynb")
            for ex in exercises:
                if student == "blank" or ex.position in sources:
                    expected[(student, ex.label)] = None
    start = time.perf_counter()
    results = grade.grade(subs, timeout=120, jobs=2, progress=lambda line: None)
    seconds = time.perf_counter() - start
    graded = {(r.student, r.exercise): r for r in results}
    print(f"\ngraded {len(results)} exercises ({sum(r.status != 'blank' for r in results)} run) in {seconds:.0f} s")
    return graded, expected


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda e: e.label)
def test_the_books_answer_passes(matrix, ex):
    graded, _ = matrix
    result = graded[("shown", ex.label)]
    assert result.status == "pass", result.message


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda e: e.label)
def test_the_function_alone_passes_with_the_chapters_imports(matrix, ex):
    graded, expected = matrix
    if ("alone", ex.label) not in expected:
        pytest.skip("the solution box has no :prepend: lines: the same code as the box")
    result = graded[("alone", ex.label)]
    assert result.status == "pass", result.message


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda e: e.label)
def test_the_blank_stub_is_blank(matrix, ex):
    assert matrix[0][("blank", ex.label)].status == "blank"


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda e: e.label)
def test_a_stub_that_raises_is_an_error_naming_the_exception(matrix, ex):
    result = matrix[0][("raising", ex.label)]
    assert result.status == "error", result.message
    assert "ValueError" in result.message and "boom" in result.message, result.message


def test_the_class_has_every_exercise(matrix):
    graded, expected = matrix
    assert set(expected) <= set(graded)
    assert {s for s, _ in graded} == {"shown", "alone", "blank", "raising"}


# ---------------------------------------------------------------------------
# the box's code on its own: a fresh process and namespace, no chapter imports (only the earlier exercises'
# functions, which the notebook has by then), then the check


@pytest.fixture(scope="module")
def alone_in_a_fresh_namespace():
    env = grade.child_environment(jobs=2)
    limits = grade.Limits(timeout=120)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = {ex.label: pool.submit(grade.run_exercise, shown(ex.label), ex.check, env=env, limits=limits,
                                         imports=(), earlier=grade.earlier_functions(ex)) for ex in EXERCISES}
        return {label: f.result() for label, f in futures.items()}


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda e: e.label)
def test_the_box_alone_then_the_check_passes(alone_in_a_fresh_namespace, ex):
    status, message = alone_in_a_fresh_namespace[ex.label]
    assert status == "pass", message
