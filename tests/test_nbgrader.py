"""`make nbgrader` (tools/nbgrader_export.py): the chapters as an nbgrader course, graded by nbgrader itself.

The first tests read the exported notebooks of every chapter (no nbgrader needed):
the nbgrader metadata of the answer and test cells, no teacher-only material,
the reference solutions between the markers, and that every answer passes its
check while the stub nbgrader leaves behind is the course's stub, to the character.

The round trip then runs nbgrader's own commands on chapters 00 and 01:
``generate_assignment``, and ``autograde`` on two submissions made from the
release: "right" (the reference solutions) and "wrong" (chapter 00 left blank, a
planted mistake in chapter 01's `merge`); the scores are read back from
nbgrader's gradebook, and `make grade` (tools/grade.py) on nbgrader's
``submitted/`` folder must agree with them. nbgrader runs from ``_build/nbgrader-venv``
(`nbgrader_export.nbgrader_venv`, as `make nbgrader` makes it): a virtual
environment layered on the one running the tests (a ``.pth`` file adds its
site-packages), holding only nbgrader and what it adds (notebook, alembic, mako,
rapidfuzz), installed by pip on first use (about 5 s); the project's own
environment is never changed (nbgrader brings a JupyterLab extension that
`make lab` does not want). The round trip is skipped only when pip cannot install
nbgrader, with pip's error as the reason. It takes 1 to 2 minutes on 2 cores
(four chapter executions by nbgrader).
"""

from __future__ import annotations

import ast
import csv
import functools
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from notebook_utils import ROOT, exercises, read_md, sources, tags

import nbgrader_export as nx  # tools/nbgrader_export.py (tests/conftest.py puts tools/ on the path)

VENV = ROOT / "_build" / "nbgrader-venv"  # the one `make nbgrader` makes
BIN = nx.venv_bin(VENV)
ROUND_TRIP = ["00_introduction", "01_tokenization"]


def nbgrader_cells(nb) -> dict[str, nbformat.NotebookNode]:
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if "nbgrader" in c.metadata}


def strip_solution(source: str) -> str:
    """What nbgrader's ClearSolutions makes of an answer cell, with the stub of nbgrader_config.py."""
    out, inside = [], False
    for line in source.split("\n"):
        if nx.BEGIN in line:
            indent = line[: len(line) - len(line.lstrip())]
            out += [indent + "# YOUR CODE HERE", indent + "raise NotImplementedError"]
            inside = True
        elif nx.END in line:
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out)


@functools.cache
def exported(stem: str) -> nx.Exported:
    """A chapter's nbgrader source notebook (each chapter once: a broken chapter fails its own tests only)."""
    return nx.export_chapter(ROOT / "notebooks" / f"{stem}.md")


# ---------------------------------------------------------------------------
# The exported notebooks, every chapter


@pytest.mark.parametrize("md", sources(), ids=lambda p: p.stem)
def test_exercises_become_answer_and_test_cells(md):
    ex = exported(md.stem)
    nb = ex.notebook
    original = exercises(read_md(md))
    cells = nbgrader_cells(nb)
    assert len(ex.exercises) == len(original) and len(set(ex.exercises)) == len(ex.exercises)
    for label, exercise in zip(ex.exercises, original):
        answer, test = cells[f"{label}-answer"], cells[label]
        assert dict(answer.metadata["nbgrader"]) == {
            "grade": False, "solution": True, "locked": False, "task": False,
            "grade_id": f"{label}-answer", "schema_version": 3,
        }
        assert dict(test.metadata["nbgrader"]) == {
            "grade": True, "solution": False, "locked": True, "task": False,
            "grade_id": label, "points": 1, "schema_version": 3,
        }
        assert test.source == exercise["check"] and "check" in tags(test)
        assert strip_solution(answer.source) == exercise["stub"]  # nbgrader hands out the course's stub
        assert answer.source.count(nx.BEGIN) == answer.source.count(nx.END) == 1
        box = cells[f"{label}-instructions"]
        assert box.cell_type == "markdown" and f":label: {label}" in box.source and box.metadata["nbgrader"]["locked"]
        # the answer cell comes before its test cell
        assert nb.cells.index(answer) < nb.cells.index(test)
    # no teacher-only material, a plain notebook nbformat accepts
    text = "\n".join(c.source for c in nb.cells)
    assert "{solution-start}" not in text and "{solution-end}" not in text
    assert "from solutions" not in text and "import solutions" not in text
    assert not any({"solution", "course-setup"} & set(tags(c)) for c in nb.cells)
    assert "jupytext" not in nb.metadata and nb.metadata["kernelspec"]["language"] == "python"
    nbformat.validate(nb)


