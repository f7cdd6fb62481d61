"""`make grade`: tools/grade.py on a class of synthetic submissions made from the student edition.

Only the cheap exercises of chapters 00 and 01 are graded here (each runs in its
own process); the endless loop gets a 2-second limit.
"""

from __future__ import annotations

import csv
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import jupytext
import nbformat
import pytest

from notebook_utils import NOTEBOOKS, ROOT, tags

sys.path.insert(0, str(ROOT / "tools"))
import grade  # noqa: E402
from make_student import student_notebook  # noqa: E402

CH00, CH01 = "00_introduction", "01_tokenization"
SOFTMAX, COUNT, MERGE, ENCODE = "ex-00-softmax", "ex-01-count-pairs", "ex-01-merge", "ex-01-encode"

WRONG_SOFTMAX = """import numpy as np

def softmax(x):
    e = np.exp(x)  # no max subtracted: overflows for large logits
    return e / e.sum(axis=-1, keepdims=True)
"""
WRONG_COUNT = """def count_pairs(ids):
    return {pair: 1 for pair in zip(ids, ids[1:])}  # every pair counted once
"""
HALF_DONE_MERGE = """def merge(ids, pair, new_id):
    out = []  # started, then gave up
    raise NotImplementedError
"""
NO_IMPORT_SOFTMAX = """def softmax(x):
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
"""
FORGE = """import json, os, sys
open(sys.argv[3], "w").write(json.dumps({"status": "pass", "message": "x"}))
os._exit(0)
"""
TAMPER = """import course.checks.ch00 as checks
checks.expect_close = lambda *args, **kwargs: None
checks.expect = lambda *args, **kwargs: None

def softmax(x):
    return x
"""


def solution_source(chapter: str) -> str:
    """A right answer, self-contained: the whole reference solution module of the chapter."""
    return (ROOT / "solutions" / f"ch{chapter}.py").read_text()


def edition(chapter: str) -> nbformat.NotebookNode:
    return nbformat.from_dict(student_notebook(NOTEBOOKS / f"{chapter}.md"))


def stub_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code" and "stub" in tags(c)]


def check_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code" and "check" in tags(c)]


def write(folder, chapter: str, nb) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    jupytext.write(nb, folder / f"{chapter}.ipynb", fmt="ipynb")  # as tools/make_student.py writes the edition


