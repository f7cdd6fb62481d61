"""Execute chapters: read each MyST source (notebooks/NN_topic.md), run it top to bottom
on a fresh kernel, and write the paired, executed notebooks/NN_topic.ipynb.

    python tools/execute_notebooks.py                      # every chapter
    python tools/execute_notebooks.py notebooks/03_*.md    # some chapters

The .ipynb is always rebuilt from the .md (no stale outputs survive), with the
notebook folder as the working directory, exactly as nbval runs it. A cell that
raises stops the run with the cell's source and error. Numbers in the prose
(`{eval}` inline expressions, tools/inline_values.py) are evaluated at their
markdown cell's place in the run, as JupyterLab does, and stored in that cell's
metadata; an expression that raises stops the run too.

Chapters are executed under the ``reference`` CPU kernel configuration
(tools/kernels.py), which `make test` never uses: the tests re-execute them under
other kernels, so an output that depends on the CPU fails on the author's own
machine. The configuration, as the kernel saw it, is recorded in the notebook's
metadata (``course.kernels``) and checked by tests/test_pairing.py.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
sys.path.insert(0, str(ROOT / "tools"))
import inline_values  # noqa: E402  (tools/inline_values.py)
import kernels  # noqa: E402  (tools/kernels.py)


class InlineValuesClient(NotebookClient):
    """A NotebookClient that also evaluates each markdown cell's `{eval}` expressions, in order."""

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        if cell.cell_type != "markdown":
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        cell.metadata.pop("user_expressions", None)
        exprs = inline_values.expressions(cell.source)
        if not exprs:
            return cell
        # silent and without history: the code cells' execution counts stay as they were
        msg_id = self.kc.execute("", silent=True, store_history=False,
                                 user_expressions={str(i): e for i, e in enumerate(exprs)})
        reply = await self.async_wait_for_reply(msg_id, cell)
        results = reply["content"]["user_expressions"]
        cell.metadata["user_expressions"] = [{"expression": e, "result": results[str(i)]} for i, e in enumerate(exprs)]
        for entry in cell.metadata["user_expressions"]:
            try:
                inline_values.shown(entry["result"])
            except ValueError as err:
                raise CellExecutionError(f"markdown cell {cell_index}: {{eval}}`{entry['expression']}` failed: {err}",
                                         "", "") from None
        return cell


def stable_ids(nb) -> None:
    """Cell ids from position and source: re-executing an unchanged chapter changes no id."""
    for i, cell in enumerate(nb.cells):
        digest = hashlib.sha1(cell.source.encode("utf-8")).hexdigest()[:8]
        cell.id = f"c{i:03d}-{digest}"


def execute(md: Path, timeout: int = 1200, record: dict | None = None) -> float:
    md = md.resolve()
    if md.suffix != ".md":
        raise SystemExit(f"{md}: give the .md source, not {md.suffix}")
    nb = jupytext.read(md)
    stable_ids(nb)
    # ipykernel's own kernelspec: JupyterLab writes it into any notebook it runs, so a
    # notebook stored with another display name shows as modified as soon as it opens
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    client = InlineValuesClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(md.parent)}},
        record_timing=False,
    )
    start = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - start
    out = md.with_suffix(".ipynb")
    # keep the jupytext pairing information and nothing machine specific
    nb.metadata.pop("widgets", None)
    if record is not None:
        nb.metadata["course"] = {"kernels": record}
    jupytext.write(nb, out, fmt="ipynb")
    nbformat.validate(nbformat.read(out, as_version=4))
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path, help="MyST sources (default: all of notebooks/*.md)")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per cell")
    parser.add_argument("--kernels", default="reference",
                        choices=sorted(kernels.PROFILES),
                        help="CPU kernel configuration (tools/kernels.py); committed notebooks use 'reference'")
    args = parser.parse_args(argv)
    env = kernels.apply(args.kernels)  # inherited by every kernel started below
    os.environ["COURSE_NO_PROGRESS"] = "1"  # no progress bars in the stored copies: they would show "0%" (course.train)
    seen = kernels.observed()
    record = {"profile": args.kernels, **env, "cpu_capability": seen["cpu_capability"],
              "torch_threads": seen["torch_threads"]}
    print(f"kernels: {args.kernels} {env} -> PyTorch sees {seen['cpu_capability']}, "
          f"{seen['torch_threads']} threads", flush=True)
    paths = args.notebooks or sorted(NOTEBOOKS.glob("[0-9A-Z]*.md"))
    total = 0.0
    for md in paths:
        print(f"executing {md} ...", flush=True)
        try:
            seconds = execute(Path(md), args.timeout, record)
        except CellExecutionError as err:
            print(f"FAILED: {md}\n{err}", file=sys.stderr)
            return 1
        total += seconds
        print(f"  done in {seconds:.1f} s", flush=True)
    print(f"executed {len(paths)} notebook(s) in {total:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
