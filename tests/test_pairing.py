"""Every chapter is a MyST source paired with an executed notebook that agrees with it.

`jupytext --diff` exits 0 even when a pair differs, so the comparison is done here:
same cells (types, sources, tags) in the same order, every code cell executed in
order from 1, no stored errors, no figure shown twice.
"""

from __future__ import annotations

import os

import pytest

import kernels  # tools/kernels.py (conftest puts tools/ on the path)
from notebook_utils import NOTEBOOKS, read_ipynb, read_md, sources, tags


def _cells(nb):
    return [(c.cell_type, c.source.strip(), sorted(tags(c))) for c in nb.cells]


def test_there_are_chapters():
    assert (NOTEBOOKS / "00_introduction.md").is_file()


def test_every_ipynb_has_a_source():
    orphans = [p.name for p in NOTEBOOKS.glob("*.ipynb") if not p.with_suffix(".md").is_file()]
    assert not orphans, f"executed notebooks without a .md source: {orphans}"


@pytest.mark.parametrize("md", sources(), ids=lambda p: p.stem)
def test_pair_agrees(md):
    ipynb = md.with_suffix(".ipynb")
    assert ipynb.is_file(), f"{md.name} has no executed pair: run `make execute NOTEBOOKS={md.relative_to(NOTEBOOKS.parent)}`"
    src, exe = _cells(read_md(md)), _cells(read_ipynb(ipynb))
    for i, (a, b) in enumerate(zip(src, exe)):
        assert a == b, (
            f"{md.name} and {ipynb.name} differ at cell {i}:\n  .md:    {a}\n  .ipynb: {b}\n"
            "Re-execute the chapter (make execute) after editing its .md."
        )
    assert len(src) == len(exe), f"{md.name} has {len(src)} cells, {ipynb.name} has {len(exe)}"


@pytest.mark.parametrize("md", sources(), ids=lambda p: p.stem)
def test_fully_executed_in_order(md):
    nb = read_ipynb(md.with_suffix(".ipynb"))
    counts = [c.get("execution_count") for c in nb.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1)), (
        f"{md.stem}.ipynb is not executed top to bottom on a fresh kernel: execution counts {counts}"
    )
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            assert out.output_type != "error", f"{md.stem}.ipynb cell {i} stores an error: {out.get('ename')}"


@pytest.mark.parametrize("md", sources(), ids=lambda p: p.stem)
def test_no_figure_shown_twice(md):
    nb = read_ipynb(md.with_suffix(".ipynb"))
    for i, cell in enumerate(nb.cells):
        images = [o["data"]["image/png"] for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
        assert len(images) == len(set(images)), (
            f"{md.stem} cell {i} shows the same figure twice: assign it (fig = ...) instead of ending the cell with it"
        )


@pytest.mark.parametrize("md", sources(), ids=lambda p: p.stem)
def test_executed_under_reference_kernels(md):
    """The committed outputs were made under the ``reference`` CPU kernels, which nbval
    (under the ``test`` ones) never uses: every compared output is checked across two
    kernel configurations on whatever machine runs the tests."""
    nb = read_ipynb(md.with_suffix(".ipynb"))
    record = nb.metadata.get("course", {}).get("kernels")
    fix = f"re-execute it with `make execute NOTEBOOKS=notebooks/{md.name}` (which uses the reference kernels)"
    assert record, f"{md.stem}.ipynb does not record the CPU kernels it was executed with: {fix}"
    assert record.get("profile") == "reference", f"{md.stem}.ipynb was executed under the {record.get('profile')!r} kernels: {fix}"
    for name, value in kernels.PROFILES["reference"].items():
        assert record.get(name) == value, f"{md.stem}.ipynb: {name}={record.get(name)!r}, the reference is {value!r}: {fix}"
    assert record.get("cpu_capability") == "DEFAULT", (
        f"{md.stem}.ipynb: PyTorch ran {record.get('cpu_capability')} kernels, not the portable DEFAULT ones: {fix}"
    )


def test_tests_use_other_kernels_than_the_committed_outputs():
    import torch

    if os.environ.get(kernels.ENV_PROFILE) == "test":  # the default; other profiles are an explicit choice
        assert torch.backends.cpu.get_cpu_capability() != "DEFAULT", (
            "the tests run PyTorch's DEFAULT kernels, the ones the committed notebooks were made with: "
            "nbval would not compare two kernel configurations"
        )


@pytest.mark.parametrize("md", sources(), ids=lambda p: p.stem)
def test_cell_ids_are_the_executors(md):
    """Cell ids come from position and source (tools/execute_notebooks.stable_ids); a cell edited in the .ipynb
    without re-executing keeps a stale id, and tools/set_repository.py then rewrites the file differently."""
    from execute_notebooks import stable_ids

    nb = read_ipynb(md.with_suffix(".ipynb"))
    stored = [c.id for c in nb.cells]
    stable_ids(nb)
    stale = [f"cell {i} ({old} -> {c.id})" for i, (old, c) in enumerate(zip(stored, nb.cells)) if old != c.id]
    assert not stale, (f"{md.stem}.ipynb has stale cell ids: {', '.join(stale[:3])}; re-execute it (make execute) "
                       "or recompute them with tools/execute_notebooks.stable_ids")
