"""nbval for the numbers in the prose: each markdown cell with `{eval}` expressions becomes a test.

nbval runs only code cells. tests/conftest.py inserts, after the code cell that
precedes each markdown cell with inline expressions (tools/inline_values.py), an
item that evaluates the cell's expressions in the same kernel, at the same place
in the run, and compares what they show with what the executed chapter stores:
the prose cannot drift from the code. A markdown cell tagged
``nbval-ignore-output`` (its values depend on the machine: times, trained losses)
is evaluated, so an expression that raises still fails, but not compared.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import inline_values  # noqa: E402  (tools/inline_values.py)


class InlineValues(pytest.Item):
    """The inline expressions of one markdown cell, evaluated in the chapter's kernel."""

    def __init__(self, *, cell, index: int, **kwargs):
        super().__init__(**kwargs)
        self.cell = cell
        self.index = index

    def runtest(self) -> None:
        kernel = self.parent.kernel
        if getattr(self.parent, "timed_out", False) or kernel is None or not kernel.is_alive():
            pytest.skip("the chapter's kernel is not running")
        exprs = inline_values.expressions(self.cell.source)
        expected = inline_values.stored(self.cell)
        msg_id = kernel.kc.execute("", silent=True, store_history=False,
                                   user_expressions={str(i): e for i, e in enumerate(exprs)})
        timeout = self.config.option.nbval_cell_timeout
        while True:
            msg = kernel.get_message(stream="shell", timeout=timeout)
            if msg["parent_header"].get("msg_id") == msg_id:
                break
        kernel.await_idle(msg_id, timeout)
        results = msg["content"].get("user_expressions", {})
        compare = "nbval-ignore-output" not in self.cell.metadata.get("tags", [])
        problems = []
        for i, expr in enumerate(exprs):
            try:
                now = inline_values.shown(results[str(i)])
            except (KeyError, ValueError) as err:
                problems.append(f"{{eval}}`{expr}` failed: {err}")
                continue
            then = inline_values.shown(expected[expr])
            if compare and now != then:
                problems.append(f"{{eval}}`{expr}` shows {now!r} now, the executed chapter stored {then!r}")
        if problems:
            raise AssertionError(f"markdown cell {self.index}:\n  " + "\n  ".join(problems))

    def reportinfo(self):
        return self.path, None, f"{self.name}"


def add_inline_items(items: list) -> list:
    """`items` with an InlineValues item after the code cell that precedes each markdown cell with values."""
    from nbval.plugin import IPyNbCell

    after: dict[int, list] = {}    # id(code cell item) -> the markdown items that follow it
    leading: dict[int, list] = {}  # id(notebook) -> markdown items before its first code cell
    for parent in {id(i.parent): i.parent for i in items if isinstance(i, IPyNbCell)}.values():
        code_items = {id(i.cell): i for i in items if isinstance(i, IPyNbCell) and i.parent is parent}
        last = None
        for index, cell in enumerate(parent.nb.cells):
            if cell.cell_type == "code":
                last = code_items.get(id(cell), last)
            elif cell.cell_type == "markdown" and inline_values.expressions(cell.source):
                extra = InlineValues.from_parent(parent, name=f"Markdown {index} (inline values)", cell=cell, index=index)
                (after.setdefault(id(last), []) if last is not None else leading.setdefault(id(parent), [])).append(extra)
    out: list = []
    for item in items:
        if isinstance(item, IPyNbCell):
            out.extend(leading.pop(id(item.parent), []))
        out.append(item)
        out.extend(after.pop(id(item), []))
    return out
