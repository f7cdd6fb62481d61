"""Grade a class's notebooks: run every student's exercises against the course's own checks.

    python tools/grade.py SUBMISSIONS [--out _build/grades] [--timeout 60] [--jobs 1] [--chapters 00,01]
                          [--max-memory-mb 4096] [--max-cpu-s S] [--max-processes 64] [--max-file-mb 64]
    make grade SUBMISSIONS=folder
    make grade-sandboxed SUBMISSIONS=folder    (the same inside bubblewrap: tools/grade_sandboxed.sh)

SUBMISSIONS holds one sub-folder per student with some of the chapter notebooks
of the student edition (``NN_topic.ipynb``, anywhere inside the student's folder).
For every exercise of every graded chapter, the student's `stub` cell runs and
then the check cell of the REPOSITORY's chapter (a check cell the student edited
is never used), each exercise in a fresh Python process with a time limit, so a
broken or endless cell costs that exercise only. The verdict comes back on a
channel of its own with a per-exercise nonce; the process gets a scrubbed
environment and resource limits, and nothing it starts outlives it (Linux).
Statuses:

    pass     the check passed
    fail     the check failed; the message is its one-line diagnosis
    blank    the stub cell is unchanged (same code as the blank stub)
    error    the student's code raised (when the cell ran, or when the check called
             the student's function: the message names the exception and the line),
             the check found no function to check or crashed on what the student's
             code returned, a limit ran out (time, memory, CPU, processes), or the
             process ended without the grader's verdict
    missing  the notebook, or the exercise's stub cell, is not there

Before a student's cell, the grader runs the chapter's own imports: the top-level
`import` / `from ... import` statements of the repository chapter's code cells
before that exercise (those that bind a name the student's cell uses), as the
notebook's kernel would have them; a name the cell uses that is an earlier
exercise's function of the chapter gets that exercise's reference solution. A
message ending in "[review: ...]" names
constructs in the cell that can tamper with the grader (os._exit, sys.modules, ...).

Writes OUT/grades.csv (student, chapter, exercise, status, message), and a
summary (students x chapters, passed/total) printed and written as
OUT/summary.md and OUT/summary.csv.

THIS RUNS THE STUDENTS' CODE with your permissions: run it in a sandbox
(tools/grade_sandboxed.sh, `make grade-sandboxed`; docs/GRADING.md says how, and
what the grader does not protect against).
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import math
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
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
    imports: tuple[str, ...] = ()  # the chapter's top-level imports before the stub: run before the student's cell
    module: str = ""  # the chapter's solutions module ("ch01_tokenization"), from its solution cells
    earlier: tuple[str, ...] = ()  # the functions of the chapter's earlier exercises (a later answer may call them)


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


# cells whose imports are not the chapter's: the Colab setup cell, and the exercises' own cells
NOT_CHAPTER_IMPORTS = {"course-setup", "stub", "solution", "check"}


def _parse_cell(source: str) -> ast.Module | None:
    """The cell's syntax tree; lines of IPython syntax (`%magic`, `!shell`) are left out; None if it does not parse."""
    for text in (source, re.sub(r"^\s*[%!].*$", "", source, flags=re.M)):
        try:
            return ast.parse(text)
        except (SyntaxError, ValueError):
            continue
    return None


def top_level_imports(source: str) -> list[str]:
    """The cell's top-level `import` / `from ... import` statements (not those of the solutions package)."""
    tree = _parse_cell(source)
    found = []
    for node in tree.body if tree is not None else []:
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module != "__future__":
            modules = [node.module or ""]
        else:
            continue
        if any(m == "solutions" or m.startswith("solutions.") for m in modules):
            continue
        found.append(ast.unparse(node))
    return found