@pytest.mark.parametrize("md", sources(), ids=lambda p: p.stem)
def test_the_answers_are_the_reference_solutions_and_pass_their_checks(md):
    from course.checks import ExerciseFailed

    ex = exported(md.stem)
    cells = nbgrader_cells(ex.notebook)
    for label in ex.exercises:
        answer, check = cells[f"{label}-answer"].source, cells[label].source
        ast.parse(answer)
        namespace: dict = {"__name__": "__main__"}
        exec(compile(answer, f"<{label}-answer>", "exec"), namespace)  # alone: it imports what it needs
        exec(compile(check, f"<{label}>", "exec"), namespace)
        blank: dict = {"__name__": "__main__"}
        exec(compile(strip_solution(answer), f"<{label} blank>", "exec"), blank)
        with pytest.raises(ExerciseFailed):
            exec(compile(check, f"<{label}>", "exec"), blank)


SOLUTION_MODULE = """\"\"\"Solutions of a made-up chapter.\"\"\"

import math
from functools import lru_cache

import numpy as np

SCALE = 2.0


def _double(x):
    return SCALE * np.asarray(x)


def scaled_norm(x, *, p=2):
    \"\"\"The p-norm of 2 x.\"\"\"
    # a comment above the code
    return float(np.sum(np.abs(_double(x)) ** p) ** (1 / p))


@lru_cache(maxsize=None)
def log_factorial(n: int) -> float:
    \"\"\"ln n!\"\"\"
    return math.lgamma(n + 1)
"""


def test_what_the_reference_needs_goes_inside_the_solution(tmp_path):
    """Imports the stub lacks, helpers (with what they need) and constants go between the markers,
    a decorated reference is defined there and called; the stub's own lines stay as they are."""
    module = tmp_path / "chXX_madeup.py"
    module.write_text(SOLUTION_MODULE)
    stub = "import numpy as np\n\n\ndef scaled_norm(x, *, p=2):\n    # YOUR CODE HERE\n    raise NotImplementedError"
    answer = nx.answer_source(stub, module, "scaled_norm")
    head, solution = answer.split(nx.BEGIN)
    assert head == "import numpy as np\n\n\ndef scaled_norm(x, *, p=2):\n    "
    assert solution.index('"""The p-norm') < solution.index("SCALE = 2.0") < solution.index("def _double") < solution.index("# a comment")
    assert "import numpy" not in solution and "import math" not in solution  # the stub has numpy; nothing needs math
    assert strip_solution(answer) == stub
    namespace: dict = {}
    exec(answer, namespace)
    assert namespace["scaled_norm"]([3, 4]) == pytest.approx(10.0) and namespace["scaled_norm"].__doc__ == "The p-norm of 2 x."

    stub = "def log_factorial(n):\n    # YOUR CODE HERE\n    raise NotImplementedError"
    answer = nx.answer_source(stub, module, "log_factorial")
    solution = answer.split(nx.BEGIN)[1]
    assert "    import math\n    from functools import lru_cache\n    @lru_cache(maxsize=None)\n    def log_factorial(n: int) -> float:" in solution
    assert solution.rstrip().endswith("return log_factorial(n)\n    " + nx.END)
    namespace = {}
    exec(answer, namespace)
    assert namespace["log_factorial"](5) == pytest.approx(math.log(120))

    with pytest.raises(nx.ExportError, match=r"the stub says `def log_factorial\(n, k\)`.* has `def log_factorial\(n\)`"):
        nx.answer_source("def log_factorial(n, k):\n    raise NotImplementedError", module, "log_factorial")
    with pytest.raises(nx.ExportError, match="not a blank stub"):
        nx.answer_source("def log_factorial(n):\n    return 0.0", module, "log_factorial")
    with pytest.raises(nx.ExportError, match="has no function `missing`"):
        nx.answer_source("def missing(n):\n    raise NotImplementedError", module, "missing")


