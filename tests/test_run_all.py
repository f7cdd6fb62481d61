"""Run All on the student edition, offline with no corpus: every chapter reaches its last cell.

Two promises are tested in one execution of each chapter, so CI pays for it once:

* **The student edition runs top to bottom with every stub blank** (`make student`).
  Each check cell fails with its diagnosis (it is tagged ``raises-exception``, so
  Run All goes on), and the cell after it hands the rest of the chapter the
  reference solution, saying so (`course.checks.reference.reference_if_blank`).
  A student who has not done an exercise still sees the whole chapter run.
* **Offline with no corpus, every chapter still runs** (the README promises it):
  a learner without network and without Tiny Shakespeare gets a notice and the
  chapters run on English text that ships with Python
  (`course.data.fallback_corpus`), mapped to the shipped model's alphabet where a
  chapter uses that model (`course.data.corpus_text`).

Outputs are not compared (the numbers differ from the book's by design); every
cell must run, and the bands of `course.verify.within` report instead of
asserting. The executed notebooks are written to ``_build/run_all/`` for a person
to look at.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from notebook_utils import ROOT, exercises, read_md, sources, tags

# what makes a chapter depend on the corpus
DATA_ENTRY_POINTS = re.compile(
    r"tinyshakespeare\(|fallback_corpus\(|load_pretrained\(|corpus_text\(|validation_text\(|"
    r"validation_loss\(|prepare_data\(|Trainer\(|quick_cpu_model\("
)
NOTICE = "is not written yet: using the reference solution"


def uses_corpus(md: Path) -> bool:
    return bool(DATA_ENTRY_POINTS.search(md.read_text(encoding="utf-8")))


DATA_CHAPTERS = [md for md in sources() if uses_corpus(md)]


def test_the_split_is_sensible():
    names = {md.stem[:2] for md in DATA_CHAPTERS}
    assert {"00", "05", "06", "07", "08"} <= names, names


@pytest.mark.parametrize("md", [md for md in sources() if md not in DATA_CHAPTERS], ids=lambda p: p.stem)
def test_chapter_without_data_imports_no_data(md):
    # the shipped assistant (chapter 12) is a checkpoint of the course: loading it reads no corpus
    text = md.read_text(encoding="utf-8").replace("from course.pretrained import load_assistant", "")
    assert "course.data" not in text and "course.pretrained" not in text and "course.train" not in text, (
        f"{md.name} uses the corpus, the model or the trainer: add it to this test's entry points"
    )


@pytest.fixture(scope="module")
def edition(tmp_path_factory):
    out = tmp_path_factory.mktemp("student-edition")
    subprocess.run([sys.executable, str(ROOT / "tools" / "make_student.py"), "--out", str(out)], check=True)
    return out


@pytest.fixture(scope="module")
def offline_student_env(tmp_path_factory, edition):
    """No corpus anywhere, no downloads, no strictness, and `course` taken from the student edition."""
    saved = dict(os.environ)
    cache = tmp_path_factory.mktemp("empty-cache")
    os.environ.pop("COURSE_DATA_DIR", None)
    os.environ.pop("COURSE_STRICT_DATA", None)
    os.environ["COURSE_OFFLINE"] = "1"
    os.environ["XDG_CACHE_HOME"] = str(cache)
    # Chapter 07 runs each experiment with three seeds; one is enough to show that every cell runs
    # (nbval runs the book's three against the stored outputs).
    os.environ["COURSE_SEEDS"] = "1"
    # The chapters' quick pass (nbval runs the full one against the stored outputs): chapter 05's CPU run takes 300
    # steps instead of 2,500, chapter 07's fine-tuning runs a fifth of their steps, chapter 09 re-runs one stored
    # point of its grid instead of three on a fifth of the tokens, chapter 10's runs are shorter, with two seeds.
    # The bands of course.verify.within report instead of checking.
    os.environ["COURSE_QUICK"] = "1"
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(edition), saved.get("PYTHONPATH", "")) if p)
    try:
        yield cache
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _text(cell) -> str:
    parts = []
    for o in cell.get("outputs", []):
        parts.append("".join(o.get("text", "")))
        parts.append("".join(o.get("data", {}).get("text/plain", "")))
        if o.get("output_type") == "error":
            parts.append(f"{o.get('ename')}: {o.get('evalue')}")
    return "".join(parts)


@pytest.mark.parametrize("md", sources(), ids=lambda p: p.stem)
def test_student_edition_runs_to_the_end_offline(md, edition, offline_student_env):
    path = edition / "notebooks" / f"{md.stem}.ipynb"
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    except CellExecutionError as err:
        pytest.fail(f"Run All stops in the student edition of {md.name} (blank stubs, offline):\n{str(err)[-3000:]}")
    out = ROOT / "_build" / "run_all"
    out.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out / f"{md.stem}.ipynb")  # for a person to look at

    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code), f"{md.name}: not every code cell ran"
    errors = [c for c in code if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert all("check" in tags(c) for c in errors), (
        f"{md.name}: a cell that is not a check raised: {[c.source[:80] for c in errors if 'check' not in tags(c)]}"
    )
    checks = [c for c in code if "check" in tags(c)]
    assert len(checks) == len(exercises(read_md(md)))
    for c in checks:  # every stub is blank: every check says so, in words
        assert "NotImplementedYet" in _text(c) and "still the blank stub" in _text(c), (md.name, c.source, _text(c))
    fallbacks = [c for c in code if "reference-fallback" in tags(c)]
    assert len(fallbacks) == len(checks)
    for c in fallbacks:
        assert NOTICE in _text(c), (md.name, c.source, _text(c))

    if md in DATA_CHAPTERS:
        text = "".join(_text(c) for c in code)
        assert "fallback" in text.lower() or "Tiny Shakespeare is not available" in text, (
            f"{md.name} ran offline but never told the reader it used the fallback corpus"
        )
        assert not list(offline_student_env.rglob("tinyshakespeare.txt")), (
            "something downloaded the corpus although COURSE_OFFLINE=1"
        )