def imported_names(statement: str) -> set[str]:
    """The names an import statement binds ("*" for a star import)."""
    names: set[str] = set()
    for node in ast.parse(statement).body:
        if isinstance(node, ast.Import):
            names.update(alias.asname or alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.update(alias.asname or alias.name for alias in node.names)
    return names


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
    stub, module = None, ""
    imports: list[str] = []  # the chapter's imports so far, in order, each once
    stub_imports: tuple[str, ...] = ()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = _tags(cell)
        if "stub" in tags:
            stub, stub_imports = cell.source, tuple(imports)
        elif "solution" in tags:
            hit = re.search(r"^from solutions\.(\w+) import", cell.source, flags=re.M)
            module = hit.group(1) if hit else module
        elif "check" in tags and stub is not None:
            position = len(found)
            label = labels[position] if position < len(labels) else f"{md.stem[:2]}-exercise-{position + 1}"
            earlier = tuple(name for ex in found for name in ex.names)
            found.append(Exercise(md.stem, position, label, stub, cell.source, defined_names(stub), others,
                                  stub_imports, module, earlier))
            stub = None
        if not NOT_CHAPTER_IMPORTS & set(tags):
            imports.extend(i for i in top_level_imports(cell.source) if i not in imports)
    return found


def earlier_functions(ex: Exercise, solutions: Path | None = None) -> str:
    """The reference solutions of the chapter's earlier exercises, with their module's imports: what the
    notebook hands the rest of the chapter after each check (the student's function, or the reference while
    the stub is blank). The grader gives a cell those it calls; never the exercise's own solution."""
    path = (solutions or ROOT / "solutions") / f"{ex.module}.py"
    if not ex.earlier or not ex.module or not path.is_file():
        return ""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    keep = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))
            or (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name in ex.earlier)]
    parts = []
    for node in keep:
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        parts.append("\n".join(source.splitlines()[start - 1 : node.end_lineno]))
    return "\n\n".join(parts) + "\n"


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


