"""Grade a class's notebooks: run every student's exercises against the course's own checks.

    python tools/grade.py SUBMISSIONS [--out _build/grades] [--timeout 60] [--jobs 1] [--chapters 00,01]
    make grade SUBMISSIONS=folder

SUBMISSIONS holds one sub-folder per student with some of the chapter notebooks
of the student edition (``NN_topic.ipynb``, anywhere inside the student's folder).
For every exercise of every graded chapter, the student's `stub` cell runs and
then the check cell of the REPOSITORY's chapter (a check cell the student edited
is never used), each exercise in a fresh Python process with a time limit, so a
broken or endless cell costs that exercise only. Statuses:

    pass     the check passed
    fail     the check failed; the message is its one-line diagnosis
    blank    the stub cell is unchanged (same code as the blank stub)
    error    the student's cell raised before the check could judge it, the check
             crashed on what the student's code returned, or the time limit ran out
    missing  the notebook, or the exercise's stub cell, is not there

Writes OUT/grades.csv (student, chapter, exercise, status, message), and a
summary (students x chapters, passed/total) printed and written as
OUT/summary.md and OUT/summary.csv.

THIS RUNS THE STUDENTS' CODE with your permissions: run it in a sandbox
(docs/GRADING.md says how, and what the grader does not protect against).
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
STATUSES = ("pass", "fail", "blank", "error", "missing")
MESSAGE_CHARS = 400


# ---------------------------------------------------------------------------
# The course's exercises, read from the repository's chapters


@dataclass
class Exercise:
    chapter: str  # "01_tokenization"
    position: int  # 0, 1, ... among the chapter's exercises (= among its stub cells)
    label: str  # "ex-01-merge"
    stub: str  # the blank stub cell of the repository
    check: str  # the repository's check cell (the only one ever run)
    names: list[str] = field(default_factory=list)  # functions/classes the blank stub defines
    chapter_cells: frozenset = frozenset()  # the chapter's other code cells (normalised): never a student's answer


def defined_names(source: str) -> list[str]:
    """Top-level functions and classes a cell defines (a regex when the cell does not parse)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return re.findall(r"^(?:async\s+)?(?:def|class)\s+([A-Za-z_]\w*)", source, flags=re.M)
    return [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]


def _tags(cell) -> list[str]:
    tags = cell.get("metadata", {}).get("tags", [])
    return list(tags) if isinstance(tags, list) else []


def chapter_exercises(md: Path) -> list[Exercise]:
    """The exercises of one chapter (its MyST source), in order, with the labels of their boxes."""
    import jupytext

    nb = jupytext.read(md)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    labels = re.findall(r"```\{exercise\}[^\n]*\n:label: (\S+)", text)
    found: list[Exercise] = []
    others = frozenset(
        _normalised(c.source) for c in nb.cells
        if c.cell_type == "code" and not {"stub", "solution", "check"} & set(_tags(c))
    )
    stub = None
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = _tags(cell)
        if "stub" in tags:
            stub = cell.source
        elif "check" in tags and stub is not None:
            position = len(found)
            label = labels[position] if position < len(labels) else f"{md.stem[:2]}-exercise-{position + 1}"
            found.append(Exercise(md.stem, position, label, stub, cell.source, defined_names(stub), others))
            stub = None
    return found