def test_bpe_encode_does_not_use_the_students_merge():
    """The reference bpe_encode calls its module's `merge`: the answer defines its own, so a wrong `merge`
    cell costs the merge exercise only."""
    encode = nbgrader_cells(exported("01_tokenization").notebook)["ex-01-encode-answer"].source
    assert "    def merge(ids, pair, new_id):" in encode.split(nx.BEGIN)[1]


def test_files_read_from_the_repository_are_copied_into_the_assignment(tmp_path):
    md = ROOT / "notebooks" / "04_transformer_pytorch.md"
    ex = nx.export_chapter(md)
    assert ex.files == {"benchmarks/results/attention.json": ROOT / "benchmarks" / "results" / "attention.json"}
    text = "\n".join(c.source for c in ex.notebook.cells if c.cell_type == "code")
    assert 'Path("benchmarks/results/attention.json")' in text and '"../benchmarks' not in text
    nx.write_course(tmp_path, [md], points=2.5)
    folder = tmp_path / "source" / md.stem
    assert (folder / "benchmarks" / "results" / "attention.json").read_bytes() == ex.files["benchmarks/results/attention.json"].read_bytes()
    nb = nbformat.read(folder / f"{md.stem}.ipynb", as_version=4)
    assert {c.metadata["nbgrader"]["points"] for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")} == {2.5}
    assert (tmp_path / "nbgrader_config.py").read_text().startswith(nx.CONFIG_MARKER)


def test_the_command_line(tmp_path, capsys):
    assert nx.main(["--out", str(tmp_path / "course"), "--chapters", "00,03"]) == 0
    assert sorted(p.name for p in (tmp_path / "course" / "source").iterdir()) == ["00_introduction", "03_attention_numpy"]
    config = tmp_path / "course" / "nbgrader_config.py"
    config.write_text("c = get_config()\n")  # a teacher's own config is kept
    assert nx.main(["--out", str(tmp_path / "course"), "--chapters", "00"]) == 0
    assert config.read_text() == "c = get_config()\n" and "kept" in capsys.readouterr().out
    for bad, message in ((["--chapters", "42"], "no chapter 42"), (["--out", str(ROOT / "notebooks" / "x")], "under _build")):
        with pytest.raises(SystemExit):
            nx.main(bad)
        assert message in capsys.readouterr().err


# ---------------------------------------------------------------------------
# The round trip through nbgrader itself


def run_nbgrader(course: Path, env: dict[str, str], *args: str, timeout: float) -> None:
    done = subprocess.run([str(BIN / "nbgrader"), *args], cwd=course, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"


READ_GRADEBOOK = """
import json, sys
from nbgrader.api import Gradebook
scores = {}
with Gradebook("sqlite:///gradebook.db") as gb:
    for assignment in sys.argv[1:]:
        for student in ("right", "wrong"):
            nb = gb.find_submission_notebook(assignment, assignment, student)
            scores.setdefault(student, {}).update({g.name: [g.score, g.max_score] for g in nb.grades})
            scores[student][assignment] = [gb.find_submission(assignment, student).score, nb.max_score]
print(json.dumps(scores))
"""


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The course folder after generate_assignment and autograde of two students; their scores from the gradebook."""
    start = time.perf_counter()
    try:
        nx.nbgrader_venv(VENV)
    except nx.NbgraderInstallError as err:
        pytest.skip(str(err))
    print(f"nbgrader environment ready in {time.perf_counter() - start:.1f} s")
    course = tmp_path_factory.mktemp("nbgrader-course")
    nx.write_course(course, [ROOT / "notebooks" / f"{a}.md" for a in ROUND_TRIP])
    jupyter = tmp_path_factory.mktemp("jupyter")  # no personal Jupyter or nbgrader settings
    env = dict(os.environ)
    env.update(PATH=os.pathsep.join([str(BIN), env.get("PATH", "")]),  # nbgrader calls `alembic` by name
               JUPYTER_CONFIG_DIR=str(jupyter / "config"), JUPYTER_DATA_DIR=str(jupyter / "data"),
               JUPYTER_RUNTIME_DIR=str(jupyter / "runtime"), PYTHONDONTWRITEBYTECODE="1")
    env.setdefault("COURSE_OFFLINE", "1")
    start = time.perf_counter()
    for assignment in ROUND_TRIP:
        run_nbgrader(course, env, "generate_assignment", assignment, "--force", timeout=300)

    # the two students' notebooks, made from the release as a student would hand it in
    for assignment in ROUND_TRIP:
        source = nbgrader_cells(nbformat.read(course / "source" / assignment / f"{assignment}.ipynb", as_version=4))
        for student in ("right", "wrong"):
            nb = nbformat.read(course / "release" / assignment / f"{assignment}.ipynb", as_version=4)
            for grade_id, cell in nbgrader_cells(nb).items():
                if not cell.metadata["nbgrader"]["solution"]:
                    continue
                if student == "right" or assignment != "00_introduction":  # "wrong" leaves chapter 00 blank
                    cell.source = source[grade_id].source
                if student == "wrong" and grade_id == "ex-01-merge-answer":  # moves on by 1 after a merge
                    assert "i += 2" in cell.source
                    cell.source = cell.source.replace("i += 2", "i += 1")
                cell.outputs, cell.execution_count = [], None
            folder = course / "submitted" / student / assignment
            folder.mkdir(parents=True)
            nbformat.write(nb, folder / f"{assignment}.ipynb")
    for assignment in ROUND_TRIP:
        run_nbgrader(course, env, "autograde", assignment, "--force", timeout=1200)
    print(f"nbgrader generate_assignment + autograde of 2 students x {len(ROUND_TRIP)} chapters: "
          f"{time.perf_counter() - start:.0f} s")
    read = subprocess.run([str(BIN / "python"), "-c", READ_GRADEBOOK, *ROUND_TRIP], cwd=course, env=env,
                          capture_output=True, text=True, timeout=120)
    assert read.returncode == 0, read.stderr
    return course, json.loads(read.stdout)


def test_the_release_holds_the_course_stubs(graded):
    course, _ = graded
    for assignment in ROUND_TRIP:
        nb = nbformat.read(course / "release" / assignment / f"{assignment}.ipynb", as_version=4)
        original = exercises(read_md(ROOT / "notebooks" / f"{assignment}.md"))
        assert [c.source for c in nb.cells if "stub" in tags(c)] == [e["stub"] for e in original]
        assert [c.source for c in nb.cells if "check" in tags(c)] == [e["check"] for e in original]
        assert "SOLUTION" not in "\n".join(c.source for c in nb.cells)


def test_autograde_scores(graded):
    _, scores = graded
    assert scores["right"] == {
        "00_introduction": [1.0, 1.0], "ex-00-softmax": [1.0, 1.0],
        "01_tokenization": [3.0, 3.0], "ex-01-count-pairs": [1.0, 1.0], "ex-01-merge": [1.0, 1.0], "ex-01-encode": [1.0, 1.0],
    }
    assert scores["wrong"] == {
        "00_introduction": [0.0, 1.0], "ex-00-softmax": [0.0, 1.0],  # the blank stub
        "01_tokenization": [2.0, 3.0], "ex-01-count-pairs": [1.0, 1.0], "ex-01-merge": [0.0, 1.0], "ex-01-encode": [1.0, 1.0],
    }


def test_the_autograded_notebook_shows_the_checks_diagnosis(graded):
    course, _ = graded
    nb = nbformat.read(course / "autograded" / "wrong" / "01_tokenization" / "01_tokenization.ipynb", as_version=4)
    errors = [o for o in nbgrader_cells(nb)["ex-01-merge"].outputs if o.output_type == "error"]
    assert [e.ename for e in errors] == ["ExerciseFailed"]
    assert re.search(r"merge\(.*\) returned", errors[0].evalue), errors[0].evalue


def test_make_grade_agrees_on_the_same_submissions(graded, tmp_path):
    """nbgrader's submitted/ folder (one folder per student) is what tools/grade.py reads: same verdicts,
    and the stub nbgrader hands out is recognised as blank."""
    course, scores = graded
    out = tmp_path / "grades"
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "grade.py"), str(course / "submitted"), "--out", str(out),
                           "--chapters", ",".join(a[:2] for a in ROUND_TRIP)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    with open(out / "grades.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert {(r["student"], r["exercise"]): r["status"] == "pass" for r in rows} == {
        (student, grade_id): points == [1.0, 1.0]
        for student, grades in scores.items() for grade_id, points in grades.items() if grade_id.startswith("ex-")
    }
    assert {r["status"] for r in rows if (r["student"], r["exercise"]) == ("wrong", "ex-00-softmax")} == {"blank"}
