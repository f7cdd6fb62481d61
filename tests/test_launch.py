"""Where the course opens: JupyterLab (`make lab`), Colab and Binder, and the book's launch buttons.

One setting, ``repository`` in book.yml, drives the launch buttons and every
chapter's setup cell (tools/set_repository.py). These tests check that the two
agree, that the tool rewrites both and refuses bad input, that the setup cell
does what it says in a kernel without the course, that the Binder files follow
the course's torch pin, and that JupyterLab's settings name real settings of the
installed JupyterLab and a jupytext extension that this JupyterLab can load (a
jupytext built for a newer JupyterLab fails to load, silently, and the .md opens
as text: seen). browser_tests/ opens it all in a browser.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
import yaml

import build_book  # tools/ (conftest puts it on the path)
import set_repository
from notebook_utils import NOTEBOOKS, read_ipynb, read_md, sources, tags

ROOT = NOTEBOOKS.parent


def _setup_cells(nb):
    return [c for c in nb.cells if set_repository.TAG in tags(c)]


# ----------------------------------------------------------------------------- setup cell and book.yml


def test_every_chapter_has_the_setup_cell_that_book_yml_asks_for():
    url, branch = set_repository.read_repository()
    expected = set_repository.setup_source(url, branch)
    for md in sources():
        for nb, name in ((read_md(md), md.name), (read_ipynb(md.with_suffix(".ipynb")), md.with_suffix(".ipynb").name)):
            cells = _setup_cells(nb)
            assert len(cells) == 1, f"{name}: one setup cell (run `python tools/set_repository.py`)"
            assert cells[0].source == expected, f"{name}: setup cell disagrees with book.yml; run `python tools/set_repository.py`"
            first_code = next(c for c in nb.cells if c.cell_type == "code")
            assert first_code is cells[0], f"{name}: the setup cell must run before any other code"
            assert not cells[0].get("outputs"), f"{name}: the setup cell prints nothing where the course is installed"
    assert subprocess.run([sys.executable, str(ROOT / "tools" / "set_repository.py"), "--check"],
                          capture_output=True, text=True).returncode == 0


def _copy_course(tmp_path: Path, chapters=("00_introduction",)) -> tuple[Path, Path]:
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    for stem in chapters:
        for suffix in (".md", ".ipynb"):
            shutil.copy(NOTEBOOKS / f"{stem}{suffix}", notebooks / f"{stem}{suffix}")
    book = tmp_path / "book.yml"
    shutil.copy(ROOT / "book.yml", book)
    return notebooks, book


def _run_tool(notebooks: Path, book: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "tools" / "set_repository.py"), *args,
                           "--notebooks", str(notebooks), "--book", str(book)], capture_output=True, text=True)


def test_set_repository_rewrites_book_yml_and_both_files_of_every_chapter(tmp_path):
    notebooks, book = _copy_course(tmp_path)
    original_md = (notebooks / "00_introduction.md").read_text(encoding="utf-8")
    original_counts = [c.execution_count for c in read_ipynb(notebooks / "00_introduction.ipynb").cells
                       if c.cell_type == "code"]

    done = _run_tool(notebooks, book, "https://github.com/teacher/llm-course.git", "--branch", "spring-2027")
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(book.read_text(encoding="utf-8"))
    assert config["repository"] == {"url": "https://github.com/teacher/llm-course", "branch": "spring-2027"}
    assert "# The course's public repository" in book.read_text(encoding="utf-8"), "comments are kept"
    expected = set_repository.setup_source("https://github.com/teacher/llm-course", "spring-2027")
    md, ipynb = read_md(notebooks / "00_introduction.md"), read_ipynb(notebooks / "00_introduction.ipynb")
    assert [c.source for c in _setup_cells(md)] == [expected] == [c.source for c in _setup_cells(ipynb)]
    counts = [c.execution_count for c in ipynb.cells if c.cell_type == "code"]
    assert counts == original_counts, "updating the cell keeps the notebook executed in order"
    nbformat.validate(nbformat.read(notebooks / "00_introduction.ipynb", as_version=4))
    assert _run_tool(notebooks, book, "--check").returncode == 0

    # only the setup cell changed in the source
    changed = (notebooks / "00_introduction.md").read_text(encoding="utf-8")
    assert changed.replace(expected, "X") == original_md.replace(set_repository.setup_source("", "main"), "X")

    # back to no repository: the files are as they were
    assert _run_tool(notebooks, book, "--none", "--branch", "main").returncode == 0
    assert (notebooks / "00_introduction.md").read_text(encoding="utf-8") == original_md
    assert (notebooks / "00_introduction.ipynb").read_bytes() == (NOTEBOOKS / "00_introduction.ipynb").read_bytes()
    assert book.read_bytes() == (ROOT / "book.yml").read_bytes()


def test_set_repository_inserts_the_cell_into_a_new_chapter(tmp_path):
    notebooks, book = _copy_course(tmp_path)
    for suffix, writer in ((".md", None), (".ipynb", None)):
        path = notebooks / f"00_introduction{suffix}"
        if suffix == ".md":
            text = path.read_text(encoding="utf-8")
            block = re.search(r"```\{code-cell\} ipython3\n:tags: \[course-setup, remove-cell\]\n.*?```\n\n", text, re.S)
            path.write_text(text.replace(block.group(0), ""), encoding="utf-8")
        else:
            nb = nbformat.read(path, as_version=4)
            nb.cells = [c for c in nb.cells if set_repository.TAG not in c.metadata.get("tags", [])]
            for c in nb.cells:
                if c.cell_type == "code":
                    c.execution_count -= 1
            nbformat.write(nb, path)
    assert _run_tool(notebooks, book, "--check").returncode == 1
    assert _run_tool(notebooks, book).returncode == 0
    for path in (notebooks / "00_introduction.md", notebooks / "00_introduction.ipynb"):
        assert path.read_bytes() == (NOTEBOOKS / path.name).read_bytes(), f"{path.name}: inserted as in the course"


@pytest.mark.parametrize("bad", ["http://github.com/x/y", "github.com/x/y", "https://github.com/x/y; rm -rf /",
                                 "https://github.com/x/y\nurl: evil"])
def test_set_repository_refuses_what_is_not_a_repository_url(tmp_path, bad):
    notebooks, book = _copy_course(tmp_path)
    done = _run_tool(notebooks, book, bad)
    assert done.returncode != 0 and "https URL" in (done.stderr + done.stdout)
    assert book.read_bytes() == (ROOT / "book.yml").read_bytes()


def _run_setup_cell(source: str, tmp_path: Path, hidden: str = "course") -> subprocess.CompletedProcess:
    """Run the setup cell as Colab would: a kernel where `import course` fails, HOME in tmp_path.

    Prints, as JSON, where `course` then comes from, the working folder, and the
    pip commands the cell ran (recorded, not run: this machine has every dependency).
    """
    script = textwrap.dedent('''
        import importlib.util, json, os, subprocess, sys
        real_find_spec, real_run = importlib.util.find_spec, subprocess.run
        hidden = os.environ["HIDDEN_MODULES"].split(",")
        importlib.util.find_spec = lambda name, *a: None if name.split(".")[0] in hidden else real_find_spec(name, *a)
        pip_calls = []
        def run(cmd, **kwargs):
            if cmd[:3] == [sys.executable, "-m", "pip"]:
                pip_calls.append(cmd)
                return None
            return real_run(cmd, **kwargs)
        subprocess.run = run
        exec(compile(open(sys.argv[1]).read(), "setup-cell", "exec"), {})
        importlib.util.find_spec = real_find_spec
        import course
        print(json.dumps({"course": course.__file__, "cwd": os.getcwd(), "pip": pip_calls}))
    ''')
    (tmp_path / "cell.py").write_text(source, encoding="utf-8")
    (tmp_path / "run.py").write_text(script, encoding="utf-8")
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HOME"] = str(home)
    env["HIDDEN_MODULES"] = hidden
    return subprocess.run([sys.executable, str(tmp_path / "run.py"), str(tmp_path / "cell.py")],
                          capture_output=True, text=True, env=env, cwd=tmp_path)


def test_setup_cell_without_a_repository_says_what_to_do(tmp_path):
    done = _run_setup_cell(set_repository.setup_source("", "main"), tmp_path)
    assert done.returncode == 1
    assert "ModuleNotFoundError" in done.stderr and "make lab" in done.stderr and "README" in done.stderr
    assert not (tmp_path / "home" / "llm-course").exists(), "nothing is fetched from nowhere"


def test_setup_cell_with_a_repository_runs_the_chapter_from_a_clone_of_it(tmp_path):
    """A real clone, of a local repository standing in for the teacher's fork (Colab itself is out of reach)."""
    fork = tmp_path / "fork"
    (fork / "course").mkdir(parents=True)
    (fork / "course" / "__init__.py").write_text('FORK = "spring"\n')
    (fork / "notebooks").mkdir()
    (fork / "notebooks" / "00_introduction.md").write_text("# 00\n")
    (fork / "benchmarks" / "results").mkdir(parents=True)
    (fork / "benchmarks" / "results" / "train.json").write_text("{}")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]
    for cmd in (["init", "-q"], ["checkout", "-q", "-b", "spring"], ["add", "."], ["commit", "-q", "-m", "fork"]):
        subprocess.run(git + cmd, cwd=fork, check=True)
    source = set_repository.setup_source(fork.as_uri(), "spring")  # the tool only takes https; the cell takes any git URL
    done = _run_setup_cell(source, tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    clone = tmp_path / "home" / "llm-course"
    assert Path(result["course"]) == clone / "course" / "__init__.py", "course comes from the clone"
    assert Path(result["cwd"]) == clone / "notebooks", "the chapter runs from the clone's notebooks/ folder"
    assert (Path(result["cwd"]) / ".." / "benchmarks" / "results" / "train.json").is_file()
    assert result["pip"] == [], "this kernel has every dependency: nothing is installed (Colab keeps its torch)"
    again = _run_setup_cell(source, tmp_path, hidden="course,safetensors")  # twice: the clone is reused
    assert again.returncode == 0, again.stderr
    pip = json.loads(again.stdout.strip().splitlines()[-1])["pip"]
    assert pip == [[sys.executable, "-m", "pip", "install", "--quiet", "safetensors"]], "only what is missing"


def test_setup_cell_does_nothing_where_the_course_is_installed():
    namespace: dict = {}
    exec(set_repository.setup_source("https://github.com/teacher/llm-course", "main"), namespace)  # noqa: S102
    assert namespace["COURSE_REPOSITORY"] == "https://github.com/teacher/llm-course"


def test_launch_buttons_only_with_a_repository():
    config = yaml.safe_load((ROOT / "book.yml").read_text(encoding="utf-8"))
    without = dict(config, repository={"url": "", "branch": "main"})
    book, toc = build_book.book_config(without)
    assert "launch_buttons" not in book and "repository" not in book
    assert book["html"]["use_repository_button"] is False
    assert toc["root"] == "index"
    with_repo = dict(config, repository={"url": "https://github.com/teacher/llm-course", "branch": "main"})
    book, _ = build_book.book_config(with_repo)
    assert book["launch_buttons"]["binderhub_url"] and book["launch_buttons"]["colab_url"]
    assert book["repository"]["url"] == "https://github.com/teacher/llm-course"
    assert config["repository"]["url"] == "", "book.yml must not name a repository that does not exist"
    assert Path(book["sphinx"]["local_extensions"]["book_fixes"]).is_dir()


def test_book_fixes_keeps_one_copy_of_each_script():
    import book_fixes
    from sphinx.builders.html._assets import _JavaScript

    scripts = [_JavaScript("_static/a.js"), _JavaScript(None, body="const X = 1"), _JavaScript("_static/a.js"),
               _JavaScript("", body="const X = 1"), _JavaScript("", body="const Y = 2")]
    context = {"script_files": scripts}
    book_fixes.dedupe_scripts(None, "p", "page.html", context, None)
    assert [(s.filename or "", s.attributes.get("body")) for s in context["script_files"]] == [
        ("_static/a.js", None), ("", "const X = 1"), ("", "const Y = 2")]


# ----------------------------------------------------------------------------- Binder


def test_binder_installs_the_pinned_cpu_torch_and_the_course():
    pin = re.search(r'"(torch==[^"]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    post = (ROOT / "binder" / "postBuild").read_text()
    assert os.access(ROOT / "binder" / "postBuild", os.X_OK), "repo2docker runs postBuild only if it is executable"
    assert subprocess.run(["bash", "-n", str(ROOT / "binder" / "postBuild")]).returncode == 0
    assert "download.pytorch.org/whl/cpu" in post and "pyproject.toml" in post
    assert subprocess.run(["bash", "-c", "echo " + re.search(r"^TORCH_PIN=(.*)$", post, re.M).group(1)],
                          capture_output=True, text=True, cwd=ROOT).stdout.strip() == pin
    assert 'pip install --no-cache-dir -e ".[lab]"' in post and "lab/overrides.json" in post
    runtime = (ROOT / "binder" / "runtime.txt").read_text().strip()
    version = tuple(int(x) for x in runtime.removeprefix("python-").split("."))
    required = re.search(r'requires-python = ">=([0-9.]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    assert version >= tuple(int(x) for x in required.split("."))


# ----------------------------------------------------------------------------- JupyterLab (make lab)


def _lab_dir() -> Path:
    return Path(sys.prefix) / "share" / "jupyter"


def test_lab_settings_name_real_settings_of_this_jupyterlab():
    overrides = json.loads((ROOT / "lab" / "overrides.json").read_text())
    schemas = _lab_dir() / "lab" / "schemas"
    for plugin, values in overrides.items():
        package, name = plugin.rsplit(":", 1)
        schema_file = schemas / package / f"{name}.json"
        assert schema_file.is_file(), f"lab/overrides.json: no plugin {plugin} in this JupyterLab"
        properties = json.loads(schema_file.read_text())["properties"]
        for key in values:
            assert key in properties, f"lab/overrides.json: {plugin} has no setting {key!r}"
    viewers = overrides["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]
    assert viewers["markdown"] == "Jupytext Notebook"
    assert overrides["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"
    assert "LAB_FLAGS := --LabApp.app_settings_dir=$(CURDIR)/lab" in (ROOT / "Makefile").read_text()
    assert "$(LAB_FLAGS)" in (ROOT / "Makefile").read_text()


def _version(text: str) -> tuple[int, int, int]:
    return tuple(int(x) for x in re.match(r"[~^]?(\d+)\.(\d+)\.(\d+)", text).groups())


def _satisfies(have: str, spec: str) -> bool:
    """npm ranges as the extensions' build states them: ^a.b.c[-pre] (>= a.b.c, same major; same minor if a = 0)."""
    version = _version(have)
    for alternative in spec.split("||"):
        alternative = alternative.strip()
        if not alternative.startswith("^"):
            return True  # not a range this check knows: leave it to the browser test
        low = _version(alternative)
        same = version[:2] == low[:2] if low[0] == 0 else version[0] == low[0]
        if same and version >= low:
            return True
    return False


def test_satisfies_reads_caret_ranges():
    assert _satisfies("~4.6.6", "^4.6.0-beta.0") and not _satisfies("~4.5.11", "^4.6.0-beta.0")
    assert not _satisfies("5.0.0", "^4.6.0") and _satisfies("0.2.5", "^0.2.3") and not _satisfies("0.3.0", "^0.2.3")


@pytest.mark.parametrize("extension", ["jupyterlab-jupytext", "@jupyter-widgets/jupyterlab-manager"])
def test_lab_extensions_can_load_in_this_jupyterlab(extension):
    """Each extension's build names the versions of JupyterLab's shared packages it needs; an older JupyterLab
    does not load it (jupytext 1.19 on JupyterLab 4.5: the .md opened as text, with only a console warning)."""
    import jupyterlab

    lab = json.loads((Path(jupyterlab.__file__).parent / "static" / "package.json").read_text())
    provided = lab["resolutions"]
    static = _lab_dir() / "labextensions" / extension / "static"
    entry = next(static.glob("remoteEntry.*.js")).read_text(errors="ignore")
    needs = dict(re.findall(r'shareKey:"([^"]+)",import:[^,]*,requiredVersion:"([^"]+)"', entry))
    checked = {k: v for k, v in needs.items() if k in provided}
    assert checked, f"{extension}: found no shared-package requirements in its build (format changed?)"
    unmet = {k: f"needs {v}, JupyterLab {lab['version']} has {provided[k]}" for k, v in checked.items()
             if not _satisfies(provided[k], v)}
    assert not unmet, f"{extension} will not load: {unmet}. Pin a JupyterLab that provides them (pyproject.toml)."


def test_jupytext_provides_the_notebook_viewer_the_settings_name():
    code = "".join(p.read_text(errors="ignore") for p in (_lab_dir() / "labextensions" / "jupyterlab-jupytext" / "static").glob("*.js"))
    assert '"Jupytext Notebook"' in code


def test_every_chapter_names_the_kernel_jupyterlab_writes():
    """JupyterLab rewrites the kernelspec when the kernel starts: another display name marks the chapter modified."""
    from ipykernel.kernelspec import get_kernel_dict

    expected = {"name": "python3", "display_name": get_kernel_dict()["display_name"], "language": "python"}
    for md in sources():
        for nb, name in ((read_md(md), md.name), (read_ipynb(md.with_suffix(".ipynb")), md.with_suffix(".ipynb").name)):
            assert dict(nb.metadata["kernelspec"]) == expected, f"{name}: kernelspec {dict(nb.metadata['kernelspec'])}"