def _without_imports(source: str) -> str:
    """The code without its top-level imports, comments and layout: what tells a blank stub from an answer
    (a student's edition whose stub imports one module more or less than today's is still blank)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return _normalised(source)
    tree.body = [node for node in tree.body if not isinstance(node, (ast.Import, ast.ImportFrom))]
    return ast.dump(tree)


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


@dataclass(frozen=True)
class Limits:
    """What one exercise may use. 0 means no limit."""

    timeout: float = 60.0  # seconds of wall-clock time, Python's start and the imports included
    max_file_mb: int = 64  # the largest file the code may write
    max_memory_mb: int = 4096  # address space of the exercise's process (RLIMIT_AS)
    max_cpu_s: float = 0.0  # CPU seconds of the exercise's process; 0: the timeout times its threads
    max_processes: int = 64  # processes the exercise may have running at once (counted by the grader)


# The grader tampers with nothing the course's code needs; code that uses one of these can tamper with the
# grader (end the process before the verdict, replace the checks, read the grader's memory, leave processes
# behind). A cell using any of them gets "[review: ...]" in its message for the teacher to read.
REVIEW_CALLS = {
    "os._exit", "os.fork", "os.forkpty", "os.setsid", "os.setpgrp", "os.setpgid", "os.kill", "os.killpg",
    "os.system", "os.popen", "os.write", "os.dup2", "os.fdopen", "os.posix_spawn", "os.posix_spawnp",
    "sys.modules", "sys._getframe", "sys._current_frames", "sys.settrace", "sys.setprofile",
    "sys.__stdout__", "sys.__stderr__",
    "inspect.currentframe", "inspect.stack", "inspect.trace", "inspect.getouterframes", "inspect.getframeinfo",
}
REVIEW_PREFIXES = ("os.exec", "os.spawn")
REVIEW_MODULES = {"subprocess", "multiprocessing", "ctypes", "gc", "builtins", "__main__", "pty", "importlib",
                  "course.checks", "signal", "resource"}
REVIEW_ATTRIBUTES = {"f_back", "f_globals", "f_locals", "f_builtins", "tb_frame", "gi_frame", "cr_frame",
                     "__code__", "__globals__", "__closure__", "__subclasses__", "__builtins__"}
REVIEW_BUILTINS = {"exec", "eval", "__import__"}
REVIEW_TEXT = ("/proc", "/dev/fd", "__builtins__", "solutions/", "solutions.ch", "_reference")  # the last 3: the answers


def review_flags(source: str) -> list[str]:
    """Constructs in a student's cell that can tamper with the grader, for the teacher to review.

    NumPy, PyTorch and the course's own modules are never flagged; only what an exercise never needs:
    ending the process early, other processes, the interpreter's internals (frames, the module table,
    the garbage collector, builtins), the course's checks, /proc.
    """
    found: list[str] = []

    def flag(what: str) -> None:
        if what not in found:
            found.append(what)

    tree = _parse_cell(source)
    if tree is None:
        for word in ("os._exit", "sys.modules", "ctypes", "subprocess", "course.checks", "gc."):
            if word in source:
                flag(word)
    else:
        aliases: dict[str, str] = {}  # local name -> the dotted name it stands for

        def module_flag(module: str) -> None:
            for m in REVIEW_MODULES:
                if module == m or module.startswith(m + "."):
                    flag(m)

        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    module_flag(alias.name)
                    if alias.asname:
                        aliases[alias.asname] = alias.name
            elif isinstance(node, ast.ImportFrom) and node.module:
                module_flag(node.module)
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    module_flag(full)
                    aliases[alias.asname or alias.name] = full

        def dotted(node: ast.AST) -> str | None:
            parts = []
            while isinstance(node, ast.Attribute):
                parts.append(node.attr)
                node = node.value
            if not isinstance(node, ast.Name):
                return None
            parts.append(aliases.get(node.id, node.id))
            return ".".join(reversed(parts))

        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                if node.attr in REVIEW_ATTRIBUTES:
                    flag(node.attr)
                name = dotted(node)
            elif isinstance(node, ast.Name):
                name = aliases.get(node.id)
                if node.id in REVIEW_BUILTINS and node.id not in aliases:
                    flag(f"{node.id}()")
            else:
                name = None
            if name:
                if name in REVIEW_CALLS or name.startswith(REVIEW_PREFIXES):
                    flag(name)
                module_flag(name)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for text in REVIEW_TEXT:
                    if text in node.value:
                        flag(repr(text))
    return sorted(found)


# The child's environment: an allow-list. Nothing else of the grader's environment (tokens, keys, the
# teacher's paths) reaches a student's code through os.environ.
ENV_KEEP = {"PATH", "LANG", "LANGUAGE", "TZ", "LD_LIBRARY_PATH", "SYSTEMROOT", "WINDIR", "COMSPEC", "PATHEXT",
            "COURSE_DATA_DIR", "COURSE_OFFLINE", "COURSE_STRICT_DATA", "COURSE_KERNELS",
            "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"}
ENV_KEEP_PREFIXES = ("LC_",)


def _kernel_variables() -> set[str]:
    """The CPU kernel variables of tools/kernels.py (the configuration the notebooks run under)."""
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import kernels

        return {name for profile in kernels.PROFILES.values() for name in profile}
    except Exception:  # noqa: BLE001 - a grader without tools/kernels.py keeps the usual ones
        return {"ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA"}
    finally:
        sys.path.pop(0)


def child_environment(jobs: int = 1, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment every exercise runs with (HOME and TMPDIR are set per exercise)."""
    base = dict(os.environ if base is None else base)
    keep = ENV_KEEP | _kernel_variables()
    env = {k: v for k, v in base.items() if k in keep or k.startswith(ENV_KEEP_PREFIXES)}
    env.setdefault("PATH", os.defpath)
    env["PYTHONPATH"] = str(ROOT)  # the course's `course` package, nothing of the teacher's
    env["MPLBACKEND"] = "Agg"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.setdefault("COURSE_OFFLINE", "1")  # an exercise never downloads (the corpus: COURSE_DATA_DIR, below)
    if not env.get("COURSE_DATA_DIR"):  # HOME moves into the exercise's folder: point at the teacher's cached corpus
        cache = Path(base.get("XDG_CACHE_HOME") or Path(base.get("HOME") or Path.home()) / ".cache") / "llm-course"
        if (cache / "tinyshakespeare.txt").is_file():
            env["COURSE_DATA_DIR"] = str(cache)
    if jobs > 1 and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    return env


def _kill(proc: subprocess.Popen) -> None:
    try:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)  # the student's code may have started processes of its own
        else:
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass


