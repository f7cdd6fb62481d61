"""Write the student edition: every chapter with its solutions removed and its outputs cleared.

    python tools/make_student.py --out _build/student

The edition holds notebooks/ (.ipynb and the .md source, both without
solutions), the `course` package (checks included: the exercises still check
themselves) and pyproject.toml, README.md and environment.yml, but not the
`solutions` package. Students fill in the `stub` cells; the `check` cell after
each one tells them what is wrong.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

import jupytext

ROOT = Path(__file__).resolve().parent.parent
SOLUTION_BLOCK = re.compile(r"`{3,}\{solution-start\}.*?`{3,}\{solution-end\}\s*`{3,}[ \t]*\n?", re.S)


def student_notebook(md: Path):
    nb = jupytext.read(md)
    kept = []
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.cell_type == "code" and "solution" in tags:
            continue
        if cell.cell_type == "markdown" and "{solution-start}" in cell.source:
            cell.source = SOLUTION_BLOCK.sub("", cell.source).strip()
            if not cell.source:
                continue
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        kept.append(cell)
    nb.cells = kept
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "student")
    args = parser.parse_args(argv)
    out: Path = args.out.resolve()
    inside_repo = out == ROOT or ROOT in out.parents or out in ROOT.parents
    if inside_repo and (ROOT / "_build") not in out.parents:
        raise SystemExit(f"the student edition goes outside the repository or under _build/, not to {out}")
    if out.exists():
        shutil.rmtree(out)
    (out / "notebooks").mkdir(parents=True)
    count = 0
    for md in sorted((ROOT / "notebooks").glob("[0-9]*.md")):
        nb = student_notebook(md)
        jupytext.write(nb, out / "notebooks" / (md.stem + ".ipynb"), fmt="ipynb")
        jupytext.write(nb, out / "notebooks" / md.name, fmt="md:myst")
        count += 1
    shutil.copy2(ROOT / "notebooks" / "jupytext.toml", out / "notebooks" / "jupytext.toml")
    shutil.copytree(ROOT / "course", out / "course", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md", "environment.yml", "Makefile"):
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, out / name)
    print(f"student edition: {count} chapter(s) in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