def with_stubs(chapter: str, sources: dict[int, str]):
    nb = edition(chapter)
    for i, cell in enumerate(stub_cells(nb)):
        if i in sources:
            cell.source = sources[i]
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    subs = tmp_path_factory.mktemp("submissions")
    write(subs / "blank", CH00, edition(CH00))
    write(subs / "blank", CH01, edition(CH01))

    write(subs / "right", CH00, with_stubs(CH00, {0: solution_source(CH00)}))
    write(subs / "right", CH01, with_stubs(CH01, {i: solution_source(CH01) for i in range(3)}))

    write(subs / "wrong", CH00, with_stubs(CH00, {0: WRONG_SOFTMAX}))
    write(subs / "wrong", CH01, with_stubs(CH01, {0: WRONG_COUNT, 1: HALF_DONE_MERGE}))

    # crashes at definition time; only chapter 00 handed in (chapter 01: missing)
    write(subs / "crashing", CH00, with_stubs(CH00, {0: "import numpy as np\n\nscale = 1 / 0\n\ndef softmax(x):\n    return x\n"}))

    # a wrong answer whose check cell was edited to claim success: the repository's check runs
    nb = with_stubs(CH00, {0: WRONG_SOFTMAX})
    check_cells(nb)[0].source = 'print("softmax: all checks passed.")'
    write(subs / "edited_check", CH00, nb)

    # chapter 01 with the exercises in another order and the merge stub deleted; the right count_pairs and
    # bpe_encode moved up (their cells define no `merge`: bpe_encode calls a helper of its own)
    own_helper = solution_source(CH01).replace("def merge(", "def _merge(").replace("ids = merge(", "ids = _merge(")
    assert "_merge(ids, best" in own_helper
    nb = with_stubs(CH01, {0: own_helper, 2: own_helper})
    stubs = stub_cells(nb)
    nb.cells = [stubs[2], stubs[0]] + [c for c in nb.cells if c is not stubs[0] and c is not stubs[1] and c is not stubs[2]]
    write(subs / "reordered", CH01, nb)

    # tags lost (an editor that drops cell metadata): the answer is found by the function it defines
    nb = with_stubs(CH00, {0: solution_source(CH00)})
    for cell in nb.cells:
        cell.metadata.pop("tags", None)
    write(subs / "untagged", CH00, nb)

    # the reference solutions package is not importable from a student's cell
    write(subs / "imports_solution", CH00, with_stubs(CH00, {0: "from solutions.ch00_introduction import softmax\n"}))

    # the chapter's imports: a softmax without `import numpy as np` uses the notebook's np, as in the notebook
    write(subs / "chapter_np", CH00, with_stubs(CH00, {0: NO_IMPORT_SOFTMAX}))
    # the student's function raises when the check calls it: an error naming the exception and the line
    write(subs / "name_error", CH00, with_stubs(CH00, {0: "def softmax(x):\n    return numpy.exp(x)\n"}))
    write(subs / "raising", CH01, with_stubs(CH01, {0: "def count_pairs(ids):\n    raise ValueError('boom')\n"}))
    # a forged verdict, the way the grader used to receive it (a file named on the command line)
    write(subs / "forger", CH00, with_stubs(CH00, {0: FORGE}))
    # the check's helpers replaced so that a wrong answer passes
    write(subs / "tamperer", CH00, with_stubs(CH00, {0: TAMPER}))

    # not a notebook at all
    (subs / "corrupt").mkdir()
    (subs / "corrupt" / f"{CH00}.ipynb").write_text("{ this is not json")

    # a nested folder (the whole edition zipped) is searched too; shell escapes and magics are skipped
    magic = "!pip install numpy\n%load_ext autoreload\n" + solution_source(CH00)
    write(subs / "nested" / "course-edition" / "notebooks", CH00, with_stubs(CH00, {0: magic}))

    results = grade.grade(subs, timeout=60, jobs=2, progress=lambda line: None)
    loop = tmp_path_factory.mktemp("loop")
    write(loop / "looping", CH00, with_stubs(CH00, {0: "while True:\n    pass\n"}))
    results += grade.grade(loop, timeout=2, progress=lambda line: None)
    out = tmp_path_factory.mktemp("out")
    grade.write_reports(results, out)
    return {(r.student, r.exercise): r for r in results}, out


def status(graded, student, exercise):
    return graded[0][(student, exercise)].status


def message(graded, student, exercise):
    return graded[0][(student, exercise)].message


def test_blank_stubs_are_blank(graded):
    for ex in (SOFTMAX, COUNT, MERGE, ENCODE):
        assert status(graded, "blank", ex) == "blank"


def test_right_answers_pass(graded):
    for ex in (SOFTMAX, COUNT, MERGE, ENCODE):
        assert status(graded, "right", ex) == "pass", message(graded, "right", ex)
    assert "passed" in message(graded, "right", SOFTMAX)


def test_wrong_answers_fail_with_the_checks_diagnosis(graded):
    assert status(graded, "wrong", SOFTMAX) == "fail"
    assert "overflow" in message(graded, "wrong", SOFTMAX)
    assert status(graded, "wrong", COUNT) == "fail"
    # a changed stub that still raises NotImplementedError is a fail that says so, not a blank
    assert status(graded, "wrong", MERGE) == "fail"
    assert "blank stub" in message(graded, "wrong", MERGE)
    assert status(graded, "wrong", ENCODE) == "blank"
    assert all("\n" not in r.message for r in graded[0].values())


def test_crash_before_the_check_is_an_error(graded):
    assert status(graded, "crashing", SOFTMAX) == "error"
    assert "ZeroDivisionError" in message(graded, "crashing", SOFTMAX)
    assert "line 3" in message(graded, "crashing", SOFTMAX)


def test_missing_notebook(graded):
    for ex in (COUNT, MERGE, ENCODE):
        assert status(graded, "crashing", ex) == "missing"
        assert f"no notebook {CH01}.ipynb" in message(graded, "crashing", ex)


def test_endless_loop_times_out(graded):
    assert status(graded, "looping", SOFTMAX) == "error"
    assert "time limit" in message(graded, "looping", SOFTMAX)


def test_edited_check_cell_is_ignored(graded):
    assert status(graded, "edited_check", SOFTMAX) == "fail"
    assert "overflow" in message(graded, "edited_check", SOFTMAX)


