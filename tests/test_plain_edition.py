"""The plain edition (plain/, tools/make_plain.py): the chapters for Colab, VS Code and GitHub.

Those render markdown cells as CommonMark (with `$` math) and show MyST as code. The
tests check that the committed plain/ is what `make plain` writes from the chapters
now, that no MyST is left in it (rendered with markdown-it-py, CommonMark mode), and
how the converter turns each construct into markdown and HTML, on small strings.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import nbformat
import pytest
from markdown_it import MarkdownIt
from nbformat.v4 import new_markdown_cell, new_notebook

import book_fixes  # tools/ (conftest puts it on the path)
import make_plain
from make_plain import PlainEditionError, Target
from notebook_utils import NOTEBOOKS, read_ipynb

ROOT = NOTEBOOKS.parent
PLAIN = ROOT / "plain"
STEM = "03_demo"


def plain(*cells: str, expressions: dict[int, list] | None = None, others: dict | None = None) -> list[str]:
    """The plain form of markdown cells of a chapter STEM (dedented), through the converter's whole path."""
    nb = new_notebook(cells=[new_markdown_cell(textwrap.dedent(c).strip("\n")) for c in cells])
    for index, stored in (expressions or {}).items():
        nb.cells[index].metadata["user_expressions"] = stored
    labels = make_plain.targets(STEM, nb) | (others or {})
    titles = {STEM: "03 · Demo", "05_other": "05 · Other"}
    out = make_plain.plain_notebook(STEM, nb, labels, titles, {"softmax": r"\operatorname{softmax}"})
    assert all("user_expressions" not in c.metadata for c in out.cells)
    return [c.source for c in out.cells]


def one(text: str, **kwargs) -> str:
    return plain(text, **kwargs)[0]


def html(markdown: str) -> str:
    return MarkdownIt("commonmark").render(markdown)


def stored(expression: str, data: dict, status: str = "ok") -> dict:
    return {"expression": expression, "result": {"status": status, "data": data, "metadata": {}}}


# ----------------------------------------------------------------------------- the committed edition


def test_the_committed_plain_edition_is_what_make_plain_writes_now():
    differ = make_plain.stale(PLAIN, make_plain.edition())
    assert not differ, (f"plain/ is out of date ({', '.join(differ)}): run `make plain` "
                        "(after `make execute` for a chapter you edited) and commit plain/")


