"""Write an nbgrader course folder from the chapters: one assignment per chapter.

    python tools/nbgrader_export.py [--out _build/nbgrader] [--chapters 00,01] [--points 1] [--venv DIR]
    make nbgrader [CHAPTERS=00,01] [NBGRADER_OUT=_build/nbgrader]    (with --venv _build/nbgrader-venv)

What it writes is an nbgrader *course directory* (docs/GRADING.md, "Using nbgrader"):

    OUT/nbgrader_config.py                              written once; yours to edit afterwards
    OUT/source/00_introduction/00_introduction.ipynb    assignment "00_introduction", one notebook
    OUT/source/01_tokenization/01_tokenization.ipynb
    ...

Each chapter is read from its MyST source (notebooks/NN_topic.md) and each of its
exercises becomes two nbgrader cells:

* the ``stub`` cell becomes an autograded *answer* cell (grade_id ``<label>-answer``)
  holding the reference solution from solutions/chNN_topic.py between
  ``### BEGIN SOLUTION`` and ``### END SOLUTION``, inside the stub's own function,
  so that ``nbgrader generate_assignment`` gives the students the course's blank
  stub again. Whatever the reference needs from its module (an import, a helper
  function) goes inside that region too, so the answer stands on its own;
* the ``check`` cell becomes a locked *test* cell (grade_id = the exercise's
  label, e.g. ``ex-01-merge``) worth ``--points`` points (1 by default).

The markdown cell that holds the exercise's box is read-only (nbgrader restores it
when grading). Everything else stays an ordinary cell. Teacher-only material is
left out: the cells tagged ``solution``, the solution boxes (``{solution-start}``
... ``{solution-end}``) and the Colab setup cell (tagged ``course-setup``). As in
the student edition (tools/make_student.py), each test cell is tagged
``raises-exception`` and followed by the cell that hands the chapter the reference
solution while the student's function is still blank, so Run All goes to the end.

A chapter that reads a file of the repository through ``"../path"`` gets a copy of
that file inside its assignment folder (and reads ``"path"``), so that the
released and the autograded notebooks find it.

The check cells import ``course.checks``: run nbgrader with the course importable
(``pip install -e .`` of this repository in nbgrader's environment, or PYTHONPATH);
the written nbgrader_config.py adds this checkout to PYTHONPATH when it is not.
``--venv DIR`` also makes such an environment: nbgrader (NBGRADER_PIN) in a virtual
environment that sees the packages of the Python running this tool.
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
from dataclasses import dataclass
from pathlib import Path

import jupytext
import nbformat
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SOLUTIONS = ROOT / "solutions"
DEFAULT_OUT = ROOT / "_build" / "nbgrader"

NBGRADER_PIN = "nbgrader==0.9.6"  # the release tests/test_nbgrader.py runs the round trip with
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
CONFIG_MARKER = "# Written by tools/nbgrader_export.py"
EXERCISE_BOX = re.compile(r"```\{exercise\}[^\n]*\n:label: (\S+)")
SOLUTION_BOX = re.compile(r"`{3,}\{solution-start\}.*?`{3,}\{solution-end\}\s*`{3,}[ \t]*\n?", re.S)
SOLUTION_IMPORT = re.compile(r"^from solutions\.(ch\d\d_[a-z0-9_]+) import (\w+)\s*(?:#.*)?$", re.M)
PARENT_PATH = re.compile(r"""(["'])\.\./([\w./-]+)\1""")
TEACHER_ONLY_TAGS = {"solution", "course-setup"}


class ExportError(Exception):
    """A chapter does not follow the exercise convention this export relies on (CONTRIBUTING.md)."""


def _tags(cell: NotebookNode) -> list[str]:
    tags = cell.get("metadata", {}).get("tags", [])
    return list(tags) if isinstance(tags, list) else []


def nbgrader_metadata(grade_id: str, *, grade: bool, solution: bool, locked: bool, points: float | None = None) -> dict:
    """The ``nbgrader`` cell metadata (schema version 3) of an answer, test or read-only cell."""
    meta = {
        "grade": grade,
        "grade_id": grade_id,
        "locked": locked,
        "schema_version": 3,
        "solution": solution,
        "task": False,
    }
    if grade:
        meta["points"] = points
    return meta


# ---------------------------------------------------------------------------
# The reference solution, placed inside the stub's function


def _lines(source: str, node: ast.stmt) -> list[str]:
    """The statement as written, with its decorators."""
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return source.splitlines()[first - 1 : node.end_lineno]


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _reindent(lines: list[str], old: str, new: str) -> list[str]:
    """Lines indented by ``old`` re-indented by ``new`` (blank lines stay blank)."""
    out = []
    for line in lines:
        if not line.strip():
            out.append("")
        elif line.startswith(old):
            out.append(new + line[len(old) :])
        else:  # a continuation line of a multi-line string, less indented: leave it alone
            out.append(line)
    return out


def _function(tree: ast.Module, name: str) -> ast.FunctionDef | None:
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            return node  # type: ignore[return-value]
    return None


def _body_lines(source: str, fn: ast.FunctionDef) -> tuple[int, list[str]]:
    """The function's body as written, comments included: (index of its first line in the
    source, its lines), starting at the first statement or at the comment lines just above it."""
    lines = source.splitlines()
    start = fn.body[0].lineno - 1
    while start - 1 > fn.lineno - 1 and lines[start - 1].strip().startswith("#"):
        start -= 1
    return start, lines[start : fn.end_lineno]  # type: ignore[attr-defined]


def _module_names(tree: ast.Module) -> dict[str, ast.stmt]:
    """Top-level name -> the statement of the solution module that defines it."""
    names: dict[str, ast.stmt] = {}
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                names[(alias.asname or alias.name).split(".")[0]] = node
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Name):
                        names[sub.id] = node
    return names


