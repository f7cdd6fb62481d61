"""Every chapter ends with 2-3 discussion questions, each with a collapsed answer.

A question is an ``{admonition}`` named ``q-NN-k`` (NN the chapter, k = 1, 2, ...)
in a markdown cell, followed in the same cell by an ``{admonition} Answer`` with
``:class: dropdown``. They sit in an ordinary markdown cell (not a solution block),
so adding them never changes the number of cells of the executed notebook.
"""

from __future__ import annotations

import re

import pytest

from notebook_utils import read_md, sources

QUESTION = re.compile(r"```\{admonition\} Question (\d+)\.(\d+): [^\n]+\n:name: (q-(\d\d)-(\d+))\n")
ANSWER = re.compile(r"\A\s*\n```\{admonition\} Answer\n:class: dropdown\n\n\S")


def questions(md) -> list[tuple[str, str]]:
    """(label, the text after the question box) for every question of a chapter."""
    found = []
    for cell in read_md(md).cells:
        if cell.cell_type != "markdown":
            continue
        for m in QUESTION.finditer(cell.source):
            body_end = cell.source.find("\n```\n", m.end())
            assert body_end != -1, f"{md.stem}: question {m.group(3)} has no closing fence"
            found.append((m, cell.source[body_end + len("\n```\n"):]))
    return found


@pytest.mark.parametrize("md", sources(), ids=lambda p: p.stem)
def test_questions_with_collapsed_answers(md):
    found = questions(md)
    assert 2 <= len(found) <= 3, f"{md.stem} has {len(found)} discussion questions; chapters need 2 or 3"
    chapter = md.stem[:2]
    for k, (m, after) in enumerate(found, 1):
        label = m.group(3)
        assert label == f"q-{chapter}-{k}", f"{md.stem}: question {k} is labelled {label}, expected q-{chapter}-{k}"
        assert int(m.group(1)) == int(chapter) and int(m.group(2)) == k, (
            f"{md.stem}: the title of {label} says Question {m.group(1)}.{m.group(2)}")
        assert ANSWER.match(after), f"{md.stem}: {label} is not followed by a collapsed ```{{admonition}} Answer (:class: dropdown)"