# Exit codes of the supervisor (the `--run-one` process) besides the exercise's own (0-127) and 128 + a signal
TIMED_OUT, TOO_MANY_PROCESSES, SUPERVISOR_FAILED = 200, 201, 202
VERDICT_BYTES = 1 << 20  # what the grader reads of the verdict channel at most


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _no_verdict(code: int | None, limits: Limits, cpu_s: float, log_tail: str) -> str:
    """The message of an exercise whose process ended without a verdict, from how it ended."""
    if code == TIMED_OUT:
        return f"time limit: still running after {limits.timeout:g} s (an endless loop?)"
    if code == TOO_MANY_PROCESSES:
        return f"the code started more than {limits.max_processes} processes (a fork bomb?): stopped"
    if code is not None and code < 0:  # the supervisor itself was killed
        code = 128 - code
    if code is not None and 128 < code < 192:
        sig = code - 128
        if sig == getattr(signal, "SIGXCPU", -1):
            how = f"killed at its CPU-time limit ({cpu_s:g} s of CPU; an endless loop?)"
        else:
            how = f"killed by {_signal_name(sig)}"
            if limits.max_memory_mb and sig in (signal.SIGSEGV, signal.SIGABRT, getattr(signal, "SIGBUS", -1),
                                                getattr(signal, "SIGKILL", -1)):
                how += f": out of memory? (the limit is {limits.max_memory_mb} MB, --max-memory-mb)"
    else:
        how = f"exit code {code}: the code ended the process (os._exit?) before the check could judge it"
    return f"the process ended without a verdict ({how}) {log_tail}".strip()


def cpu_limit(limits: Limits, env: dict[str, str]) -> float:
    """CPU seconds an exercise may use: --max-cpu-s, else the time limit times the threads it may run."""
    if limits.max_cpu_s:
        return limits.max_cpu_s
    try:
        threads = int(env.get("OMP_NUM_THREADS", "0"))
    except ValueError:
        threads = 0
    return math.ceil(limits.timeout * max(1, threads or os.cpu_count() or 1)) + 5


def run_exercise(
    stub: str,
    check: str,
    *,
    env: dict[str, str],
    limits: Limits = Limits(),
    imports: tuple[str, ...] | list[str] = (),
    earlier: str = "",
    timeout: float | None = None,
    max_file_mb: int | None = None,
) -> tuple[str, str]:
    """(status, message) of the student's `stub` followed by the course's `check`, in a new process.

    The process learns the exercise (and a random nonce) on its standard input, and answers on a
    channel of its own: a verdict counts only with the nonce, and only when the process then ends
    normally. `imports` are the chapter's imports, run before the stub (those binding a name it uses);
    `earlier` the source of the chapter's earlier exercises' functions (`earlier_functions`), of which the
    stub gets those it uses and does not define.
    """
    if timeout is not None or max_file_mb is not None:  # the older keyword arguments
        limits = Limits(**{**limits.__dict__, **({"timeout": timeout} if timeout is not None else {}),
                           **({"max_file_mb": max_file_mb} if max_file_mb is not None else {})})
    nonce = secrets.token_hex(16)
    cpu_s = cpu_limit(limits, env)
    payload = json.dumps({
        "stub": stub, "check": check, "imports": list(imports), "earlier": earlier, "nonce": nonce,
        "limits": limits.__dict__, "cpu_s": cpu_s,
    }).encode()
    with tempfile.TemporaryDirectory(prefix="grade-") as tmp:
        work = Path(tmp)
        cwd, home, scratch = work / "cwd", work / "home", work / "tmp"
        for folder in (cwd, home, scratch):
            folder.mkdir()
        child_env = {**env, "HOME": str(home), "TMPDIR": str(scratch), "TMP": str(scratch), "TEMP": str(scratch)}
        log_path = work / "stderr.txt"
        received: list[bytes] = []

        def read_channel(stream) -> None:
            size = 0
            for chunk in iter(lambda: stream.read1(65536), b""):
                if size < VERDICT_BYTES:
                    received.append(chunk[: VERDICT_BYTES - size])
                    size += len(received[-1])

        timed_out = False
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--run-one"],
                cwd=cwd, env=child_env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                start_new_session=hasattr(os, "killpg"),
            )
            reader = threading.Thread(target=read_channel, args=(proc.stdout,), daemon=True)
            reader.start()
            try:
                proc.stdin.write(payload)
                proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            try:  # the supervisor keeps the time limit; this is the grader's own, a little later
                proc.wait(timeout=limits.timeout + 15)
            except subprocess.TimeoutExpired:
                timed_out = True
            _kill(proc)  # whatever is left in the process group
            proc.wait()
            reader.join(timeout=5)
        code = TIMED_OUT if timed_out else proc.returncode
        verdicts, other = [], 0
        for line in b"".join(received).splitlines():
            try:
                outcome = json.loads(line)
                if outcome.get("nonce") != nonce:
                    raise ValueError
                verdicts.append((str(outcome["status"]), str(outcome["message"])))
            except (ValueError, AttributeError, KeyError, TypeError):
                other += line.strip() != b""
        if other or len(verdicts) > 1:
            return "error", "something other than the grader wrote on the grader's verdict channel: no verdict"
        if verdicts and code == 0 and verdicts[0][0] in ("pass", "fail", "error"):
            return verdicts[0][0], one_line(verdicts[0][1])
        with open(log_path, "rb") as f:
            f.seek(max(0, log_path.stat().st_size - 2000))
            tail = f.read().decode("utf-8", "replace").strip().splitlines()
        return "error", one_line(_no_verdict(code, limits, cpu_s, tail[-1] if tail else ""))


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