def _used_names(nodes: list[ast.stmt]) -> set[str]:
    return {n.id for stmt in nodes for n in ast.walk(stmt) if isinstance(n, ast.Name)}


def _single_import(node: ast.Import | ast.ImportFrom, name: str) -> str:
    """``import math`` / ``from torch import Tensor``: the one name of an import statement that is needed."""
    alias = next(a for a in node.names if (a.asname or a.name).split(".")[0] == name)
    if isinstance(node, ast.Import):
        return ast.unparse(ast.Import(names=[alias]))
    return ast.unparse(ast.ImportFrom(module=node.module, names=[alias], level=node.level))


def _needed_definitions(solution: str, tree: ast.Module, fn: ast.FunctionDef, used: set[str], available: set[str]) -> list[str]:
    """Lines defining the names in ``used`` that come from ``fn``'s module and that the stub does not
    provide: imports first, then helper functions, classes and constants (in the module's order)."""
    names = _module_names(tree)
    wanted: list[str] = []
    todo = sorted(used)
    while todo:
        name = todo.pop()
        if name in wanted or name in available or name == fn.name or name not in names:
            continue
        wanted.append(name)
        node = names[name]
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            todo.extend(sorted(_used_names([node])))  # a helper's own needs
    imports: list[str] = []
    others: list[str] = []
    for node in tree.body:  # in the module's order: a helper is defined before it is used
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imports += [_single_import(node, n) for n in wanted if names[n] is node]
        elif node in [names[n] for n in wanted]:
            others.extend(_lines(solution, node) + [""])  # a blank line after each definition
    return imports + others


def _signature(fn: ast.FunctionDef) -> str:
    """The parameters as written, without annotations: ``x, *, lr, base=10000.0``."""
    args = copy.deepcopy(fn.args)
    for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
        if arg is not None:
            arg.annotation = None
    return ast.unparse(args)


def _forwarding_call(fn: ast.FunctionDef) -> str:
    """``name(a, b, *rest, lr=lr, **kw)``: a call passing a function's own parameters on."""
    a = fn.args
    parts = [arg.arg for arg in [*a.posonlyargs, *a.args]]
    parts += [f"*{a.vararg.arg}"] if a.vararg else []
    parts += [f"{arg.arg}={arg.arg}" for arg in a.kwonlyargs]
    parts += [f"**{a.kwarg.arg}"] if a.kwarg else []
    return f"{fn.name}({', '.join(parts)})"


def _reference_lines(solution: str, ref: ast.FunctionDef, needed: list[str]) -> list[str]:
    """What goes between the markers, unindented: the reference's body (docstring, then ``needed``, then
    its code), or, for a decorated reference, the whole decorated function and a call to it."""
    source_lines = solution.splitlines()
    if ref.decorator_list:  # `@torch.no_grad()` must stay on the function that runs
        lines = _lines(solution, ref)
        return needed + _reindent(lines, _indent(lines[0]), "") + ["", f"return {_forwarding_call(ref)}"]
    start, lines = _body_lines(solution, ref)
    lines = _reindent(lines, _indent(source_lines[ref.body[0].lineno - 1]), "")
    split = ref.body[0].end_lineno - start if ast.get_docstring(ref, clean=False) is not None else 0  # type: ignore[operator]
    return lines[:split] + needed + lines[split:]