def test_make_plain_writes_the_same_into_another_folder(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "make_plain.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in PLAIN.iterdir())
    for path in tmp_path.iterdir():
        assert path.read_bytes() == (PLAIN / path.name).read_bytes(), f"plain/{path.name}: run `make plain`"


def _plain_chapters():
    return sorted(PLAIN.glob("[0-9][0-9]_*.ipynb"))


def test_every_chapter_has_a_plain_notebook_with_its_code_and_outputs():
    chapters = sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    assert [p.name for p in _plain_chapters()] == chapters, "run `make plain`"
    for path in _plain_chapters():
        ours, executed = read_ipynb(path), read_ipynb(NOTEBOOKS / path.name)
        nbformat.validate(ours)
        assert "jupytext" not in ours.metadata, f"{path.name}: not paired with a .md"
        assert ours.metadata == {k: v for k, v in executed.metadata.items() if k != "jupytext"}
        assert [(c.cell_type, c.id) for c in ours.cells] == [(c.cell_type, c.id) for c in executed.cells]
        for mine, theirs in zip(ours.cells, executed.cells):
            if mine.cell_type == "code":
                assert mine == theirs, f"{path.name}: code cell {mine.id} differs from the executed chapter"
    assert "do not edit" in (PLAIN / "README.md").read_text(encoding="utf-8")


def test_no_myst_is_left_in_any_plain_chapter():
    for path in _plain_chapters():
        for index, cell in enumerate(read_ipynb(path).cells):
            if cell.cell_type == "markdown":
                left = make_plain.myst_leftovers(cell.source)
                assert not left, f"plain/{path.name}, markdown cell {index}: MyST left: {left}"
                assert "{literalinclude}" not in cell.source and "{eval}" not in cell.source


# ----------------------------------------------------------------------------- the check itself


@pytest.mark.parametrize("myst", [
    "```{note}\nText\n```",
    "````{solution-start} ex-03-a\n:class: dropdown\n````",
    ":::{note}\nText\n:::",
    "Loss {glue:text}`ch05_loss:.3f` nats.",
    "Loss {glue:md}`ch05_table`.",
    "Took {eval}`f'{minutes:.0f}'` minutes.",
    "See {ref}`ex-03-a`.",
    "(sec-attention)=\n# Attention",
    "% a MyST comment\nText",
    "Text\n\n+++\n\nMore",
    "> **Tip**\n>\n> :class: tip\n> Body",
])
def test_the_check_finds_myst(myst):
    assert make_plain.myst_leftovers(myst), myst


@pytest.mark.parametrize("clean", [
    "Write `` {eval}`x` `` in MyST.",
    "```python\n% not a comment here\n(x)=\n```",
    "50 % of the weights; `:class:` is an option.",
    "$$\n\\begin{aligned} a &= b \\end{aligned}\n$$",
])
def test_the_check_leaves_code_and_prose_alone(clean):
    assert make_plain.myst_leftovers(clean) == []


# ----------------------------------------------------------------------------- admonitions


def test_an_admonition_becomes_a_blockquote_under_its_bold_title():
    out = one("""
        ```{admonition} Learning goals
        :class: tip

        After this chapter you can

        - name *two* things;
        - compute $\\ln V$.
        ```
        """)
    assert out == ("> **Learning goals**\n>\n> After this chapter you can\n>\n"
                   "> - name *two* things;\n> - compute $\\ln V$.")
    rendered = html(out)
    assert rendered.startswith("<blockquote>\n<p><strong>Learning goals</strong></p>")
    assert "<li>name <em>two</em> things;</li>" in rendered


def test_a_named_admonition_keeps_an_anchor_and_a_note_gets_its_name_as_title():
    assert one("```{admonition} Question 3.1: Why?\n:name: q-03-1\n\nThink.\n```") == \
        '> <a id="q-03-1"></a>**Question 3.1: Why?**\n>\n> Think.'
    assert one("```{note}\nMind the mask.\n```") == "> **Note**\n>\n> Mind the mask."
    assert one("```{warning} Mind\nthe mask.\n```") == "> **Warning**\n>\n> Mind\n> the mask.", "no title"


def test_a_dropdown_becomes_details_with_markdown_inside():
    out = one("""
        ```{admonition} Answer
        :class: dropdown

        Every exponent is *at most* 0:

        $$
        e^{z_i - c} \\le 1
        $$
        ```
        """)
    assert out == ("<details>\n<summary><b>Answer</b></summary>\n\nEvery exponent is *at most* 0:\n\n"
                   "$$\ne^{z_i - c} \\le 1\n$$\n\n</details>")
    assert "<p>Every exponent is <em>at most</em> 0:</p>" in html(out), "blank lines: the markdown inside renders"


def test_an_admonition_with_an_unknown_option_is_refused():
    with pytest.raises(PlainEditionError, match=":width:"):
        one("```{admonition} A\n:width: 50%\n\nText\n```")


# ----------------------------------------------------------------------------- exercises and solutions


EXERCISES = """
    ```{exercise} A stable softmax
    :label: ex-03-softmax

    Write `softmax(x)` over the **last axis**.
    ```
    """, """
    ```{exercise} Scaled scores
    :label: ex-03-scores

    Write `scores(q, k)`.
    ```
    """


def test_exercises_are_numbered_in_the_chapter_with_an_anchor():
    first, second = plain(*EXERCISES)
    assert first == ('<a id="ex-03-softmax"></a>\n**Exercise 1: A stable softmax**\n\n'
                     "Write `softmax(x)` over the **last axis**.")
    assert second.startswith('<a id="ex-03-scores"></a>\n**Exercise 2: Scaled scores**')
    assert '<p><a id="ex-03-softmax"></a>\n<strong>Exercise 1: A stable softmax</strong></p>' in html(first)
    assert plain("```{exercise} Open\n:nonumber:\n\nThink.\n```", *EXERCISES)[2].startswith(
        '<a id="ex-03-scores"></a>\n**Exercise 2: Scaled scores**'), "an unnumbered exercise counts for nothing"


SOLUTION = """
    `````{solution-start} ex-03-scores
    :class: dropdown
    `````

    % literalinclude ../solutions/ch03_attention_numpy.py
    % :pyobject: attention_scores
    % :prepend: import numpy as np

    ```python
    import numpy as np
    %timeit is IPython's, and {eval}`x` is code here

    def attention_scores(q, k):
        return q @ k.T / np.sqrt(q.shape[-1])
    ```

    ````{solution-end}
    ````
    """


def test_a_solution_becomes_a_collapsed_box_with_its_code():
    out = plain(*EXERCISES, SOLUTION)[2]
    assert out == ("<details>\n<summary>Solution to Exercise 2</summary>\n\n```python\nimport numpy as np\n"
                   "%timeit is IPython's, and {eval}`x` is code here\n\ndef attention_scores(q, k):\n"
                   "    return q @ k.T / np.sqrt(q.shape[-1])\n```\n\n</details>")
    rendered = html(out)
    assert '<pre><code class="language-python">import numpy as np' in rendered
    assert rendered.rstrip().endswith("</details>")


def test_a_solution_without_its_end_or_its_exercise_is_refused():
    with pytest.raises(PlainEditionError, match="solution-end"):
        plain(*EXERCISES, "````{solution-start} ex-03-scores\n:class: dropdown\n````\n\nText")
    with pytest.raises(PlainEditionError, match="ex-03-nothing"):
        plain(*EXERCISES, "````{solution-start} ex-03-nothing\n:class: dropdown\n````\n\n````{solution-end}\n````")
    with pytest.raises(PlainEditionError, match="without a"):
        one("````{solution-end}\n````")


def test_a_literalinclude_is_an_error_not_a_silent_gap():
    with pytest.raises(PlainEditionError, match=r"03_demo: \{literalinclude\} \.\./solutions/ch03\.py"):
        plain(*EXERCISES, "````{solution-start} ex-03-scores\n:class: dropdown\n````\n\n```{literalinclude} "
                          "../solutions/ch03.py\n:pyobject: scores\n```\n\n````{solution-end}\n````")


# ----------------------------------------------------------------------------- inline values and references


def test_eval_roles_become_the_stored_values():
    text = "Used {eval}`f'{m:.0f}'` minutes, loss {eval}`loss`, {eval}`name`, {eval}`table`."
    out = one(text, expressions={0: [
        stored("f'{m:.0f}'", {"text/plain": "'32'"}),
        stored("loss", {"text/plain": "1.625"}),
        stored("name", {"text/plain": '"it\'s"'}),
        stored("table", {"text/plain": "'a | b'", "text/markdown": "**bold**"}),
    ]})
    assert out == "Used 32 minutes, loss 1.625, it's, a | b."  # text/plain, as JupyterLab and the book show it


def test_an_eval_role_without_a_stored_value_names_the_chapter_and_what_to_run():
    with pytest.raises(PlainEditionError, match=r"03_demo: \{eval\}`loss` has no stored value.*make execute"):
        one("Loss {eval}`loss`.")
    with pytest.raises(PlainEditionError, match="NameError: name 'loss' is not defined"):
        one("Loss {eval}`loss`.", expressions={0: [{"expression": "loss", "result": {
            "status": "error", "ename": "NameError", "evalue": "name 'loss' is not defined", "traceback": []}}]})


def test_references_become_links_in_the_chapter_and_to_other_chapters():
    others = {"ex-05-loop": Target("05_other", "Exercise 2"), "q-05-1": Target("05_other", "Question 5.1: Why?")}
    cells = plain(*EXERCISES, "See {ref}`ex-03-scores`, {ref}`ex-05-loop`, {ref}`this one <ex-03-softmax>`, "
                              "{ref}`q-05-1` and {doc}`05_other`.", others=others)
    assert cells[2] == ("See [Exercise 2](#ex-03-scores), [Exercise 2 of chapter 05](05_other.ipynb#ex-05-loop), "
                        "[this one](#ex-03-softmax), [Question 5.1: Why?](05_other.ipynb#q-05-1) "
                        "and [05 · Other](05_other.ipynb).")
    with pytest.raises(PlainEditionError, match="no chapter defines the label 'ex-99-x'"):
        one("See {ref}`ex-99-x`.")


def test_a_target_becomes_an_anchor_and_a_reference_to_it_shows_its_heading():
    target, ref = plain("(sec-mask)=\n## The causal mask\n\nText.", "As in {ref}`sec-mask`.")
    assert target == '<a id="sec-mask"></a>\n## The causal mask\n\nText.'
    assert ref == "As in [The causal mask](#sec-mask)."


def test_roles_in_code_spans_stay_and_unknown_roles_are_refused():
    assert one("Write `` {eval}`x` `` in MyST; `{ref}` too.") == "Write `` {eval}`x` `` in MyST; `{ref}` too."
    with pytest.raises(PlainEditionError, match=r"\{glue:text\}`ch05_loss:\.3f`"):
        one("Loss {glue:text}`ch05_loss:.3f`.")


# ----------------------------------------------------------------------------- math, comments, the rest


def test_math_stays_standalone_amsmath_is_wrapped_and_book_macros_are_expanded():
    out = one(r"""
        Inline $\softmax(z)_i$ and {math}`x^2`, display:

        $$
        \begin{aligned} a &= b \end{aligned}
        $$

        \begin{align}
        y &= x W^\top
        \end{align}
        """)
    assert out == ("Inline $\\operatorname{softmax}(z)_i$ and $x^2$, display:\n\n"
                   "$$\n\\begin{aligned} a &= b \\end{aligned}\n$$\n\n"
                   "$$\n\\begin{align}\ny &= x W^\\top\n\\end{align}\n$$")


def test_comment_lines_go_and_cell_breaks_are_refused():
    assert one("% a note for authors\nText.\n% another\nMore.") == "Text.\n\nMore."
    with pytest.raises(PlainEditionError, match=r"\+\+\+"):
        one("Text.\n\n+++\n\nMore.")


def test_unknown_directives_are_refused_by_name():
    with pytest.raises(PlainEditionError, match=r"\{figure\}"):
        one("```{figure} plot.png\nA plot.\n```")
    with pytest.raises(PlainEditionError, match="never closed"):
        one("````{exercise} Open\n:label: ex-03-open\n\nText.\n```")


def test_code_block_and_math_directives_become_a_fence_and_display_math():
    assert one("```{code-block} python\n:linenos:\n\nx = 1\n```") == "```python\nx = 1\n```"
    assert one("````{code-block} md\n```python\nx\n```\n````") == "````md\n```python\nx\n```\n````"
    assert one("```{math}\n:label: eq-loss\n\n\\softmax(z)\n```") == \
        '<a id="eq-loss"></a>\n\n$$\n\\operatorname{softmax}(z)\n$$'


def test_plain_code_fences_pass_through_untouched():
    text = "~~~text\n```{note}\nshown as code\n```\n~~~"
    assert one(text) == text


# ----------------------------------------------------------------------------- Colab


def test_the_readme_links_each_chapter_to_colab_when_a_github_repository_is_set():
    titles = {"00_introduction": "00 · Introduction"}
    with_repo = make_plain.readme(titles, "https://github.com/teacher/llm-course", "spring")
    assert ("[Open in Colab](https://colab.research.google.com/github/teacher/llm-course/blob/spring/"
            "plain/00_introduction.ipynb)") in with_repo
    without = make_plain.readme(titles, "", "main")
    assert "set_repository.py" in without and "colab.research" not in without


def test_the_book_s_colab_button_opens_the_plain_edition():
    colab = "https://colab.research.google.com/github/teacher/llm-course/blob/main/notebooks/03_attention_numpy.ipynb"
    binder = "https://mybinder.org/v2/gh/teacher/llm-course/main?urlpath=lab/tree/notebooks/03_attention_numpy.ipynb"
    context = {"header_buttons": [{"label": "launch-buttons", "buttons": [
        {"text": "Binder", "url": binder}, {"text": "Colab", "url": colab}]}]}
    book_fixes.colab_opens_plain(None, "notebooks/03_attention_numpy", "page.html", context, None)
    binder_button, colab_button = context["header_buttons"][0]["buttons"]
    assert colab_button["url"] == colab.replace("/notebooks/", "/plain/")
    assert binder_button["url"] == binder, "Binder opens notebooks/ in JupyterLab, which renders MyST"


def test_set_repository_writes_the_plain_edition_too(tmp_path):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    for stem in ("00_introduction",):
        for suffix in (".md", ".ipynb"):
            shutil.copy(NOTEBOOKS / f"{stem}{suffix}", notebooks / f"{stem}{suffix}")
    shutil.copy(ROOT / "book.yml", tmp_path / "book.yml")
    (tmp_path / "plain").mkdir()
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "set_repository.py"),
                           "https://github.com/teacher/llm-course", "--notebooks", str(notebooks),
                           "--book", str(tmp_path / "book.yml")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    readme = (tmp_path / "plain" / "README.md").read_text(encoding="utf-8")
    assert "colab.research.google.com/github/teacher/llm-course/blob/main/plain/00_introduction.ipynb" in readme
    setup = next(c for c in read_ipynb(tmp_path / "plain" / "00_introduction.ipynb").cells if c.cell_type == "code")
    assert 'COURSE_REPOSITORY, COURSE_BRANCH = "https://github.com/teacher/llm-course", "main"' in setup.source
