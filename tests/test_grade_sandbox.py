"""`make grade-sandboxed`: tools/grade.py inside bubblewrap (tools/grade_sandboxed.sh, docs/GRADING.md).

Skipped where `bwrap` is not installed or cannot create its namespaces (a container without user
namespaces, for instance): the reason is printed.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys

import jupytext
import nbformat
import pytest

from notebook_utils import NOTEBOOKS, ROOT, tags

sys.path.insert(0, str(ROOT / "tools"))
from make_student import student_notebook  # noqa: E402

SCRIPT = ROOT / "tools" / "grade_sandboxed.sh"


def _bwrap_problem() -> str | None:
    if shutil.which("bwrap") is None:
        return "bwrap is not installed (apt-get install bubblewrap)"
    probe = subprocess.run(
        ["bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "true"],
        capture_output=True, text=True,
    )
    if probe.returncode != 0:
        return f"bwrap cannot create its namespaces here: {probe.stderr.strip()}"
    return None


PROBLEM = _bwrap_problem()
needs_bwrap = pytest.mark.skipif(PROBLEM is not None, reason=PROBLEM or "")

PROBE = """import os, socket
found = []
try:
    open({course!r}, 'a').write('x')
    found.append('wrote into the course')
except OSError as err:
    found.append(f'course: {{err.strerror}}')
try:
    open({outside!r}).read()
    found.append('read a file outside the sandbox')
except OSError as err:
    found.append(f'outside: {{err.strerror}}')
try:
    socket.create_connection(('1.1.1.1', 53), timeout=3)
    found.append('network reachable')
except OSError as err:
    found.append(f'network: {{err.strerror}}')
leaks = 0
for pid in os.listdir('/proc'):
    try:
        leaks += b'GRADER_SECRET_TOKEN' in open(f'/proc/{{pid}}/environ', 'rb').read()
    except OSError:
        pass
found.append(f'secret seen in {{leaks}} processes')
raise RuntimeError('; '.join(found))
"""


def _submit(folder, chapter: str, answer: str) -> None:
    nb = nbformat.from_dict(student_notebook(NOTEBOOKS / f"{chapter}.md"))
    [c for c in nb.cells if c.cell_type == "code" and "stub" in tags(c)][0].source = answer
    folder.mkdir(parents=True)
    jupytext.write(nb, folder / f"{chapter}.ipynb", fmt="ipynb")


@needs_bwrap
def test_grading_inside_bubblewrap(tmp_path):
    subs, grades = tmp_path / "submissions", tmp_path / "grades"
    outside = tmp_path / "private.txt"
    outside.write_text("the teacher's file")
    _submit(subs / "ada", "00_introduction", (ROOT / "solutions" / "ch00_introduction.py").read_text())
    _submit(subs / "eve", "00_introduction", PROBE.format(course=str(ROOT / "README.md"), outside=str(outside)))
    before = (ROOT / "README.md").read_bytes()
    env = {**os.environ, "GRADER_SECRET_TOKEN": "s3cr3t"}
    done = subprocess.run([str(SCRIPT), str(subs), str(grades), "--jobs", "2"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    with open(grades / "grades.csv", newline="") as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    assert rows["ada"]["status"] == "pass", rows["ada"]
    eve = rows["eve"]["message"]
    assert rows["eve"]["status"] == "error", eve
    assert "course: Read-only file system" in eve, eve
    assert "outside: No such file or directory" in eve, eve
    assert "network: Network is unreachable" in eve, eve
    assert "secret seen in 0 processes" in eve, eve
    assert (ROOT / "README.md").read_bytes() == before


def test_the_documented_command_is_the_scripts():
    """docs/GRADING.md shows the bwrap command that tools/grade_sandboxed.sh runs, line for line."""
    script = SCRIPT.read_text().split("# --- the sandbox (docs/GRADING.md shows this command) ---\n", 1)[1]
    script = script.split("\necho ", 1)[0].replace(" || status=$?", "")
    doc = (ROOT / "docs" / "GRADING.md").read_text()
    for line in script.strip().splitlines():
        assert line.strip() in doc, f"docs/GRADING.md does not show this line of the sandbox command: {line.strip()}"
    assert re.search(r"^grade-sandboxed:", (ROOT / "Makefile").read_text(), flags=re.M)