def test_reordered_and_deleted_cells(graded):
    assert status(graded, "reordered", COUNT) == "pass", message(graded, "reordered", COUNT)
    assert status(graded, "reordered", ENCODE) == "pass", message(graded, "reordered", ENCODE)
    assert status(graded, "reordered", MERGE) == "missing"
    assert "`merge`" in message(graded, "reordered", MERGE)


def test_cells_without_tags_are_matched_by_name(graded):
    assert status(graded, "untagged", SOFTMAX) == "pass", message(graded, "untagged", SOFTMAX)
    assert "no `stub` tag" in message(graded, "untagged", SOFTMAX)


def test_solutions_package_is_not_importable(graded):
    assert status(graded, "imports_solution", SOFTMAX) == "error"
    assert "ImportError" in message(graded, "imports_solution", SOFTMAX) or "ModuleNotFoundError" in message(
        graded, "imports_solution", SOFTMAX
    )


def test_unreadable_notebook_is_missing(graded):
    assert status(graded, "corrupt", SOFTMAX) == "missing"
    assert "could not be read" in message(graded, "corrupt", SOFTMAX)


def test_notebook_in_a_subfolder_is_found_and_magics_are_skipped(graded):
    assert status(graded, "nested", SOFTMAX) == "pass", message(graded, "nested", SOFTMAX)


def test_the_chapters_imports_run_before_the_cell(graded):
    assert status(graded, "chapter_np", SOFTMAX) == "pass", message(graded, "chapter_np", SOFTMAX)


def test_an_exception_of_the_students_function_during_the_check_is_an_error(graded):
    assert status(graded, "name_error", SOFTMAX) == "error"
    text = message(graded, "name_error", SOFTMAX)
    assert "`softmax` raised NameError (line 2 of the cell) when the check called it" in text, text
    assert "numpy" in text
    assert status(graded, "raising", COUNT) == "error"
    assert "ValueError" in message(graded, "raising", COUNT) and "boom" in message(graded, "raising", COUNT)


def test_a_forged_verdict_is_an_error_flagged_for_review(graded):
    assert status(graded, "forger", SOFTMAX) == "error"
    assert "[review: the cell uses os._exit" in message(graded, "forger", SOFTMAX)


def test_replacing_the_checks_helpers_is_caught(graded):
    assert status(graded, "tamperer", SOFTMAX) == "error"
    text = message(graded, "tamperer", SOFTMAX)
    assert "replaced course.checks.ch00.expect" in text, text
    assert "[review: the cell uses course.checks]" in text, text