def course_exercises() -> dict[str, list[Exercise]]:
    return {md.stem: chapter_exercises(md) for md in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.md"))}


# ---------------------------------------------------------------------------
# A student's notebook: finding it, and the stub cell of each exercise


def find_notebook(student_dir: Path, chapter: str) -> Path | None:
    """The student's notebook of `chapter`: the exact name first, else one starting with its number."""
    def usable(p: Path) -> bool:
        rel = p.relative_to(student_dir).parts
        return p.is_file() and not any(part.startswith(".") or part == "__MACOSX" for part in rel)

    for pattern in (f"{chapter}.ipynb", f"{chapter[:2]}_*.ipynb"):
        hits = sorted((p for p in student_dir.rglob(pattern) if usable(p)), key=lambda p: (len(p.parts), str(p)))
        if hits:
            return hits[0]
    return None


def _normalised(source: str) -> str:
    """The code without comments and layout (ast), to tell an unchanged stub from a changed one."""
    try:
        return ast.dump(ast.parse(source))
    except (SyntaxError, ValueError):
        return "\n".join(line.rstrip() for line in source.strip().splitlines())


def match_stubs(cells: list, exercises: list[Exercise]) -> dict[int, tuple[str, str]]:
    """{exercise position: (student's stub source, how it was found)} for every exercise found.

    A cell tagged `stub` that defines the exercise's function wins (the one at the
    exercise's position among the stub cells when several do, else the last); then
    the stub cell at that position, unless it defines another exercise's function;
    then, for a notebook whose tags were lost, the last untagged cell defining the
    function that is not one of the chapter's own cells.
    """
    code = [c for c in cells if c.get("cell_type") == "code" and isinstance(c.get("source"), str)]
    stubs = [c for c in code if "stub" in _tags(c)]
    stub_names = [set(defined_names(c["source"])) for c in stubs]
    all_names = {name for ex in exercises for name in ex.names}
    found: dict[int, tuple[str, str]] = {}
    for ex in exercises:
        wanted = set(ex.names)
        by_name = [i for i, names in enumerate(stub_names) if wanted and wanted & names]
        if by_name:
            i = ex.position if ex.position in by_name else by_name[-1]
            found[ex.position] = (stubs[i]["source"], "")
            continue
        if ex.position < len(stubs):
            others = (stub_names[ex.position] & all_names) - wanted
            if not others:
                found[ex.position] = (stubs[ex.position]["source"], "")
                continue
        if not stubs and wanted:
            untagged = [c for c in code if wanted & set(defined_names(c["source"]))]
            untagged = [c for c in untagged if _normalised(c["source"]) not in ex.chapter_cells]
            if untagged:
                found[ex.position] = (untagged[-1]["source"], "the cell had no `stub` tag; matched by the function it defines")
    return found


# ---------------------------------------------------------------------------
# Running one exercise in a fresh process


@dataclass
class Result:
    student: str
    chapter: str
    exercise: str
    status: str
    message: str
    seconds: float = 0.0


def one_line(text: str, limit: int = MESSAGE_CHARS) -> str:
    text = " ".join(str(text).split())
    text = text.replace("\u2705", "").replace("\u274c", "").strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _kill(proc: subprocess.Popen) -> None:
    try:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)  # the student's code may have started processes of its own
        else:
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass


def run_exercise(stub: str, check: str, *, timeout: float, env: dict[str, str], max_file_mb: int) -> tuple[str, str]:
    """(status, message) of the student's `stub` followed by the course's `check`, in a new process."""
    with tempfile.TemporaryDirectory(prefix="grade-") as tmp:
        work = Path(tmp)
        payload = work / "payload.json"
        payload.write_text(json.dumps({"stub": stub, "check": check, "max_file_mb": max_file_mb}))
        result = work / "result.json"
        cwd = work / "cwd"
        cwd.mkdir()
        stderr_path = work / "stderr.txt"
        with open(stderr_path, "wb") as stderr:
            proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--run-one", str(payload), str(result)],
                cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                start_new_session=hasattr(os, "killpg"),
            )
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill(proc)
                proc.wait()
                return "error", f"time limit: still running after {timeout:g} s (an endless loop?)"
            _kill(proc)  # whatever the student's code left running
        try:
            outcome = json.loads(result.read_text())
            return outcome["status"], one_line(outcome["message"])
        except (OSError, ValueError, KeyError, TypeError):
            with open(stderr_path, "rb") as f:
                f.seek(max(0, stderr_path.stat().st_size - 2000))
                tail = f.read().decode("utf-8", "replace").strip().splitlines()
            last = tail[-1] if tail else ""
            code = proc.returncode
            how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            return "error", one_line(f"the process ended without a verdict ({how}; out of memory, or the code exited?) {last}")


class _Capped:
    """A stdout/stderr that keeps the first few kilobytes: an endless print loop cannot fill memory."""

    def __init__(self, limit: int = 65536):
        self.parts: list[str] = []
        self.size = 0
        self.limit = limit

    def write(self, s: str) -> int:
        if self.size < self.limit:
            self.parts.append(s[: self.limit - self.size])
            self.size += len(self.parts[-1])
        return len(s)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def getvalue(self) -> str:
        return "".join(self.parts)


class _NoShell:
    """What `get_ipython()` returns outside Jupyter: line magics and shell commands (`!pip ...`) are skipped;
    the body of a timing cell magic (%%time, %%timeit, %%capture) runs once."""

    def __init__(self, namespace: dict):
        self.namespace = namespace

    def run_line_magic(self, *args, **kwargs):
        return None

    def run_cell_magic(self, name, line, cell):
        if name in ("time", "timeit", "capture", "prun"):
            exec(compile(_ipython_to_python(cell), "<stub cell>", "exec"), self.namespace)

    def system(self, *args, **kwargs):
        return None

    def getoutput(self, *args, **kwargs):
        return []

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def _ipython_to_python(source: str) -> str:
    if not re.search(r"^\s*(?:[%!]|[\w., ]+=\s*[%!])", source, flags=re.M):
        return source  # plain Python: no need to import IPython (it takes a while)
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:
        return source
    try:
        return TransformerManager().transform_cell(source)
    except Exception:  # the plain source then fails to compile, and says where
        return source


