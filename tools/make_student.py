"""Write the student edition: every chapter with its solutions removed and its outputs cleared.

    python tools/make_student.py --out _build/student

--out must be a new or empty folder, or an edition this script wrote before (it
holds a `.course-student-edition` file): only then is the folder replaced.

The edition holds notebooks/ (.ipynb and the .md source, both without
solutions), the `course` package (checks included: the exercises still check
themselves), `benchmarks/` (the chapters quote its results) and pyproject.toml,
README.md and environment.yml, but not the
`solutions` package. Students fill in the `stub` cells; the `check` cell after
each one tells them what is wrong.

Run All goes to the end of every chapter, even with every stub blank:

* each check cell is tagged ``raises-exception``, so its diagnosis shows and the
  run goes on (JupyterLab, Jupyter Notebook, nbclient and Jupyter Book honour
  the tag);
* after each check, a cell hands the chapter the student's function, or the
  reference solution with a notice if the stub is still blank
  (`course.checks.reference.reference_if_blank`). The reference solutions ship
  compressed in ``course/checks/_reference.py``: out of plain sight, not secret.
"""

from __future__ import annotations

import argparse
import base64
import re
import shutil
import sys
import zlib
from pathlib import Path

import jupytext
import nbformat
from nbformat.v4 import new_code_cell

ROOT = Path(__file__).resolve().parent.parent
MARKER = ".course-student-edition"  # in every folder this script writes: the only kind of folder it replaces
SOLUTION_BLOCK = re.compile(r"`{3,}\{solution-start\}.*?`{3,}\{solution-end\}\s*`{3,}[ \t]*\n?", re.S)
SOLUTION_IMPORT = re.compile(r"^from solutions\.(ch\d\d_[a-z0-9_]+) import (\w+)", re.M)
FALLBACK_TAG = "reference-fallback"


def fallback_cell(module: str, name: str):
    """The cell after a check: the rest of the chapter gets the student's function, or the reference if blank."""
    source = (
        "# if the stub above is still blank, the rest of the chapter uses the reference solution (it says so)\n"
        "from course.checks.reference import reference_if_blank\n\n"
        f"{name} = reference_if_blank({name}, {module!r})"
    )
    return new_code_cell(source, metadata={"tags": [FALLBACK_TAG]})


def stored_values(md: Path) -> dict[str, list]:
    """{markdown cell source: its stored inline values} from the executed chapter beside ``md``.

    The prose's numbers (`{eval}`, tools/inline_values.py) come from the reference run, as in the
    book: the student edition keeps them, so that JupyterLab shows numbers, not expressions, before
    the student runs anything (running a cell then shows the student's own).
    """
    ipynb = md.with_suffix(".ipynb")
    if not ipynb.is_file():
        return {}
    executed = nbformat.read(ipynb, as_version=4)
    return {c.source: c.metadata["user_expressions"] for c in executed.cells
            if c.cell_type == "markdown" and c.metadata.get("user_expressions")}


def student_notebook(md: Path):
    nb = jupytext.read(md)
    values = stored_values(md)
    kept = []
    pending = None  # (module, name) of the exercise whose solution cell was just removed
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.cell_type == "code" and "solution" in tags:
            found = SOLUTION_IMPORT.search(cell.source)
            if found is None:
                raise ValueError(
                    f"{md.name}: a solution cell must import the reference as `from solutions.chNN_topic import name` "
                    f"(CONTRIBUTING.md), got:\n{cell.source}"
                )
            pending = found.groups()
            continue
        if cell.cell_type == "markdown" and cell.source in values:
            cell.metadata["user_expressions"] = values[cell.source]
        if cell.cell_type == "markdown" and "{solution-start}" in cell.source:
            cell.source = SOLUTION_BLOCK.sub("", cell.source).strip()
            if not cell.source:
                continue
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        kept.append(cell)
        if cell.cell_type == "code" and "check" in tags:
            cell.metadata["tags"] = [*tags, "raises-exception"]  # a failing check shows its diagnosis; Run All goes on
            if pending is not None:
                kept.append(fallback_cell(*pending))
                pending = None
    nb.cells = kept
    return nb


def compressed_solutions() -> str:
    """``course/checks/_reference.py`` for the student edition: every solution module, compressed."""
    lines = [
        '"""Reference solutions, compressed (written by tools/make_student.py; read by course.checks.reference).',
        "",
        "Out of plain sight so that a student does not meet them by accident; not a secret.",
        '"""',
        "",
        "SOURCES = {",
    ]
    for path in sorted((ROOT / "solutions").glob("ch[0-9][0-9]_*.py")):
        packed = base64.b64encode(zlib.compress(path.read_bytes(), 9)).decode("ascii")
        lines.append(f"    {path.stem!r}: {packed!r},")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "student")
    args = parser.parse_args(argv)
    out: Path = args.out.resolve()
    inside_repo = out == ROOT or ROOT in out.parents or out in ROOT.parents
    if inside_repo and (ROOT / "_build") not in out.parents:
        raise SystemExit(f"the student edition goes outside the repository or under _build/, not to {out}")
    if out.exists() and not out.is_dir():
        print(f"make_student: {out} exists and is not a folder: choose another --out", file=sys.stderr)
        return 2
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            print(
                f"make_student: {out} is not empty and is not a student edition written by this script "
                f"(it has no {MARKER} file): nothing was changed. Choose an empty or new folder for --out.",
                file=sys.stderr,
            )
            return 2
        shutil.rmtree(out)  # this script's own previous edition
    (out / "notebooks").mkdir(parents=True)
    (out / MARKER).write_text(
        "Written by tools/make_student.py (make student): the next run replaces this folder and everything in it.\n"
    )
    count = 0
    for md in sorted((ROOT / "notebooks").glob("[0-9]*.md")):
        nb = student_notebook(md)
        jupytext.write(nb, out / "notebooks" / (md.stem + ".ipynb"), fmt="ipynb")
        jupytext.write(nb, out / "notebooks" / md.name, fmt="md:myst")
        count += 1
    shutil.copy2(ROOT / "notebooks" / "jupytext.toml", out / "notebooks" / "jupytext.toml")
    shutil.copytree(ROOT / "course", out / "course", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (out / "course" / "checks" / "_reference.py").write_text(compressed_solutions())
    # the chapters quote the benchmarks' results (benchmarks/results/*.json), and students may rerun them
    shutil.copytree(ROOT / "benchmarks", out / "benchmarks", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md", "environment.yml", "Makefile"):
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, out / name)
    print(f"student edition: {count} chapter(s) in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