def test_reports(graded):
    results, out = graded
    with open(out / "grades.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["student", "chapter", "exercise", "status", "message"]
    assert len(rows) == len(results)
    assert {r["status"] for r in rows} == set(grade.STATUSES)
    with open(out / "summary.csv", newline="") as f:
        summary = {r["student"]: r for r in csv.DictReader(f)}
    assert summary["right"][CH00] == "1/1" and summary["right"][CH01] == "3/3" and summary["right"]["total"] == "4/4"
    assert summary["blank"]["total"] == "0/4"
    assert summary["reordered"][CH01] == "2/3"
    md = (out / "summary.md").read_text()
    assert "| right" in md and "4/4" in md


# ---------------------------------------------------------------------------
# matching a student's cells to the exercises, without running anything


def exercises01():
    return grade.chapter_exercises(NOTEBOOKS / f"{CH01}.md")


def test_labels_and_names_come_from_the_chapter():
    found = exercises01()
    assert [e.label for e in found] == [COUNT, MERGE, ENCODE]
    assert [e.names for e in found] == [["count_pairs"], ["merge"], ["bpe_encode"]]


def test_match_by_name_survives_reordering_and_deletion():
    found = exercises01()
    nb = with_stubs(CH01, {0: WRONG_COUNT})
    stubs = stub_cells(nb)
    nb.cells = [stubs[2], stubs[0]]  # everything else deleted, merge's stub too
    matched = grade.match_stubs(nb.cells, found)
    assert sorted(matched) == [0, 2]
    assert matched[0][0] == WRONG_COUNT
    assert "def bpe_encode" in matched[2][0]


def test_a_cell_defining_another_exercises_function_is_not_taken_by_position():
    found = exercises01()
    nb = edition(CH01)
    stubs = stub_cells(nb)
    stubs[0].source = "x = 1\n"  # count_pairs emptied: taken by position (the check will say it is not defined)
    nb.cells = [stubs[0], stubs[2]]  # merge deleted: position 1 now holds bpe_encode's cell
    matched = grade.match_stubs(nb.cells, found)
    assert matched[0][0] == "x = 1\n"
    assert 1 not in matched
    assert "def bpe_encode" in matched[2][0]


def test_untagged_build_up_cells_are_not_answers():
    # chapter 03 builds a softmax in the open before its exercise; without tags, that cell is not the answer
    found = grade.chapter_exercises(NOTEBOOKS / "03_attention_numpy.md")
    nb = edition("03_attention_numpy")
    for cell in nb.cells:
        cell.metadata.pop("tags", None)
    matched = grade.match_stubs(nb.cells, found)
    assert sorted(matched) == [ex.position for ex in found]
    for ex in found:  # the (blank) exercise cell, not the chapter's own softmax
        assert grade._normalised(matched[ex.position][0]) == grade._normalised(ex.stub)


def test_malformed_cells_do_not_crash_the_matcher():
    found = exercises01()
    cells = [{"cell_type": "code", "source": None}, {"cell_type": "code", "metadata": {"tags": "stub"}, "source": "def merge(:"},
             {"cell_type": "markdown", "source": "text"}]
    matched = grade.match_stubs(cells, found)  # no exception; the unparsable cell is still merge's answer
    assert set(matched) == {1}


def test_the_chapters_imports_are_read_from_the_chapter():
    shift = grade.chapter_exercises(NOTEBOOKS / "02_embeddings_and_positions.md")[1]
    assert shift.names == ["shift_matrix"]
    assert "import math" in shift.imports and "import torch" in shift.imports
    assert not any("solutions" in i for i in shift.imports)
    intro = grade.chapter_exercises(NOTEBOOKS / f"{CH00}.md")[0]
    assert "import numpy as np" in intro.imports
    assert "import importlib, importlib.util, os, subprocess, sys" not in intro.imports  # the Colab setup cell's
    assert grade.imported_names("import torch.nn.functional as F") == {"F"}
    assert grade.imported_names("import os.path, numpy as np") == {"os", "np"}


def test_a_later_exercise_gets_the_earlier_exercises_reference_functions():
    encode = grade.chapter_exercises(NOTEBOOKS / f"{CH01}.md")[2]
    assert encode.earlier == ("count_pairs", "merge") and encode.module == "ch01_tokenization"
    source = grade.earlier_functions(encode)
    assert "def merge(" in source and "def count_pairs(" in source and "def bpe_encode(" not in source


# ---------------------------------------------------------------------------
# what a student's code cannot do to the grader (each case: one exercise process)

SOFTMAX_CHECK = "from course.checks.ch00 import check_softmax\ncheck_softmax(softmax)\n"


def run(stub: str, **limits) -> tuple[str, str]:
    return grade.run_exercise(stub, SOFTMAX_CHECK, env=grade.child_environment(), limits=grade.Limits(**limits))


def test_a_verdict_without_the_nonce_is_rejected():
    # a "pass" written on every descriptor the process has, then an exit before the check
    forge = (
        "import json, os\n"
        "line = (json.dumps({'status': 'pass', 'message': 'x'}) + '\\n').encode()\n"
        "for fd in range(3, 64):\n"
        "    try:\n"
        "        os.write(fd, line)\n"
        "    except OSError:\n"
        "        pass\n"
        "os._exit(0)\n"
    )
    status, text = run(forge)
    assert status == "error" and "verdict" in text, text
    assert set(grade.review_flags(forge)) == {"os.write", "os._exit"}


def test_an_exit_before_the_check_is_an_error_without_a_verdict():
    status, text = run("import os\nos._exit(0)\n")
    assert status == "error" and "ended without a verdict" in text, text
    status, text = run("import sys\nsys.exit(0)\n")  # SystemExit is caught: the cell raised it
    assert status == "error" and "SystemExit" in text, text


def test_the_students_code_does_not_see_the_graders_environment(monkeypatch):
    monkeypatch.setenv("GRADER_SECRET_TOKEN", "s3cr3t-value")
    status, text = run("import os\nraise RuntimeError(sorted(os.environ), any('s3cr3t' in v for v in os.environ.values()))\n")
    assert status == "error" and "RuntimeError" in text and "'PYTHONPATH'" in text, text
    assert "GRADER_SECRET_TOKEN" not in text and text.endswith("False)"), text
    env = grade.child_environment()
    assert "GRADER_SECRET_TOKEN" not in env and env["MPLBACKEND"] == "Agg" and env["PYTHONPATH"] == str(ROOT)
    status, text = run("import os, tempfile\nraise RuntimeError(os.environ['HOME'] + ' ' + tempfile.gettempdir())\n")
    home, tmp = text.split(": ", 1)[1].split()[:2]
    assert home.endswith("/home") and tmp.endswith("/tmp") and home.startswith(tmp[: -len("tmp")]), text


def test_memory_limit():
    status, text = run("x = bytearray(10**11)\n")
    assert status == "error" and "MemoryError" in text and "memory limit is 4096 MB" in text, text
    status, text = run("x = []\nwhile True:\n    x.append(bytearray(10**7))\n", max_memory_mb=1024)
    assert status == "error" and "MemoryError" in text and "memory limit is 1024 MB" in text, text


def test_cpu_limit():
    status, text = run("while True:\n    pass\n", timeout=30, max_cpu_s=2)
    assert status == "error" and "CPU-time limit (2 s" in text, text


def test_process_limit():
    fork_many = (
        "import os, time\n"
        "for _ in range(30):\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(60)\n"
        "        os._exit(0)\n"
        "time.sleep(60)\n"
    )
    start = time.perf_counter()
    status, text = run(fork_many, timeout=30, max_processes=10)
    assert status == "error" and "more than 10 processes" in text, text
    assert time.perf_counter() - start < 15


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the grader adopts orphans on Linux only")
def test_no_process_outlives_its_exercise(tmp_path):
    mark, pid_file = tmp_path / "escaped", tmp_path / "pid"
    escape = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()  # out of the exercise's process group and session\n"
        "    if os.fork() == 0:\n"
        f"        open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        "        time.sleep(1.5)\n"
        f"        open({str(mark)!r}, 'w').write('still here')\n"
        "        os._exit(0)\n"
        "    os._exit(0)\n"
        "time.sleep(0.5)\n"
        "def softmax(x):\n"
        "    return x\n"
    )
    status, _ = run(escape)
    assert status == "fail"
    pid = int(pid_file.read_text())
    time.sleep(2.5)
    assert not mark.exists(), "a process the student's code started outlived the exercise"
    assert not os.path.exists(f"/proc/{pid}")
    assert set(grade.review_flags(escape)) == {"os.fork", "os.setsid", "os._exit"}