# --- the supervisor: the `--run-one` process. It keeps the time limit and, on Linux, adopts every process
# the exercise leaves behind (a child subreaper) and kills them all when the exercise ends.

PR_SET_CHILD_SUBREAPER = 36


def _become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux); False where that is not possible."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _children(pid: int) -> list[int]:
    """The child processes of `pid`, from /proc (every thread's children list; else every process's ppid)."""
    kids: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    listed = False
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids.extend(int(x) for x in f.read().split())
            listed = True
        except (OSError, ValueError):
            continue
    if listed:
        return kids
    for entry in os.listdir("/proc"):  # a kernel without the children lists: scan every process's parent
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        kids.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return kids


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, their children, ...), from /proc; [] where there is none."""
    found: list[int] = []
    todo = [pid]
    while todo and len(found) < 100_000:
        kids = [k for k in _children(todo.pop()) if k not in found]
        found.extend(kids)
        todo.extend(kids)
    return found


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _kill_descendants() -> None:
    """SIGKILL every descendant of this process until none is left (killed processes cannot fork again)."""
    me = os.getpid()
    for _ in range(200):
        left = descendants(me)
        if not left:
            return
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        _reap()
        time.sleep(0.005)


def _run_one() -> int:
    """The supervisor: read the exercise, run it in a forked child, keep the limits, clean up.

    Exit code: the child's (0 after a verdict), 128 + the signal that killed it, or TIMED_OUT /
    TOO_MANY_PROCESSES. The verdict itself goes from the child straight to the grader.
    """
    payload = json.loads(sys.stdin.buffer.read())
    channel = os.dup(1)  # the verdict channel: a private descriptor, not inherited by programs the code starts
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)  # no standard input
    os.dup2(2, 1)  # output written below Python's sys.stdout goes to the log, never onto the verdict channel
    os.close(devnull)
    limits = Limits(**payload["limits"])
    if not hasattr(os, "fork"):  # Windows: no supervisor; the grader keeps the time limit
        return _exercise(payload, channel, limits)
    subreaper = _become_subreaper()
    child = os.fork()
    if child == 0:
        code = 1
        try:
            code = _exercise(payload, channel, limits)
        except BaseException:  # the grader's own failure: its traceback goes to the log, its last line to the message
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)  # no atexit handlers, no finalizers of the student's objects
    os.close(channel)
    deadline = time.monotonic() + limits.timeout
    next_count = time.monotonic() + 0.2
    outcome = None
    while outcome is None:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            outcome = SUPERVISOR_FAILED
            break
        if pid == child:
            if os.WIFSIGNALED(status):
                outcome = 128 + os.WTERMSIG(status)
            else:
                outcome = min(os.WEXITSTATUS(status), 127)
        elif pid:
            continue  # an orphan the exercise left behind, reaped
        elif time.monotonic() > deadline:
            outcome = TIMED_OUT
        elif subreaper and limits.max_processes and time.monotonic() > next_count:
            next_count = time.monotonic() + 0.2
            if len(descendants(os.getpid())) > limits.max_processes + 1:
                outcome = TOO_MANY_PROCESSES
        else:
            time.sleep(0.01)
    if subreaper:
        _kill_descendants()
    else:
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _reap()  # (the grader kills the rest of the process group)
    return outcome


def _set_limits(limits: Limits, cpu_s: float) -> None:
    """The exercise's own resource limits (soft = hard: the code cannot raise them again)."""
    try:
        import resource
    except ImportError:
        return

    def cap(what: int, value: int) -> None:
        try:
            resource.setrlimit(what, (value, value))
        except (ValueError, OSError):
            pass

    cap(resource.RLIMIT_CORE, 0)
    if limits.max_file_mb > 0:
        cap(resource.RLIMIT_FSIZE, limits.max_file_mb * 2**20)
    if limits.max_memory_mb > 0 and hasattr(resource, "RLIMIT_AS"):
        cap(resource.RLIMIT_AS, limits.max_memory_mb * 2**20)
    if cpu_s > 0:
        soft = math.ceil(cpu_s)
        try:
            resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + 5))  # SIGXCPU at soft, SIGKILL at hard
        except (ValueError, OSError):
            pass
    if limits.max_processes > 0 and hasattr(resource, "RLIMIT_NPROC") and os.geteuid() != 0:
        # counts every process and thread of this account, not only the exercise's; root is exempt
        cap(resource.RLIMIT_NPROC, _tasks_of_this_user() + 512 + limits.max_processes)