def _run_one(payload_path: str, result_path: str) -> int:
    """The child process: stub, then check; writes {"status", "message"} to result_path."""
    payload = json.loads(Path(payload_path).read_text())
    verdict = {"status": "error", "message": "the grader's child process failed before running the exercise"}

    def report(status: str, message: str) -> None:
        verdict.update(status=status, message=message)
        Path(result_path).write_text(json.dumps(verdict))

    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        size = payload["max_file_mb"] * 2**20
        if size > 0:
            resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    except (ImportError, ValueError, OSError):
        pass
    sys.path.insert(0, str(ROOT))  # the course's `course` package: the checks and what they import
    sys.modules["solutions"] = None  # type: ignore[assignment]  # a stub must not import the reference solutions
    from course.checks import ExerciseFailed, NotImplementedYet

    namespace: dict = {"__name__": "__main__", "__builtins__": __builtins__}
    namespace["get_ipython"] = lambda: _NoShell(namespace)

    def display(*objects, **kwargs):  # Jupyter's built-in display(), imported only when called
        try:
            from IPython.display import display as show
        except ImportError:
            print(*objects)
        else:
            show(*objects, **kwargs)

    namespace["display"] = display
    out = _Capped()
    real_stdout, real_stderr = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = out
    try:
        try:
            exec(compile(_ipython_to_python(payload["stub"]), "<stub cell>", "exec"), namespace)
        except BaseException as err:  # SystemExit and KeyboardInterrupt too: the student's code ended early
            where = ""
            tb = err.__traceback__
            while tb is not None:
                if tb.tb_frame.f_code.co_filename == "<stub cell>":
                    where = f" (line {tb.tb_lineno} of the cell)"
                tb = tb.tb_next
            if isinstance(err, SyntaxError):
                where = f" (line {err.lineno} of the cell)"
            report("error", f"your cell raised {type(err).__name__}{where}: {err}")
            return 0
        try:
            exec(compile(payload["check"], "<check cell>", "exec"), namespace)
        except NotImplementedYet as err:
            report("fail", str(err))
            return 0
        except ExerciseFailed as err:
            report("fail", str(err))
            return 0
        except NameError as err:
            report("error", f"the check could not find your code: {err} (was the function renamed, or the cell emptied?)")
            return 0
        except BaseException as err:
            report("error", f"the check crashed on what your code returned: {type(err).__name__}: {err}")
            return 0
        printed = [line for line in out.getvalue().splitlines() if "passed" in line]
        report("pass", printed[-1] if printed else "all checks passed")
        return 0
    finally:
        sys.stdout, sys.stderr = real_stdout, real_stderr


# ---------------------------------------------------------------------------
# Grading a folder of submissions


def student_dirs(submissions: Path) -> list[Path]:
    return sorted(
        (p for p in submissions.iterdir() if p.is_dir() and not p.name.startswith((".", "_")) and p.name != "__MACOSX"),
        key=lambda p: p.name.lower(),
    )


def plan_student(student_dir: Path, chapters: list[str], course: dict[str, list[Exercise]]):
    """Per exercise: either a Result already (missing, blank) or the (stub, check) to run."""
    import nbformat

    plan = []
    for chapter in chapters:
        exercises = course[chapter]
        path = find_notebook(student_dir, chapter)
        cells = None
        problem = f"no notebook {chapter}.ipynb"
        if path is not None:
            try:
                nb = nbformat.read(path, as_version=4)
                cells = list(nb.get("cells", []))
            except Exception as err:  # not JSON, not a notebook, ...
                problem = f"{path.name} could not be read as a notebook: {type(err).__name__}: {err}"
        if cells is None:
            for ex in exercises:
                plan.append((ex, Result(student_dir.name, chapter, ex.label, "missing", one_line(problem))))
            continue
        try:
            stubs = match_stubs(cells, exercises)
        except Exception as err:  # a malformed cell: never let one notebook stop the run
            stubs = {}
            problem = f"{path.name}: its cells could not be read: {type(err).__name__}: {err}"
        for ex in exercises:
            if ex.position not in stubs:
                names = ", ".join(f"`{n}`" for n in ex.names) or "this exercise"
                why = problem if problem.startswith(path.name) else f"no stub cell for {names} in {path.name} (deleted?)"
                plan.append((ex, Result(student_dir.name, chapter, ex.label, "missing", one_line(why))))
                continue
            source, note = stubs[ex.position]
            if _normalised(source) == _normalised(ex.stub):
                plan.append((ex, Result(student_dir.name, chapter, ex.label, "blank", "the stub cell is unchanged")))
            else:
                plan.append((ex, (source, note)))
    return plan