def test_parallel_exercises_do_not_kill_each_others_processes():
    slow_right = "import time\n" + solution_source(CH00) + "time.sleep(1.5)\n"
    leaver = "import os, time\nif os.fork() == 0:\n    time.sleep(30)\n    os._exit(0)\ndef softmax(x):\n    return x\n"
    with ThreadPoolExecutor(2) as pool:
        slow, leave = pool.submit(run, slow_right), pool.submit(run, leaver)
        assert slow.result()[0] == "pass", slow.result()
        assert leave.result()[0] == "fail"


def test_review_flags():
    assert grade.review_flags("import numpy as np\nimport torch\nx = torch.zeros(3)\nnp.exp(x.numpy())\n") == []
    for path in sorted((ROOT / "solutions").glob("ch*.py")):  # the reference solutions use nothing suspicious
        assert grade.review_flags(path.read_text()) == [], path.name
    for chapter in grade.course_exercises().values():
        for ex in chapter:
            assert grade.review_flags(ex.stub) == [], ex.label
    cases = {
        "import sys\nsys.modules['course.checks.ch00'] = None\n": ["sys.modules"],
        "from os import _exit as leave\nleave(0)\n": ["os._exit"],
        "import gc\ngc.get_objects()\n": ["gc"],
        "import ctypes\n": ["ctypes"],
        "import inspect\nf = inspect.currentframe().f_back\n": ["f_back", "inspect.currentframe"],
        "import builtins\nbuiltins.print = None\n": ["builtins"],
        "from course.checks import ch00\n": ["course.checks"],
        "import subprocess\nsubprocess.run(['ls'])\n": ["subprocess"],
        "open('/proc/self/environ').read()\n": ["'/proc'"],
        "exec('x = 1')\n": ["exec()"],
        "def f(x):\n    return f.__globals__\n": ["__globals__"],
        "exec(open('../solutions/ch00_introduction.py').read())\n": ["'solutions/'", "exec()"],
        "import sys\nprint('x', file=sys.stderr)\n": [],
    }
    for source, flags in cases.items():
        assert grade.review_flags(source) == flags, source
