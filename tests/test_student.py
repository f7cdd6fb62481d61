"""`make student` writes an edition without solutions and without outputs."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import nbformat
import pytest

from notebook_utils import ROOT, exercises, read_md, sources, tags


@pytest.fixture(scope="module")
def edition(tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    subprocess.run([sys.executable, str(ROOT / "tools" / "make_student.py"), "--out", str(out)], check=True)
    return out


@pytest.mark.parametrize("md", sources(), ids=lambda p: p.stem)
def test_the_prose_keeps_its_numbers(edition, md):
    """The inline values of the reference run stay with the prose (JupyterLab shows them before anything runs)."""
    sys.path.insert(0, str(ROOT / "tools"))
    import inline_values

    student = edition / "notebooks" / (md.stem + ".ipynb")
    assert inline_values.chapter_values(student) == inline_values.chapter_values(md.with_suffix(".ipynb"))


def test_no_solutions_package(edition):
    assert (edition / "course" / "checks" / "__init__.py").is_file()
    assert not (edition / "solutions").exists()


def test_the_files_the_chapters_read_are_there(edition):
    for name in ("tokenizers", "attention", "train", "sampling", "quantize"):  # chapters 01, 04, 05, 06, 08 quote them
        assert (edition / "benchmarks" / "results" / f"{name}.json").is_file(), name


@pytest.mark.parametrize("md", sources(), ids=lambda p: p.stem)
def test_chapter_has_stubs_but_no_solutions_or_outputs(edition, md):
    nb = nbformat.read(edition / "notebooks" / (md.stem + ".ipynb"), as_version=4)
    text = "\n".join(c.source for c in nb.cells)
    assert "{solution-start}" not in text and "{solution-end}" not in text
    assert "from solutions" not in text and "import solutions" not in text
    for cell in nb.cells:
        assert "solution" not in tags(cell)
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    original = exercises(read_md(md))
    stubs = [c.source for c in nb.cells if "stub" in tags(c)]
    checks = [c.source for c in nb.cells if "check" in tags(c)]
    assert stubs == [e["stub"] for e in original]
    assert checks == [e["check"] for e in original]
    # each check shows its diagnosis without stopping Run All, and is followed by the fallback to the reference
    for i, cell in enumerate(nb.cells):
        if "check" in tags(cell):
            assert "raises-exception" in tags(cell)
            after = nb.cells[i + 1]
            assert "reference-fallback" in tags(after) and "reference_if_blank(" in after.source
    names = [re.search(r"import (\w+)", e["solution"]).group(1) for e in original]
    fallbacks = [c.source for c in nb.cells if "reference-fallback" in tags(c)]
    assert [re.search(r"^(\w+) = reference_if_blank\(\1, ", f, re.M).group(1) for f in fallbacks] == names
    # everything else is kept
    source_cells = read_md(md).cells
    assert len(nb.cells) - len(fallbacks) == len(source_cells) - len(original) - sum(
        1 for c in source_cells if c.cell_type == "markdown" and "{solution-start}" in c.source
    )


def test_blank_stub_detection():
    from course.checks.reference import is_blank_stub

    def blank(x):
        # YOUR CODE HERE
        raise NotImplementedError

    def blank_with_docstring(x):
        """Say what to do."""
        raise NotImplementedError("not yet")

    def started(x):
        y = len(x)
        raise NotImplementedError

    def done(x):
        return x * 2

    def nested(x):
        def inner():
            return x
        raise NotImplementedError

    assert is_blank_stub(blank) and is_blank_stub(blank_with_docstring)
    assert not any(is_blank_stub(f) for f in (started, done, nested, len, "text", None))


def test_reference_if_blank_keeps_the_students_function_and_replaces_a_blank_one(capsys):
    from course.checks.reference import reference_if_blank
    from solutions.ch01_tokenization import count_pairs as reference

    def count_pairs(ids):
        raise NotImplementedError

    def mine(ids):
        return {}

    assert reference_if_blank(mine, "ch01_tokenization") is mine
    assert capsys.readouterr().out == ""
    assert reference_if_blank(count_pairs, "ch01_tokenization") is reference
    assert "your `count_pairs` is not written yet: using the reference solution" in capsys.readouterr().out
    with pytest.raises(ValueError, match="like 'ch01_tokenization'"):
        reference_if_blank(count_pairs, "../etc")
    with pytest.raises(LookupError, match="no reference solution called 'nope'"):
        def nope():
            raise NotImplementedError
        reference_if_blank(nope, "ch01_tokenization")


def test_the_edition_finds_every_reference_without_the_solutions_package(edition):
    """In the student edition the references come from course/checks/_reference.py, compressed, not from solutions/."""
    assert "def count_pairs" not in (edition / "course" / "checks" / "_reference.py").read_text()
    wanted = [
        (m.group(1), m.group(2))
        for md in sources()
        for e in exercises(read_md(md))
        for m in [re.search(r"from solutions\.(\w+) import (\w+)", e["solution"])]
    ]
    script = (
        "import importlib.abc, sys\n"
        "class NoSolutions(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'solutions' or name.startswith('solutions.'):\n"
        "            raise ImportError('the student edition has no solutions package')\n"
        "sys.meta_path.insert(0, NoSolutions())\n"
        "import course\n"
        f"assert course.__file__.startswith({str(edition)!r}), course.__file__\n"
        "from course.checks.reference import reference_solution\n"
        f"for module, name in {wanted!r}:\n"
        "    assert callable(reference_solution(name, module)), (module, name)\n"
        f"print(len({wanted!r}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(edition)}
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=edition, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(len(wanted)) and len(wanted) >= 26


def test_out_folder_that_is_not_an_edition_is_left_alone(tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "make_student.py"), "--out", str(precious)],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert "not a student edition" in done.stderr and "nothing was changed" in done.stderr
    assert [p.name for p in precious.iterdir()] == ["thesis.tex"]
    assert (precious / "thesis.tex").read_text() == "years of work"


def test_the_edition_is_marked_and_can_be_rewritten(edition):
    assert (edition / ".course-student-edition").is_file()
    (edition / "notebooks" / "stale.ipynb").write_text("{}")  # left over from an earlier edition
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "make_student.py"), "--out", str(edition)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert not (edition / "notebooks" / "stale.ipynb").exists()
    assert (edition / ".course-student-edition").is_file() and (edition / "notebooks" / "00_introduction.ipynb").is_file()