def _tasks_of_this_user() -> int:
    uid, count = os.getuid(), 0
    try:
        entries = os.listdir("/proc")
    except OSError:
        return 4096
    for entry in entries:
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry}/task"))
            except OSError:
                continue
    return count


def _cell_line(tb) -> int | None:
    """The line of the student's cell where a traceback was last in it."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<stub cell>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _cell_function(tb) -> str | None:
    """The student's function (its name) that was running when the exception was raised."""
    name = None
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_filename == "<stub cell>" and code.co_name != "<module>":
            name = code.co_name
        tb = tb.tb_next
    return name


def _innermost_code(tb):
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code if tb is not None else None


def _snapshot(modules: list[str]) -> dict[str, tuple[int, dict[str, tuple[int, int]]]]:
    """The functions and classes of the course's check modules, and the builtins: what a student's code
    must not replace. (module name: (id of the module, {name: (id, id of its code)}))"""
    import builtins
    import types

    def kept(value) -> bool:
        return isinstance(value, (types.FunctionType, types.BuiltinFunctionType, type))

    shot = {}
    for name, module in [("builtins", builtins)] + [(m, sys.modules.get(m)) for m in modules]:
        members = vars(module) if module is not None else {}
        shot[name] = (id(module), {k: (id(v), id(getattr(v, "__code__", None))) for k, v in members.items() if kept(v)})
    return shot


def _tampered(before: dict, after: dict) -> list[str]:
    """What was replaced between two snapshots (new names may appear: a check may import more)."""
    changed = []
    for module, (module_id, members) in before.items():
        if after[module][0] != module_id:
            changed.append(module)
            continue
        changed.extend(f"{module}.{k}" for k, v in members.items() if after[module][1].get(k) != v)
    return changed


def _students_exception(err: BaseException, call_code) -> BaseException | None:
    """The exception the student's function raised when the check called it through `course.checks.call`,
    if the exception `err` that ended the check comes from one (directly, or re-raised with a diagnosis)."""
    seen, todo = set(), [err]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        cause = e.__cause__
        if (_innermost_code(e.__traceback__) is call_code and isinstance(cause, Exception)
                and _cell_line(cause.__traceback__) is not None):
            return cause
        todo.extend([e.__cause__, e.__context__])
    return None


