"""Numbers in the prose (`{eval}`, tools/inline_values.py) and code shown from files (tools/sync_solutions.py).

One mechanism reaches every reader, so each piece is tested here on a small chapter:
the executor stores the values (at the markdown cell's place in the run), nbval
re-evaluates and compares them, the book's Sphinx role renders them (and refuses a
missing one), and a solution box is the code its file gives.
"""

from __future__ import annotations

import builtins
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from notebook_utils import NOTEBOOKS, ROOT

sys.path.insert(0, str(ROOT / "tools"))
import inline_values  # noqa: E402
import sync_solutions  # noqa: E402

HEADER = (NOTEBOOKS / "00_introduction.md").read_text(encoding="utf-8").split("\n---\n", 1)[0] + "\n---\n"


def chapter(tmp_path: Path, body: str, name: str = "demo") -> Path:
    md = tmp_path / f"{name}.md"
    md.write_text(HEADER + textwrap.dedent(body), encoding="utf-8")
    return md


def result(text: str) -> dict:
    return {"status": "ok", "data": {"text/plain": text}, "metadata": {}}


# ----------------------------------------------------------------------------- the helpers


def test_expressions_are_found_once_in_order():
    text = "a {eval}`x` b {eval}`f\"{y:.2f}\"` c {eval}`x` {glue:text}`z`"
    assert inline_values.expressions(text) == ["x", 'f"{y:.2f}"']


@pytest.mark.parametrize("plain, shown", [("'3.14'", "3.14"), ('"it\'s"', "it's"), ("42", "42"), ("'a' 'b'", "a' 'b")])  # exactly jupyterlab-myst's rule
def test_a_value_shows_its_text_with_one_pair_of_quotes_removed(plain, shown):
    assert inline_values.shown(result(plain)) == shown


def test_an_error_or_a_value_without_text_is_refused():
    with pytest.raises(ValueError, match="NameError: name 'x' is not defined"):
        inline_values.shown({"status": "error", "ename": "NameError", "evalue": "name 'x' is not defined"})
    with pytest.raises(ValueError, match="show a str or a number"):
        inline_values.shown({"status": "ok", "data": {"image/png": "..."}})


def test_a_cell_without_its_stored_values_says_what_to_run():
    cell = nbformat.v4.new_markdown_cell("It took {eval}`t` s.")
    with pytest.raises(inline_values.MissingValue, match="execute the chapter"):
        inline_values.stored(cell)


def test_one_expression_shows_one_value_per_chapter(tmp_path):
    nb = nbformat.v4.new_notebook()
    for value in ("1", "2"):
        cell = nbformat.v4.new_markdown_cell("x is {eval}`x`.")
        cell.metadata["user_expressions"] = [{"expression": "x", "result": result(value)}]
        nb.cells.append(cell)
    nbformat.write(nb, tmp_path / "two.ipynb")
    with pytest.raises(ValueError, match="shows '1' in one cell and '2'"):
        inline_values.chapter_values(tmp_path / "two.ipynb")


# ----------------------------------------------------------------------------- executor and nbval


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """A small chapter executed by tools/execute_notebooks.py: a value quoted, changed, and quoted again."""
    folder = tmp_path_factory.mktemp("executed")
    md = chapter(folder, """
        ```{code-cell} ipython3
        x = 3.14159
        name = "it's"
        ```

        Pi is {eval}`f"{x:.2f}"`; the name is {eval}`name`.

        ```{code-cell} ipython3
        x = 2
        print(x)
        ```

        Now {eval}`x * 21`.
        """)
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "execute_notebooks.py"), "--kernels", "native", str(md)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    return md.with_suffix(".ipynb")


def test_the_executor_stores_each_value_where_its_cell_is_in_the_run(executed):
    nb = nbformat.read(executed, as_version=4)
    assert inline_values.chapter_values(executed) == {'f"{x:.2f}"': "3.14", "name": "it's", "x * 21": "42"}
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == [1, 2]  # evaluating the prose does not count as a run


def test_the_executor_stops_at_an_expression_that_fails(tmp_path):
    md = chapter(tmp_path, """
        The value is {eval}`undefined_name`.
        """)
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "execute_notebooks.py"), "--kernels", "native", str(md)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 1 and "{eval}`undefined_name` failed: NameError" in run.stderr


def _nbval(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "conftest", "--nbval", "--nbval-current-env",
                           "-o", "addopts=", "-q", "-p", "no:cacheprovider", str(path)],
                          capture_output=True, text=True, timeout=300, cwd=path.parent,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT / "tests")})


