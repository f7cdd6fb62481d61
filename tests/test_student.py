"""`make student` writes an edition without solutions and without outputs."""

from __future__ import annotations

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


def test_no_solutions_package(edition):
    assert (edition / "course" / "checks" / "__init__.py").is_file()
    assert not (edition / "solutions").exists()


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
    # everything else is kept
    source_cells = read_md(md).cells
    assert len(nb.cells) == len(source_cells) - len(original) - sum(
        1 for c in source_cells if c.cell_type == "markdown" and "{solution-start}" in c.source
    )
