"""Point the course at its public repository: the book's launch buttons and every chapter's setup cell.

    python tools/set_repository.py https://github.com/you/llm-course            # a fork, branch main
    python tools/set_repository.py https://github.com/you/llm-course --branch spring
    python tools/set_repository.py --none       # no public repository: no launch buttons
    python tools/set_repository.py              # rewrite the setup cells from book.yml as it is
    python tools/set_repository.py --check      # exit 1 if a chapter disagrees with book.yml

One setting drives both: ``repository.url`` (and ``repository.branch``) in book.yml.

- The book shows its launch buttons (Binder, Colab, JupyterLab) and the repository
  button only when a URL is set (tools/build_book.py). Binder opens a chapter's
  notebooks/NN_topic.ipynb in JupyterLab; Colab, which shows MyST as code, opens the
  plain edition, plain/NN_topic.ipynb (tools/book_fixes.py, tools/make_plain.py).
- Every chapter opens with a setup cell (tagged ``course-setup``, hidden in the
  book). Where ``import course`` already works (a clone with ``make lab``, Binder)
  it does nothing. Where it does not (Colab), it clones the configured repository
  (the package, and the benchmark results the chapters quote), puts it on the
  path and runs from its notebooks/ folder, or, with no repository configured,
  stops with what to do.

The plain edition (plain/) is written again too, when there is one: it holds the
setup cells, and its README links every chapter to Colab.

The setup cell is written into both files of each chapter, the MyST source and the
executed notebook. In the executed notebook it is inserted, when missing, as the
first code cell with no output, which is what executing it gives wherever the
course is installed (the tests check that it stays so: nbval re-executes it).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import jupytext
import nbformat
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from execute_notebooks import stable_ids  # noqa: E402  (tools/execute_notebooks.py)

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
BOOK = ROOT / "book.yml"
TAG = "course-setup"
TAGS = [TAG, "remove-cell"]
URL_PATTERN = re.compile(r"^https://[A-Za-z0-9.-]+(:[0-9]+)?/[A-Za-z0-9._~/-]+$")

SETUP_TEMPLATE = '''\
# Setup for Colab: fetch the course if this kernel does not have it. The repository is
# set in book.yml (`python tools/set_repository.py URL` writes it here).
COURSE_REPOSITORY, COURSE_BRANCH = {url}, {branch}
import importlib, importlib.util, os, subprocess, sys
if importlib.util.find_spec("course") is None:
    if not COURSE_REPOSITORY:
        raise ModuleNotFoundError(
            "The `course` package is not installed in this kernel. In a clone of the course, "
            "start JupyterLab with `make lab` (or run `pip install -e .`); to run in Colab, "
            "see 'Colab and Binder' in the README.")
    clone = os.path.expanduser("~/llm-course")  # the whole course: chapters also read benchmarks/results/
    if not os.path.isdir(clone):
        subprocess.run(["git", "clone", "--depth", "1", "--branch", COURSE_BRANCH, COURSE_REPOSITORY, clone], check=True)
    sys.path.insert(0, clone)
    os.chdir(os.path.join(clone, "notebooks"))  # where the chapters run in the course itself
    missing = [m for m in ("torch", "numpy", "matplotlib", "ipywidgets", "regex", "safetensors", "tqdm")
               if importlib.util.find_spec(m) is None]
    if missing:  # Colab has most of them: keep its versions, add what is missing
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *missing], check=True)
    importlib.invalidate_caches()'''


def read_repository(book: Path = BOOK) -> tuple[str, str]:
    """(url, branch) from book.yml; url is "" when no public repository is set."""
    config = yaml.safe_load(book.read_text(encoding="utf-8"))
    repo = config.get("repository") or {}
    url = (repo.get("url") or "").strip()
    branch = (repo.get("branch") or "main").strip()
    if url and not URL_PATTERN.match(url):
        raise SystemExit(f"book.yml: repository.url {url!r} is not an https URL of a repository")
    return url, branch


def write_repository(url: str, branch: str, book: Path = BOOK) -> None:
    """Set repository.url and repository.branch in book.yml, keeping its comments and layout."""
    if url and not URL_PATTERN.match(url):
        raise SystemExit(f"{url!r} is not an https URL of a repository, e.g. https://github.com/you/llm-course")
    if not re.fullmatch(r"[A-Za-z0-9._/-]+", branch):
        raise SystemExit(f"{branch!r} is not a branch name")
    text = book.read_text(encoding="utf-8")
    block = re.search(r"^repository:\n((?:[ \t]+.*\n|\n)*)", text, flags=re.M)
    if block is None:
        raise SystemExit("book.yml has no `repository:` section")
    body = block.group(1)
    body, n_url = re.subn(r"^([ \t]+url:).*$", lambda m: f'{m.group(1)} "{url}"', body, count=1, flags=re.M)
    body, n_branch = re.subn(r"^([ \t]+branch:).*$", lambda m: f"{m.group(1)} {branch}", body, count=1, flags=re.M)
    if not (n_url and n_branch):
        raise SystemExit("book.yml: the `repository:` section needs `url:` and `branch:` lines")
    book.write_text(text[: block.start(1)] + body + text[block.end(1):], encoding="utf-8")
    if read_repository(book) != (url, branch):
        raise SystemExit("book.yml: writing the repository failed (check its `repository:` section)")


def setup_source(url: str, branch: str) -> str:
    return SETUP_TEMPLATE.format(url=json.dumps(url), branch=json.dumps(branch))


def _setup_index(cells) -> int | None:
    for i, cell in enumerate(cells):
        if TAG in cell.get("metadata", {}).get("tags", []):
            return i
    return None


def _first_code_index(cells) -> int:
    for i, cell in enumerate(cells):
        if cell.cell_type == "code":
            return i
    return len(cells)


def _with_setup(nb, source: str, executed: bool) -> bool:
    """Put the setup cell into ``nb`` (update it, or insert it before the first code cell). True if changed."""
    i = _setup_index(nb.cells)
    if i is not None:
        cell = nb.cells[i]
        if cell.source == source and cell.metadata.get("tags") == TAGS:
            return False
        cell.source, cell.metadata["tags"] = source, list(TAGS)
        return True
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": list(TAGS)})
    at = _first_code_index(nb.cells)
    if executed:
        cell.execution_count = 1
        for later in nb.cells[at:]:
            if later.cell_type == "code" and later.execution_count is not None:
                later.execution_count += 1
    nb.cells.insert(at, cell)
    return True


def _md_with_setup(text: str, source: str) -> str:
    """The MyST text with its setup cell set to ``source`` (edited as text: jupytext would reformat the file)."""
    block = f"```{{code-cell}} ipython3\n:tags: [{', '.join(TAGS)}]\n\n{source}\n```\n"
    existing = re.compile(r"^```\{code-cell\}[^\n]*\n:tags: \[[^\]]*" + re.escape(TAG) + r"[^\]]*\]\n.*?^```\n",
                          flags=re.M | re.S)
    if existing.search(text):
        return existing.sub(lambda _: block, text, count=1)
    first = re.search(r"^```\{code-cell\}", text, flags=re.M)
    at = first.start() if first else len(text)
    return text[:at] + block + "\n" + text[at:]


def sync_chapter(md: Path, url: str, branch: str, *, check: bool = False) -> list[str]:
    """Bring one chapter's setup cell in line with (url, branch); return the files that differ (or changed)."""
    source = setup_source(url, branch)
    differing = []
    text = md.read_text(encoding="utf-8")
    new_text = _md_with_setup(text, source)
    if new_text != text:
        differing.append(md.name)
        if not check:
            md.write_text(new_text, encoding="utf-8")
            if _setup_index(jupytext.read(md).cells) is None:  # pragma: no cover - a bug here, not in the chapter
                raise SystemExit(f"{md.name}: the setup cell was written but jupytext does not read it back")
    ipynb = md.with_suffix(".ipynb")
    if ipynb.is_file():
        nb = nbformat.read(ipynb, as_version=4)
        if _with_setup(nb, source, executed=True):
            differing.append(ipynb.name)
            if not check:
                stable_ids(nb)  # the ids the executor gives, so a re-execution changes none
                nbformat.write(nb, ipynb)
    return differing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", nargs="?", help="the course's public repository, e.g. https://github.com/you/llm-course")
    parser.add_argument("--branch", default=None, help="branch the setup cell installs from (default: as in book.yml)")
    parser.add_argument("--none", action="store_true", help="no public repository: no launch buttons")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a chapter disagrees")
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOKS, help=argparse.SUPPRESS)
    parser.add_argument("--book", type=Path, default=BOOK, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    url, branch = read_repository(args.book)
    if args.url or args.none or args.branch:
        if args.check:
            parser.error("--check changes nothing: give no URL with it")
        url = "" if args.none else (args.url or url).rstrip("/").removesuffix(".git")
        branch = args.branch or branch
        write_repository(url, branch, args.book)
    changed = []
    for md in sorted(args.notebooks.glob("[0-9][0-9]_*.md")):
        changed += sync_chapter(md, url, branch, check=args.check)
    where = url or "no public repository (launch buttons hidden)"
    if args.check:
        if changed:
            print(f"setup cells disagree with book.yml ({where}): {', '.join(changed)}\n"
                  "run `python tools/set_repository.py` to rewrite them")
            return 1
        print(f"every chapter's setup cell agrees with book.yml ({where})")
        return 0
    plain = args.notebooks.parent / "plain"
    if plain.is_dir():  # the plain edition holds the setup cells too, and its README the Colab links
        import make_plain  # tools/make_plain.py

        try:
            changed += [f"plain/{name}" for name in make_plain.write_edition(plain, args.notebooks, args.book)]
        except make_plain.PlainEditionError as error:
            print(f"the chapters are rewritten, but not the plain edition: {error}", file=sys.stderr)
            return 1
    print(f"repository: {where}, branch {branch}; rewrote {len(changed)} file(s)"
          + (f": {', '.join(changed)}" if changed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