def test_nbval_compares_the_prose_and_fails_when_it_drifts(executed, tmp_path):
    good = _nbval(executed)
    assert good.returncode == 0 and "4 passed" in good.stdout, good.stdout[-2000:]
    nb = nbformat.read(executed, as_version=4)
    nb.cells[-1].metadata["user_expressions"][0]["result"] = result("43")  # the prose says 43; the code gives 42
    drifted = tmp_path / "drifted.ipynb"
    nbformat.write(nb, drifted)
    bad = _nbval(drifted)
    assert bad.returncode == 1 and "{eval}`x * 21` shows '42' now, the executed chapter stored '43'" in bad.stdout
    nb.cells[-1].metadata["tags"] = ["nbval-ignore-output"]  # a machine-dependent value: evaluated, not compared
    nbformat.write(nb, drifted)
    assert _nbval(drifted).returncode == 0


# ----------------------------------------------------------------------------- the book's role


def _sphinx(folder: Path) -> subprocess.CompletedProcess:
    (folder / "conf.py").write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT / "tools")!r})
        extensions = ["myst_nb", "inline_values"]
        nb_execution_mode = "off"
        exclude_patterns = ["_build"]
        """), encoding="utf-8")
    return subprocess.run([sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html", str(folder), str(folder / "_build")],
                          capture_output=True, text=True, timeout=300)


def test_the_book_renders_the_stored_values_and_refuses_a_missing_one(executed, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    nb = nbformat.read(executed, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_markdown_cell("# Demo"))
    nbformat.write(nb, site / "index.ipynb")
    built = _sphinx(site)
    assert built.returncode == 0, built.stderr
    html = (site / "_build" / "index.html").read_text(encoding="utf-8")
    assert '<span class="inline-value">3.14</span>' in html and '<span class="inline-value">42</span>' in html
    assert "it&#x27;s" in html or "it's" in html
    nb.cells[-1].metadata.pop("user_expressions")
    nbformat.write(nb, site / "index.ipynb")
    broken = _sphinx(site)
    assert broken.returncode != 0 and "no stored value for x * 21" in broken.stderr


# ----------------------------------------------------------------------------- code shown from files


def test_a_literalinclude_becomes_the_code_it_names_and_stays_in_sync(tmp_path):
    (tmp_path / "sol.py").write_text("import math\n\n\ndef area(r):\n    return math.pi * r * r\n\n\ndef other():\n    pass\n")
    text = "Before.\n\n```{literalinclude} sol.py\n:pyobject: area\n:prepend: \"import math\\nimport os\"\n```\n\nAfter.\n"
    synced = sync_solutions.sync_text(text, tmp_path)
    assert synced == ("Before.\n\n% literalinclude sol.py\n% :pyobject: area\n% :prepend: \"import math\\nimport os\"\n"
                      "```python\nimport math\nimport os\ndef area(r):\n    return math.pi * r * r\n```\n\nAfter.\n")
    assert sync_solutions.sync_text(synced, tmp_path) == synced  # already current: unchanged
    (tmp_path / "sol.py").write_text("import math\n\n\ndef area(r):\n    return 3.14 * r * r\n")
    assert "return 3.14 * r * r" in sync_solutions.sync_text(synced, tmp_path)  # the file changed: the block follows


def test_every_chapter_shows_the_code_its_files_give_today():
    stale = [md.name for md in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.md")) if sync_solutions.sync(md, check=True)]
    assert not stale, f"code blocks out of date in {stale}: run python tools/sync_solutions.py"


def test_no_chapter_quotes_a_value_before_the_code_that_computes_it():
    """JupyterLab evaluates a markdown cell's expressions when the learner runs it, in order: a name that a
    later cell defines shows as an error after Run All (and fails the executor and nbval)."""
    import ast

    import jupytext

    late = []
    for md in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.md")):
        defined: set[str] = set(dir(builtins))
        for index, cell in enumerate(jupytext.read(md).cells):
            if cell.cell_type == "code":
                code = "\n".join(line for line in cell.source.splitlines() if not line.startswith(("%", "!")))
                defined |= {n.id for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
                defined |= {a.asname or a.name.split(".")[0] for n in ast.walk(ast.parse(code))
                            if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
                defined |= {n.name for n in ast.walk(ast.parse(code)) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
            else:
                for expr in inline_values.expressions(cell.source):
                    names = {n.id for n in ast.walk(ast.parse(expr, mode="eval")) if isinstance(n, ast.Name)}
                    if names - defined:
                        late.append(f"{md.name}, cell {index}: {{eval}}`{expr}` uses {sorted(names - defined)} "
                                    "before a code cell defines it")
    assert not late, "\n".join(late)