def grade(
    submissions: Path,
    *,
    timeout: float = 60.0,
    jobs: int = 1,
    chapters: list[str] | None = None,
    max_file_mb: int = 64,
    progress=print,
) -> list[Result]:
    course = course_exercises()
    students = student_dirs(submissions)
    if chapters is None:  # the chapters somebody handed in
        chapters = [c for c in course if any(find_notebook(s, c) for s in students)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("MPLBACKEND", "Agg")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if jobs > 1 and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    results: list[Result] = []
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for student in students:
            start = time.perf_counter()
            plan = plan_student(student, chapters, course)

            def work(item):
                ex, todo = item
                if isinstance(todo, Result):
                    return todo
                source, note = todo
                t0 = time.perf_counter()
                status, message = run_exercise(source, ex.check, timeout=timeout, env=env, max_file_mb=max_file_mb)
                if note:
                    message = one_line(f"{message} [{note}]")
                return Result(student.name, ex.chapter, ex.label, status, message, time.perf_counter() - t0)

            mine = list(pool.map(work, plan))
            results.extend(mine)
            passed = sum(r.status == "pass" for r in mine)
            progress(f"{student.name}: {passed}/{len(mine)} passed ({time.perf_counter() - start:.0f} s)")
    return results


def summary_rows(results: list[Result]) -> tuple[list[str], list[list[str]]]:
    chapters = sorted({r.chapter for r in results})
    students = list(dict.fromkeys(r.student for r in results))
    header = ["student"] + chapters + ["total"]
    rows = []
    for s in students:
        row, passed_all, total_all = [s], 0, 0
        for c in chapters:
            mine = [r for r in results if r.student == s and r.chapter == c]
            passed = sum(r.status == "pass" for r in mine)
            row.append(f"{passed}/{len(mine)}")
            passed_all, total_all = passed_all + passed, total_all + len(mine)
        row.append(f"{passed_all}/{total_all}")
        rows.append(row)
    return header, rows


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(x) for x in column) for column in zip(header, *rows)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows]) + "\n"


def write_reports(results: list[Result], out: Path) -> str:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "grades.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["student", "chapter", "exercise", "status", "message"])
        for r in results:
            w.writerow([r.student, r.chapter, r.exercise, r.status, r.message])
    header, rows = summary_rows(results)
    with open(out / "summary.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    counts = {s: sum(r.status == s for r in results) for s in STATUSES}
    table = markdown_table(header, rows)
    text = (
        "# Grades: exercises passed / exercises, per student and chapter\n\n" + table
        + "\nAll exercises: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + ". Details: grades.csv.\n"
    )
    (out / "summary.md").write_text(text, encoding="utf-8")
    return table


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--run-one"]:
        return _run_one(argv[1], argv[2])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("submissions", type=Path, help="a folder with one sub-folder per student")
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "grades", help="where the reports go")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per exercise (default 60)")
    parser.add_argument("--jobs", "-j", type=int, default=1, help="exercises run at the same time (default 1)")
    parser.add_argument("--chapters", help="comma-separated chapter numbers, e.g. 00,01 (default: those handed in)")
    parser.add_argument("--max-file-mb", type=int, default=64, help="largest file the student's code may write (0: no limit)")
    args = parser.parse_args(argv)
    if not args.submissions.is_dir():
        parser.error(f"{args.submissions} is not a folder")
    chapters = None
    if args.chapters:
        known = {c[:2]: c for c in course_exercises()}
        wanted = [c.strip()[:2] for c in args.chapters.split(",") if c.strip()]
        unknown = [c for c in wanted if c not in known]
        if unknown:
            parser.error(f"no chapter {', '.join(unknown)}; the chapters are {', '.join(sorted(known))}")
        chapters = [known[c] for c in wanted]
    start = time.perf_counter()
    results = grade(args.submissions, timeout=args.timeout, jobs=args.jobs, chapters=chapters, max_file_mb=args.max_file_mb)
    if not results:
        print(f"nothing to grade in {args.submissions}: no student folder with a chapter notebook")
        return 1
    table = write_reports(results, args.out)
    print()
    print(table)
    print(f"{len(results)} exercise(s) graded in {time.perf_counter() - start:.0f} s; reports in {args.out}/ "
          "(grades.csv, summary.md, summary.csv)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
