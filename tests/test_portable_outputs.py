"""No rounding-level number in any output that nbval compares.

A difference "up to rounding" prints as 8.9e-16 on one CPU and 4.4e-15 on the
next, so a compared output may show such a number only as a verified bound
("agree (largest difference below 1e-12)", course.verify.agree). This test reads
every compared output (cells not tagged nbval-ignore-output) of every chapter and
fails on a number in scientific notation with an exponent of -5 or less that is
not introduced as a bound. Exact constants (the limits of a float format) are
listed below with the reason they are portable.
"""

from __future__ import annotations

import re

import pytest

from notebook_utils import read_ipynb, sources, tags

SMALL = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?e-(?:0?[5-9]|[1-9]\d)\b", re.IGNORECASE)
BOUND_WORDS = re.compile(r"(below|under|<=?|≤|tol(?:erance)?[ =:]*|at most|within)\s*$", re.IGNORECASE)

# (chapter stem, text of the line) -> why the digits are the same on every machine
EXACT = {
    ("08_efficiency_and_scale", "float32"): "torch.finfo constants (eps, smallest normal) are properties of the format",
    ("08_efficiency_and_scale", "bfloat16"): "torch.finfo constants are properties of the format",
    ("08_efficiency_and_scale", "float16"): "torch.finfo constants are properties of the format",
}


def compared_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append("".join(out.get("text", "")))
        elif out.get("output_type") in ("execute_result", "display_data"):
            data = out.get("data", {})
            if "image/png" not in data and "text/plain" in data:
                parts.append("".join(data["text/plain"]))
    return "".join(parts)


def offending_lines(stem: str, text: str) -> list[str]:
    bad = []
    for line in text.splitlines():
        for m in SMALL.finditer(line):
            if BOUND_WORDS.search(line[: m.start()]):
                continue
            if re.search(r"\w=$", line[: m.start()]):  # a keyword in a repr: GPTConfig(norm_eps=1e-05)
                continue
            if any(stem == s and line.strip().startswith(prefix) for s, prefix in EXACT):
                continue
            bad.append(line.strip())
            break
    return bad


def test_the_pattern():
    assert offending_lines("x", "max |difference| = 8.9e-16") == ["max |difference| = 8.9e-16"]
    assert offending_lines("x", "relative error 2e-16") == ["relative error 2e-16"]
    assert offending_lines("x", "agree (largest difference below 1e-12)") == []
    assert offending_lines("x", "error < 1e-06 in every entry") == []
    assert offending_lines("x", "lr 3e-4 and 6e-4; 1e5 -> 99840; 2.87e+13 FLOPs") == []
    assert offending_lines("x", "GPTConfig(n_layer=4, norm_eps=1e-05)") == []


@pytest.mark.parametrize("md", sources(), ids=lambda p: p.stem)
def test_no_raw_rounding_level_number_in_compared_outputs(md):
    nb = read_ipynb(md.with_suffix(".ipynb"))
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or "nbval-ignore-output" in tags(cell):
            continue
        for line in offending_lines(md.stem, compared_text(cell)):
            problems.append(f"cell {i}: {line}")
    assert not problems, (
        f"{md.stem}: compared outputs show rounding-level digits, which differ between CPUs; print a verified "
        "bound with course.verify.agree (or move the value to an nbval-ignore-output cell with an assertion):\n  "
        + "\n  ".join(problems)
    )