def answer_source(stub: str, solution_path: Path, name: str) -> str:
    """The stub cell with its blank body replaced by the reference solution of ``name`` between the markers."""
    stub_tree = ast.parse(stub)
    stub_fn = _function(stub_tree, name)
    if stub_fn is None:
        raise ExportError(f"the stub cell does not define `{name}`:\n{stub}")
    body = list(stub_fn.body)
    keep_docstring = ast.get_docstring(stub_fn, clean=False) is not None
    rest = body[1:] if keep_docstring else body
    if len(rest) != 1 or ast.unparse(rest[0]) not in ("raise NotImplementedError", "raise NotImplementedError()"):
        raise ExportError(f"the stub of `{name}` is not a blank stub (its body should be `raise NotImplementedError`):\n{stub}")

    solution = solution_path.read_text(encoding="utf-8")
    tree = ast.parse(solution)
    ref = _function(tree, name)
    where = solution_path.relative_to(ROOT) if ROOT in solution_path.parents else solution_path
    if ref is None:
        raise ExportError(f"{where} has no function `{name}`")
    if _signature(ref) != _signature(stub_fn):
        raise ExportError(f"the stub says `def {name}({_signature(stub_fn)})` but {where} has `def {name}({_signature(ref)})`")

    stub_lines = stub.splitlines()
    if keep_docstring:
        cut = body[0].end_lineno  # after the stub's docstring
    else:
        cut = rest[0].lineno - 1
        while cut - 1 > stub_fn.lineno - 1 and stub_lines[cut - 1].strip().startswith("#"):
            cut -= 1  # the "# YOUR CODE HERE" comment goes too
    indent = _indent(stub_lines[rest[0].lineno - 1])

    available = {n for n, node in _module_names(stub_tree).items() if isinstance(node, (ast.Import, ast.ImportFrom))}
    used = _used_names([ref]) if ref.decorator_list else _used_names(ref.body)
    needed = _needed_definitions(solution, tree, ref, used, available)
    solution_lines = _reindent(_reference_lines(solution, ref, needed), "", indent)
    after = stub_lines[stub_fn.end_lineno :]  # type: ignore[attr-defined]
    lines = stub_lines[:cut] + [indent + BEGIN] + solution_lines + [indent + END] + after
    return "\n".join(lines).rstrip()


# ---------------------------------------------------------------------------
# A chapter as an nbgrader source notebook


@dataclass
class Exported:
    notebook: NotebookNode
    exercises: list[str]  # the labels, in order
    files: dict[str, Path]  # path inside the assignment folder -> the repository's file


def _fallback_cell(module: str, name: str) -> NotebookNode:
    source = (
        "# if the stub above is still blank, the rest of the chapter uses the reference solution (it says so)\n"
        "from course.checks.reference import reference_if_blank\n\n"
        f"{name} = reference_if_blank({name}, {module!r})"
    )
    return new_code_cell(source, metadata={"tags": ["reference-fallback"]})


def _local_files(cell: NotebookNode, files: dict[str, Path]) -> None:
    """Point ``"../benchmarks/x.json"`` at a copy inside the assignment folder (recorded in ``files``)."""
    def local(match: re.Match) -> str:
        target = (ROOT / match.group(2)).resolve()
        if ROOT not in target.parents or not target.is_file():
            return match.group(0)  # not a file of the repository: leave it alone
        files[match.group(2)] = target
        return f"{match.group(1)}{match.group(2)}{match.group(1)}"

    cell.source = PARENT_PATH.sub(local, cell.source)


