"""Offline with no corpus, every chapter still runs top to bottom (on the fallback corpus).

The README promises it: a learner without network and without Tiny Shakespeare
gets a notice and the chapters run on English text that ships with Python
(`course.data.fallback_corpus`), mapped to the shipped model's alphabet where a
chapter uses that model (`course.pretrained.corpus_text`). Outputs are not
compared (the numbers differ from the book's by design); every cell must run,
and the bands of `course.verify.within` report instead of asserting.

Chapters that never read the corpus are not re-executed here; a test makes sure
they really do not.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from notebook_utils import ROOT, sources

# what makes a chapter depend on the corpus
DATA_ENTRY_POINTS = re.compile(
    r"tinyshakespeare\(|fallback_corpus\(|load_pretrained\(|corpus_text\(|validation_text\(|"
    r"validation_loss\(|prepare_data\(|Trainer\(|quick_cpu_model\("
)


def uses_corpus(md: Path) -> bool:
    return bool(DATA_ENTRY_POINTS.search(md.read_text(encoding="utf-8")))


DATA_CHAPTERS = [md for md in sources() if uses_corpus(md)]
OTHER_CHAPTERS = [md for md in sources() if not uses_corpus(md)]


def test_the_split_is_sensible():
    names = {md.stem[:2] for md in DATA_CHAPTERS}
    assert {"00", "05", "06", "07", "08"} <= names, names


@pytest.mark.parametrize("md", OTHER_CHAPTERS, ids=lambda p: p.stem)
def test_chapter_without_data_imports_no_data(md):
    text = md.read_text(encoding="utf-8")
    assert "course.data" not in text and "course.pretrained" not in text and "course.train" not in text, (
        f"{md.name} uses the corpus, the model or the trainer: add it to the fallback test's entry points"
    )


@pytest.fixture(scope="module")
def offline_env(tmp_path_factory):
    """No corpus anywhere, no downloads, no strictness: the situation of an offline learner."""
    saved = dict(os.environ)
    cache = tmp_path_factory.mktemp("empty-cache")
    os.environ.pop("COURSE_DATA_DIR", None)
    os.environ.pop("COURSE_STRICT_DATA", None)
    os.environ["COURSE_OFFLINE"] = "1"
    os.environ["XDG_CACHE_HOME"] = str(cache)
    try:
        yield cache
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.mark.parametrize("md", DATA_CHAPTERS, ids=lambda p: p.stem)
def test_chapter_runs_on_the_fallback_corpus(md, offline_env):
    nb = jupytext.read(md)
    client = NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(md.parent)}})
    try:
        client.execute()
    except CellExecutionError as err:
        pytest.fail(f"{md.name} does not run offline on the fallback corpus:\n{str(err)[-3000:]}")
    out = ROOT / "_build" / "fallback"
    out.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out / f"{md.stem}.ipynb")  # for a person to look at
    text = "".join(
        "".join(o.get("text", "")) for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
    )
    assert "fallback" in text.lower() or "Tiny Shakespeare is not available" in text, (
        f"{md.name} ran offline but never told the reader it used the fallback corpus"
    )
    assert not list(offline_env.rglob("tinyshakespeare.txt")), "something downloaded the corpus although COURSE_OFFLINE=1"