def _exercise(payload: dict, channel: int, limits: Limits) -> int:
    """The child: the chapter's imports, the student's stub, the repository's check; one verdict on `channel`."""
    nonce, write, dumps = payload.pop("nonce"), os.write, json.dumps  # held here, before any student code runs
    verdict = {"status": "error", "message": "the grader's child process failed before running the exercise"}
    written = []

    def report(status: str, message: str) -> None:
        if not written:
            written.append(True)
            write(channel, (dumps({"nonce": nonce, "status": status, "message": message}) + "\n").encode())

    _set_limits(limits, payload.get("cpu_s", 0))
    sys.argv = [sys.argv[0]]
    sys.path.insert(0, str(ROOT))  # the course's `course` package: the checks and what they import
    sys.modules["solutions"] = None  # type: ignore[assignment]  # a stub must not import the reference solutions
    import course.checks as checks
    from course.checks import ExerciseFailed, NotImplementedYet

    call_code = checks.call.__code__
    check_modules = ["course.checks"]
    for statement in top_level_imports(payload["check"]):  # the chapter's check module, loaded before the stub
        for node in ast.parse(statement).body:
            module = getattr(node, "module", None) or (node.names[0].name if isinstance(node, ast.Import) else None)
            if module and module.startswith("course.checks"):
                try:
                    __import__(module)
                    check_modules.append(module)
                except Exception:  # noqa: BLE001 - the check cell then says what is wrong
                    pass
    before = _snapshot(check_modules)

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
    memory_note = f" (the memory limit is {limits.max_memory_mb} MB)" if limits.max_memory_mb else ""
    out = _Capped()
    real_stdout, real_stderr = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = out
    try:
        stub = _ipython_to_python(payload["stub"])
        used = set()  # the names the cell uses (the body of a %%time cell too: its magic line left out)
        for tree in (_parse_cell(stub), _parse_cell(payload["stub"])):
            used |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} if tree is not None else set()
        for statement in payload.get("imports", []):  # the chapter's imports that the cell relies on
            names = imported_names(statement)
            if "*" in names or names & used:
                try:
                    exec(compile(statement, "<chapter imports>", "exec"), namespace)
                except Exception:  # noqa: BLE001 - a module the grader's machine lacks: the cell then says so
                    pass
        wanted = used - set(defined_names(stub))
        if payload.get("earlier") and wanted:  # the earlier exercises' functions the cell calls (the references)
            references: dict = {"__name__": "earlier_exercises"}
            try:
                exec(compile(payload["earlier"], "<earlier exercises>", "exec"), references)
            except Exception:  # noqa: BLE001 - never the student's fault
                references = {}
            for name in wanted:
                if callable(references.get(name)) and getattr(references[name], "__module__", "") == "earlier_exercises":
                    namespace[name] = references[name]
        try:
            exec(compile(stub, "<stub cell>", "exec"), namespace)
        except BaseException as err:  # SystemExit and KeyboardInterrupt too: the student's code ended early
            line = err.lineno if isinstance(err, SyntaxError) else _cell_line(err.__traceback__)
            where = f" (line {line} of the cell)" if line else ""
            note = memory_note if isinstance(err, MemoryError) else ""
            report("error", f"your cell raised {type(err).__name__}{where}" + (f": {err}" if str(err) else "") + note)
            return 0
        try:
            exec(compile(payload["check"], "<check cell>", "exec"), namespace)
        except NotImplementedYet as err:
            report("fail", str(err))
            return 0
        except ExerciseFailed as err:
            cause = _students_exception(err, call_code)
            if cause is None:  # the check's diagnosis of what the code returned
                report("fail", str(err))
                return 0
            # the student's function raised when the check called it: an error, named, with its line
            line = _cell_line(cause.__traceback__)
            note = memory_note if isinstance(cause, MemoryError) else ""
            if _innermost_code(err.__traceback__) is call_code:  # passed on as it was
                name = _cell_function(cause.__traceback__) or "your function"
                report("error", f"`{name}` raised {type(cause).__name__} (line {line} of the cell) when the check "
                                f"called it: {cause}{note}")
            else:  # the check added a diagnosis: keep it
                report("error", f"{err} (raised at line {line} of the cell){note}")
            return 0
        except BaseException as err:
            line = _cell_line(err.__traceback__)
            if line is not None:
                name = _cell_function(err.__traceback__) or "your function"
                note = memory_note if isinstance(err, MemoryError) else ""
                report("error", f"`{name}` raised {type(err).__name__} (line {line} of the cell) when the check "
                                f"called it: {err}{note}")
            elif isinstance(err, NameError):
                report("error", f"the check could not find your code: {err} (was the function renamed, "
                                "or the cell emptied?)")
            else:
                report("error", f"the check crashed on what your code returned: {type(err).__name__}: {err}")
            return 0
        replaced = _tampered(before, _snapshot(check_modules))
        if replaced:
            report("error", f"your cell replaced {', '.join(replaced[:3])} (the course's checks or Python's "
                            "builtins): no verdict")
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
            if _without_imports(source) == _without_imports(ex.stub):
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
    max_memory_mb: int = 4096,
    max_cpu_s: float = 0.0,
    max_processes: int = 64,
    progress=print,
) -> list[Result]:
    course = course_exercises()
    students = student_dirs(submissions)
    if chapters is None:  # the chapters somebody handed in
        chapters = [c for c in course if any(find_notebook(s, c) for s in students)]
    env = child_environment(jobs)
    limits = Limits(timeout=timeout, max_file_mb=max_file_mb, max_memory_mb=max_memory_mb, max_cpu_s=max_cpu_s,
                    max_processes=max_processes)

    def work(student: Path, item) -> Result:
        ex, todo = item
        if isinstance(todo, Result):
            return todo
        source, note = todo
        t0 = time.perf_counter()
        status, message = run_exercise(source, ex.check, env=env, limits=limits, imports=ex.imports,
                                       earlier=earlier_functions(ex))
        flags = review_flags(source)
        notes = [note] if note else []
        if flags:
            notes.append(f"review: the cell uses {', '.join(flags)}")
        if notes:
            message = one_line(f"{message} " + " ".join(f"[{n}]" for n in notes), MESSAGE_CHARS + 200)
        return Result(student.name, ex.chapter, ex.label, status, message, time.perf_counter() - t0)

    results: list[Result] = []
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        start = time.perf_counter()
        queued = [(s, [pool.submit(work, s, item) for item in plan_student(s, chapters, course)]) for s in students]
        for student, futures in queued:  # every student's exercises are queued at once; reported in order
            mine = [f.result() for f in futures]
            results.extend(mine)
            passed = sum(r.status == "pass" for r in mine)
            progress(f"{student.name}: {passed}/{len(mine)} passed ({time.perf_counter() - start:.0f} s since the start)")
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
    if argv[:1] == ["--run-one"]:  # the process that runs one exercise (it reads it on its standard input)
        return _run_one()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("submissions", type=Path, help="a folder with one sub-folder per student")
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "grades", help="where the reports go")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per exercise (default 60)")
    parser.add_argument("--jobs", "-j", type=int, default=1, help="exercises run at the same time (default 1)")
    parser.add_argument("--chapters", help="comma-separated chapter numbers, e.g. 00,01 (default: those handed in)")
    parser.add_argument("--max-file-mb", type=int, default=64, help="largest file the student's code may write (0: no limit)")
    parser.add_argument("--max-memory-mb", type=int, default=4096,
                        help="address space of one exercise's process, in MB (default 4096; 0: no limit)")
    parser.add_argument("--max-cpu-s", type=float, default=0.0,
                        help="CPU seconds of one exercise's process (default: the timeout times its threads)")
    parser.add_argument("--max-processes", type=int, default=64,
                        help="processes one exercise may start (default 64; 0: no limit)")
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
    results = grade(args.submissions, timeout=args.timeout, jobs=args.jobs, chapters=chapters, max_file_mb=args.max_file_mb,
                    max_memory_mb=args.max_memory_mb, max_cpu_s=args.max_cpu_s, max_processes=args.max_processes)
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