def export_chapter(md: Path, *, points: float = 1) -> Exported:
    """The nbgrader source notebook of one chapter (its MyST source ``md``)."""
    nb = jupytext.read(md)
    labels = EXERCISE_BOX.findall("\n".join(c.source for c in nb.cells if c.cell_type == "markdown"))
    cells: list[NotebookNode] = []
    files: dict[str, Path] = {}
    done: list[str] = []
    stub_index: int | None = None  # where the current exercise's answer cell sits in `cells`
    reference: tuple[str, str] | None = None  # (module, name) from its solution cell

    def where() -> str:
        return f"{md.name}, exercise {len(done) + 1}"

    for cell in nb.cells:
        tags = _tags(cell)
        if cell.cell_type == "code" and "solution" in tags:
            found = SOLUTION_IMPORT.search(cell.source)
            if stub_index is None or found is None:
                raise ExportError(f"{where()}: a solution cell must follow a stub and read "
                                  f"`from solutions.chNN_topic import name`, got:\n{cell.source}")
            reference = found.group(1), found.group(2)
            continue
        if TEACHER_ONLY_TAGS & set(tags):
            continue
        if cell.cell_type == "markdown" and "{solution-start}" in cell.source:
            cell.source = SOLUTION_BOX.sub("", cell.source).strip()
            if not cell.source:
                continue
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            _local_files(cell, files)
        if cell.cell_type == "code" and "stub" in tags:
            if stub_index is not None:
                raise ExportError(f"{where()}: a new stub starts before the previous exercise had its check")
            stub_index = len(cells)
        elif cell.cell_type == "code" and "check" in tags:
            if stub_index is None or reference is None:
                raise ExportError(f"{where()}: a check cell without a stub and a solution cell before it")
            if len(done) >= len(labels):
                raise ExportError(f"{md.name}: more exercises (stub/check cells) than ```{{exercise}} boxes with a :label:")
            label = labels[len(done)]
            module, name = reference
            stub = cells[stub_index]
            try:
                stub.source = answer_source(stub.source, SOLUTIONS / f"{module}.py", name)
            except ExportError as err:
                raise ExportError(f"{where()} ({label}): {err}") from None
            stub.metadata["nbgrader"] = nbgrader_metadata(f"{label}-answer", grade=False, solution=True, locked=False)
            cell.metadata["tags"] = [*tags, "raises-exception"]  # a failing check shows its diagnosis; Run All goes on
            cell.metadata["nbgrader"] = nbgrader_metadata(label, grade=True, solution=False, locked=True, points=points)
            cells.append(cell)
            cells.append(_fallback_cell(module, name))
            done.append(label)
            stub_index, reference = None, None
            continue
        cells.append(cell)
    if stub_index is not None:
        raise ExportError(f"{where()}: the last stub has no check cell")
    if len(done) != len(labels):
        raise ExportError(f"{md.name}: {len(labels)} exercise boxes but {len(done)} exercises (stub/solution/check cells)")

    for label in done:  # the exercise's instructions: read-only, restored by nbgrader when it grades
        box = next(c for c in cells if c.cell_type == "markdown" and re.search(rf":label: {re.escape(label)}\s", c.source + "\n"))
        if "nbgrader" not in box.metadata:
            box.metadata["nbgrader"] = nbgrader_metadata(f"{label}-instructions", grade=False, solution=False, locked=True)

    nb.cells = cells
    nb.metadata.pop("jupytext", None)  # a plain notebook: no pairing with a .md in the course folder
    nb.metadata.setdefault("kernelspec", {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"})
    nb.metadata["kernelspec"].setdefault("language", "python")
    nbformat.validate(nb)
    return Exported(nb, done, files)


# ---------------------------------------------------------------------------
# The course folder


def config_text() -> str:
    return f'''{CONFIG_MARKER} (rewritten by it while this line is here).
# nbgrader reads this file from the folder you run it in: run nbgrader in this folder.
import importlib.util
import os

c = get_config()  # noqa: F821 (nbgrader defines it)
c.CourseDirectory.course_id = "llm-course"

# The released stubs read `raise NotImplementedError`, exactly as in the course (nbgrader's
# default stub calls it: `raise NotImplementedError()`), so `make grade` can grade them too.
c.ClearSolutions.code_stub = {{"python": "# YOUR CODE HERE\\nraise NotImplementedError"}}

# Some chapters train small models: a cell may take minutes on a CPU (nbgrader's default is 30 s).
c.Execute.timeout = 900

# nbgrader gives 0 points to a test cell that writes anything to stderr; the course's checks
# fail by raising, so a warning printed by a student's (correct) code must not cost the points.
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = r"Warning"

# The check cells import `course.checks`: when the course is not installed (pip install -e .),
# the kernels that nbgrader starts find it in this checkout.
COURSE_REPOSITORY = {str(ROOT)!r}
if importlib.util.find_spec("course") is None and os.path.isdir(os.path.join(COURSE_REPOSITORY, "course")):
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (COURSE_REPOSITORY, os.environ.get("PYTHONPATH")) if p)
'''


def chapter_sources() -> dict[str, Path]:
    """{"00": notebooks/00_introduction.md, ...}"""
    return {md.stem[:2]: md for md in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.md"))}


def write_course(out: Path, chapters: list[Path], *, points: float = 1) -> list[Path]:
    """Write OUT/source/<chapter>/<chapter>.ipynb for each chapter (and OUT/nbgrader_config.py); the notebooks written."""
    written = []
    exported = {md.stem: export_chapter(md, points=points) for md in chapters}  # every chapter first: fail before writing
    for stem, ex in exported.items():
        folder = out / "source" / stem
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        path = folder / f"{stem}.ipynb"
        nbformat.write(ex.notebook, path)
        for rel, src in ex.files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, folder / rel)
        written.append(path)
    config = out / "nbgrader_config.py"
    if not config.exists() or config.read_text(encoding="utf-8").startswith(CONFIG_MARKER):
        config.write_text(config_text(), encoding="utf-8")
    else:
        print(f"kept {config} (it is not the one this tool wrote)")
    return written


# ---------------------------------------------------------------------------
# An environment to run nbgrader in


class NbgraderInstallError(RuntimeError):
    """pip could not install nbgrader (the message is pip's)."""


def venv_bin(path: Path) -> Path:
    return path / ("Scripts" if os.name == "nt" else "bin")


def nbgrader_venv(path: Path) -> Path:
    """A virtual environment at ``path`` with nbgrader, layered on the Python running this (the course's);
    its bin folder. Made (a few seconds) when missing, or when it was made for another Python or release.

    It holds only nbgrader and what nbgrader adds (notebook, alembic, mako, rapidfuzz); a ``.pth``
    file makes the running environment's packages (the course, NumPy, PyTorch, Jupyter) visible in
    it. That environment itself is not changed: nbgrader would add its JupyterLab extension to it.
    """
    paths = sysconfig.get_paths()
    layered = sorted({paths["purelib"], paths["platlib"]})
    want = "\n".join([NBGRADER_PIN, sys.executable, *layered])
    stamp = path / "installed.txt"
    if stamp.is_file() and stamp.read_text(encoding="utf-8") == want:
        return venv_bin(path)
    shutil.rmtree(path, ignore_errors=True)
    venv.create(path, with_pip=False, clear=True)
    python = venv_bin(path) / ("python.exe" if os.name == "nt" else "python")
    site_packages = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   capture_output=True, text=True, check=True).stdout.strip()
    # `import site; site.addsitedir(...)`: the .pth files there count too (the editable install of the course)
    lines = [f"import site; site.addsitedir({p!r})" for p in layered]
    Path(site_packages, "_llm_course_environment.pth").write_text("\n".join(lines) + "\n", encoding="utf-8")
    pip = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", NBGRADER_PIN],
                         capture_output=True, text=True)
    if pip.returncode != 0:
        shutil.rmtree(path, ignore_errors=True)
        raise NbgraderInstallError(f"pip could not install {NBGRADER_PIN}: {(pip.stderr or pip.stdout).strip()[-1500:]}")
    stamp.write_text(want, encoding="utf-8")
    return venv_bin(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the nbgrader course folder (default _build/nbgrader)")
    parser.add_argument("--chapters", help="comma-separated chapter numbers, e.g. 00,01 (default: every chapter)")
    parser.add_argument("--points", type=float, default=1.0, help="points per exercise (default 1)")
    parser.add_argument("--venv", type=Path, help="also make this virtual environment with nbgrader in it "
                        f"({NBGRADER_PIN}, on top of this Python's packages), e.g. _build/nbgrader-venv")
    args = parser.parse_args(argv)
    known = chapter_sources()
    if args.chapters:
        wanted = [c.strip()[:2] for c in args.chapters.split(",") if c.strip()]
        unknown = [c for c in wanted if c not in known]
        if unknown or not wanted:
            asked = ", ".join(unknown) if unknown else repr(args.chapters)
            parser.error(f"no chapter {asked}; the chapters are {', '.join(known)}")
    else:
        wanted = list(known)
    if args.points <= 0:
        parser.error("--points must be positive")
    points = int(args.points) if args.points.is_integer() else args.points
    out: Path = args.out.resolve()
    inside_repo = out == ROOT or ROOT in out.parents
    if inside_repo and (ROOT / "_build") not in out.parents:
        parser.error(f"the nbgrader folder goes outside the repository or under _build/, not to {out}")
    try:
        written = write_course(out, [known[c] for c in wanted], points=points)
    except ExportError as err:
        print(f"nbgrader_export: {err}", file=sys.stderr)
        return 1
    for path in written:
        print(f"  {path.relative_to(out)}")
    print(f"nbgrader course folder: {out} ({len(written)} assignment(s))")
    activate = ""
    if args.venv is not None:
        try:
            bin_dir = nbgrader_venv(args.venv.resolve())
        except NbgraderInstallError as err:
            print(f"nbgrader_export: {err}", file=sys.stderr)
            return 1
        print(f"nbgrader environment: {args.venv.resolve()} ({NBGRADER_PIN})")
        activate = f"source {bin_dir / 'activate'} && "
    print(f"Next: {activate}cd {out} && nbgrader generate_assignment {written[0].parent.name}   "
          "(docs/GRADING.md, 'Using nbgrader')")
    return 0


if __name__ == "__main__":
    sys.exit(main())
