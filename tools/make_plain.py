"""Write the plain edition: the executed chapters with their markdown in CommonMark + HTML.

    python tools/make_plain.py               # writes plain/ (what `make plain` runs)
    python tools/make_plain.py --out DIR     # somewhere else
    python tools/make_plain.py --check       # exit 1 if plain/ is out of date

Colab, VS Code and GitHub render a markdown cell as CommonMark (GitHub's flavour,
with `$` math) and show every MyST directive as a block of code. The plain edition
is notebooks/NN_topic.ipynb (code cells, outputs, metadata) with each markdown cell
rewritten for them:

- an admonition becomes a blockquote under its bold title, or with ``:class:
  dropdown`` a ``<details>`` box; an exercise a bold "Exercise N: title" line with
  an anchor (``<a id="label">``); a solution (``{solution-start}`` ...
  ``{solution-end}``) a ``<details>`` box "Solution to Exercise N";
- ``{eval}`` roles become the values stored with the executed notebook (each
  markdown cell's ``user_expressions``); ``{ref}`` / ``{numref}`` / ``{doc}`` become
  links, within the chapter or to another chapter's notebook in this folder;
- MyST comment lines (``%``) are dropped, ``(label)=`` targets become anchors, and
  an amsmath environment standing alone is wrapped in ``$$``.

Anything else (a directive or role without a plain form, ``{literalinclude}``, an
expression without a stored value) is an error that names the chapter: nothing is
dropped in silence. Every converted cell is then rendered with markdown-it-py
(CommonMark) and checked for MyST left over (`myst_leftovers`).

The notebooks keep their cell ids; the notebook's ``jupytext`` metadata (pairing
with a .md) and the markdown cells' ``user_expressions`` are left out. The folder
is generated, never edited: tests/test_plain_edition.py fails when it is stale.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import yaml
from markdown_it import MarkdownIt

sys.path.insert(0, str(Path(__file__).resolve().parent))
import inline_values  # noqa: E402  (tools/inline_values.py: what an {eval} shows)

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
BOOK = ROOT / "book.yml"
PLAIN = ROOT / "plain"
COLAB = "https://colab.research.google.com/github"
FIX = "edit the chapter's .md, then `make execute NOTEBOOKS=notebooks/NN_topic.md` and `make plain`"

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<mark>`{3,}|~{3,}|:{3,})(?P<info>.*)$")
DIRECTIVE = re.compile(r"^\{(?P<name>[^}\s]+)\}\s*(?P<argument>.*?)\s*$")
OPTION = re.compile(r"^:(?P<key>[\w-]+):(?:[ \t]+(?P<value>.*?))?[ \t]*$")
TARGET = re.compile(r"^\((?P<label>[^()\s]+)\)=[ \t]*$")
AMSMATH = re.compile(r"^\\begin\{(?P<env>(?:equation|multline|gather|align|alignat|flalign|eqnarray)\*?)\}")
# a role, or a code span (left as it is); roles inside code spans are text
INLINE = re.compile(r"\{(?P<role>[A-Za-z][\w:.+-]*)\}(?P<ticks>`+)(?P<content>.+?)(?<!`)(?P=ticks)(?!`)"
                    r"|(?P<code>(?P<cticks>`+).+?(?<!`)(?P=cticks)(?!`))", re.S)
EXPLICIT = re.compile(r"^(?P<text>.*?)\s*<(?P<target>[^<>]+)>$", re.S)
ADMONITIONS = {"admonition", "note", "tip", "hint", "important", "warning", "caution", "attention",
               "danger", "error", "seealso"}


class PlainEditionError(Exception):
    """A chapter has MyST that the plain edition cannot show; the message says which and what to do."""


@dataclass
class Directive:
    name: str
    argument: str
    options: dict[str, str]
    body: str


@dataclass
class Target:
    """Where a label points: a chapter, an anchor in it, and the text a reference shows."""
    chapter: str  # file stem, e.g. "03_attention_numpy"
    text: str | None


def blocks(text: str, where: str) -> list[tuple[str, str | Directive]]:
    """Split markdown into ("prose", text), ("code", fenced block as written) and ("directive", Directive)."""
    lines = text.split("\n")
    out: list[tuple[str, str | Directive]] = []
    prose: list[str] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        is_directive = bool(m) and m["info"].startswith("{")
        is_code = bool(m) and m["mark"][0] != ":" and not (m["mark"][0] == "`" and "`" in m["info"])
        if not (is_directive or is_code):
            prose.append(lines[i])
            i += 1
            continue
        if is_directive and m["indent"]:
            raise PlainEditionError(f"{where}: an indented directive ({lines[i].strip()}, in a list?) has no "
                                    "plain form; put it at the start of a line")
        closer = re.compile(rf"^[ \t]*{re.escape(m['mark'][0])}{{{len(m['mark'])},}}[ \t]*$")
        end = next((j for j in range(i + 1, len(lines)) if closer.match(lines[j])), None)
        if end is None and is_directive:
            raise PlainEditionError(f"{where}: {lines[i]!r} is never closed (a line of {m['mark']})")
        end = len(lines) - 1 if end is None else end  # CommonMark: an unclosed code fence runs to the end
        if prose:
            out.append(("prose", "\n".join(prose)))
            prose = []
        if is_directive:
            out.append(("directive", _directive(m["info"], lines[i + 1:end], where)))
        else:
            out.append(("code", "\n".join(lines[i:end + 1])))
        i = end + 1
    if prose:
        out.append(("prose", "\n".join(prose)))
    return out


def _directive(info: str, lines: list[str], where: str) -> Directive:
    head = DIRECTIVE.match(info)
    if head is None:
        raise PlainEditionError(f"{where}: cannot read the directive {info!r}")
    options: dict[str, str] = {}
    while lines and (option := OPTION.match(lines[0])):
        options[option["key"]] = option["value"] or ""
        lines = lines[1:]
    return Directive(head["name"], head["argument"], options, "\n".join(lines).strip("\n"))


def _walk(text: str, where: str):
    """The ("prose", text) and ("directive", Directive) blocks of a markdown text, nested ones included, in order."""
    for kind, value in blocks(text, where):
        if kind != "code":
            yield kind, value
        if kind == "directive":
            yield from _walk(value.body, where)


def targets(stem: str, nb) -> dict[str, Target]:
    """The labels a chapter defines: its exercises ("Exercise N"), named admonitions, (label)= targets."""
    found: dict[str, Target] = {}
    number = 0

    def add(label: str, text: str | None) -> None:
        if label in found:
            raise PlainEditionError(f"{stem}: the label {label!r} is defined twice")
        found[label] = Target(stem, text)

    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for kind, value in _walk(cell.source, stem):
            if kind == "prose":  # (label)= before a heading: a reference shows the heading
                lines = value.split("\n")
                for i, line in enumerate(lines):
                    if m := TARGET.match(line):
                        heading = re.match(r"^#{1,6}\s+(.*?)\s*$", next((x for x in lines[i + 1:] if x.strip()), ""))
                        add(m["label"], heading[1] if heading else None)
            elif value.name == "exercise":
                text = "Exercise" if "nonumber" in value.options else f"Exercise {(number := number + 1)}"
                if value.options.get("label"):
                    add(value.options["label"], text)
            elif value.options.get("name"):
                add(value.options["name"], value.argument if value.name == "admonition" else None)
    return found


def chapter_title(nb) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.split("\n"):
                if line.startswith("# "):
                    return line[2:].strip()
    return ""


def tex_macros(book: Path = BOOK) -> dict[str, str]:
    """The book's MathJax macros (book.yml); Colab and GitHub do not know them."""
    config = yaml.safe_load(book.read_text(encoding="utf-8")) or {}
    tex = (((config.get("sphinx") or {}).get("config") or {}).get("mathjax3_config") or {}).get("tex") or {}
    return dict(tex.get("macros") or {})


@dataclass
class Converter:
    """Turns one chapter's markdown cells, in order, into CommonMark + HTML."""
    chapter: str  # file stem
    labels: dict[str, Target] = field(default_factory=dict)
    titles: dict[str, str] = field(default_factory=dict)  # chapter stem -> title, for {doc}
    macros: dict[str, str] = field(default_factory=dict)
    expressions: list[dict] = field(default_factory=list)  # the current cell's user_expressions
    exercises: int = 0
    solution_end: str | None = None  # what closes the open solution box

    # ---------------------------------------------------------------- cells and blocks

    def cell(self, source: str, expressions: list[dict] | None = None) -> str:
        self.expressions = list(expressions or [])
        out = self.markdown(source)
        if self.solution_end is not None:
            raise PlainEditionError(f"{self.chapter}: a {{solution-start}} without its {{solution-end}} "
                                    "in the same cell")
        return out

    def markdown(self, text: str) -> str:
        parts = []
        for kind, value in blocks(text, self.chapter):
            if kind == "prose":
                part = self.prose(value)
            elif kind == "code":
                part = value
            else:
                part = self.directive(value)
            if part.strip():
                parts.append(part)
        return "\n\n".join(parts)

    def prose(self, text: str) -> str:
        out: list[str] = []
        lines = text.split("\n")
        in_math = False
        i = 0
        while i < len(lines):
            line = lines[i]
            i += 1
            if line.startswith("%"):  # a MyST comment (it splits paragraphs, as a blank line does)
                out.append("")
            elif line.startswith("+++"):
                raise PlainEditionError(f"{self.chapter}: a `+++` cell break inside a markdown cell: {line!r}")
            elif m := TARGET.match(line):
                out.append(f'<a id="{m["label"]}"></a>')
            elif not in_math and (m := AMSMATH.match(line)):
                end = next((j for j in range(i - 1, len(lines)) if f"\\end{{{m['env']}}}" in lines[j]), None)
                if end is None:
                    raise PlainEditionError(f"{self.chapter}: \\begin{{{m['env']}}} without its \\end")
                out += ["", "$$", *lines[i - 1:end + 1], "$$", ""]
                i = end + 1
            else:
                in_math ^= line.count("$$") % 2 == 1
                out.append(line)
        return self.inline(re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip("\n"))

    def inline(self, text: str) -> str:
        """Roles replaced, the book's TeX macros expanded; code spans left as they are."""
        out, at = [], 0
        for m in INLINE.finditer(text):
            out.append(self.expand_macros(text[at:m.start()]))
            out.append(m["code"] if m["code"] else self.role(m["role"], m["content"]))
            at = m.end()
        out.append(self.expand_macros(text[at:]))
        return "".join(out)

    def expand_macros(self, text: str) -> str:
        for name, value in self.macros.items():
            if not isinstance(value, str):
                if re.search(rf"\\{name}(?![A-Za-z])", text):
                    raise PlainEditionError(f"{self.chapter}: the TeX macro \\{name} takes arguments; "
                                            "write it out in the chapter")
                continue
            text = re.sub(rf"\\{name}(?![A-Za-z])", lambda _: value, text)
        return text

    # ---------------------------------------------------------------- directives

    def directive(self, d: Directive) -> str:
        def allow(*keys: str) -> None:
            unknown = sorted(set(d.options) - set(keys))
            if unknown:
                raise PlainEditionError(f"{self.chapter}: {{{d.name}}} {d.argument}: option(s) "
                                        f"{', '.join(':%s:' % k for k in unknown)} have no plain form")

        if d.name in ADMONITIONS:
            allow("class", "name")
            title, body = (d.argument, d.body) if d.name == "admonition" else (d.name.capitalize(),
                                                                                 f"{d.argument}\n{d.body}")
            title, body = self.inline(title), self.markdown(body.strip("\n"))
            anchor = f'<a id="{d.options["name"]}"></a>' if d.options.get("name") else ""
            if "dropdown" in d.options.get("class", "").split():
                summary = MarkdownIt("commonmark").renderInline(title)
                return f"{anchor}\n\n<details>\n<summary><b>{summary}</b></summary>\n\n{body}\n\n</details>".lstrip()
            quoted = "\n".join(f"> {line}" if line.strip() else ">" for line in body.split("\n"))
            return f"> {anchor}**{title}**\n>\n{quoted}" if body else f"> {anchor}**{title}**"
        if d.name == "exercise":
            allow("label", "class", "nonumber")
            number = ""
            if "nonumber" not in d.options:
                self.exercises += 1
                number = f" {self.exercises}"
            label = d.options.get("label")
            if label in self.labels and self.labels[label].text != f"Exercise{number}":
                raise PlainEditionError(f"{self.chapter}: exercise {label!r} numbered differently in two passes")
            title = self.inline(d.argument)
            head = f"**Exercise{number}: {title}**" if title else f"**Exercise{number}**"
            anchor = f'<a id="{label}"></a>\n' if label else ""
            return f"{anchor}{head}\n\n{self.markdown(d.body)}".rstrip()
        if d.name in ("solution-start", "solution"):
            allow("class", "label")
            if self.solution_end is not None:
                raise PlainEditionError(f"{self.chapter}: a solution starts inside another solution")
            target = self.labels.get(d.argument)
            if target is None or target.chapter != self.chapter or not (target.text or "").startswith("Exercise"):
                raise PlainEditionError(f"{self.chapter}: {{{d.name}}} {d.argument}: no exercise with that label "
                                        "in this chapter")
            dropdown = "dropdown" in d.options.get("class", "").split()
            head = (f"<details>\n<summary>Solution to {target.text}</summary>" if dropdown
                    else f"**Solution to {target.text}**")
            self.solution_end = "</details>" if dropdown else ""
            if d.name == "solution":  # the whole solution in one directive
                return self._close_solution(f"{head}\n\n{self.markdown(d.body)}")
            if d.body.strip():
                raise PlainEditionError(f"{self.chapter}: {{solution-start}} {d.argument} has a body; "
                                        "the solution goes between it and {solution-end}")
            return head
        if d.name == "solution-end":
            if self.solution_end is None:
                raise PlainEditionError(f"{self.chapter}: a {{solution-end}} without a {{solution-start}}")
            return self._close_solution("")
        if d.name == "math":
            allow("label", "name")
            anchor = [f'<a id="{d.options.get("label") or d.options.get("name")}"></a>', ""] if d.options else []
            return "\n".join([*anchor, "$$", self.expand_macros(d.body), "$$"])
        if d.name in ("code-block", "code", "sourcecode"):
            allow("linenos", "lineno-start", "emphasize-lines")
            fence = "`" * max(3, 1 + max((len(run) for run in re.findall("`+", d.body)), default=0))
            return f"{fence}{d.argument}\n{d.body}\n{fence}"
        if d.name == "literalinclude":
            raise PlainEditionError(
                f"{self.chapter}: {{literalinclude}} {d.argument}: the plain edition cannot read files; write the code "
                "as a fenced block under `% literalinclude ...` comment lines (CONTRIBUTING.md, Exercises)")
        raise PlainEditionError(f"{self.chapter}: the directive {{{d.name}}} has no plain form "
                                "(add one to tools/make_plain.py, or write the cell without it)")

    def _close_solution(self, text: str) -> str:
        end, self.solution_end = self.solution_end, None
        return f"{text}\n\n{end}".strip("\n")

    # ---------------------------------------------------------------- roles

    def role(self, name: str, content: str) -> str:
        if name == "eval":
            return self.evaluate(content)
        if name in ("ref", "numref"):
            return self.reference(name, content)
        if name == "doc":
            return self.document(content)
        if name == "math":
            return f"${self.expand_macros(content)}$"
        if name in ("sub", "sup"):
            return f"<{name}>{content}</{name}>"
        if name == "term":
            m = EXPLICIT.match(content)
            return m["text"] if m else content
        raise PlainEditionError(f"{self.chapter}: the role {{{name}}}`{content}` has no plain form "
                                "(add one to tools/make_plain.py, or write the text without it)")

    def evaluate(self, expression: str) -> str:
        """What the prose shows for an inline expression: the same text as in JupyterLab and the book."""
        stored = [e for e in self.expressions if e.get("expression") == expression]
        try:
            if not stored:
                raise ValueError("has no stored value")
            return inline_values.shown(stored[-1].get("result", {}))
        except ValueError as err:
            raise PlainEditionError(
                f"{self.chapter}: {{eval}}`{expression}` {err}; execute the chapter (`make execute "
                f"NOTEBOOKS=notebooks/{self.chapter}.md`, tools/execute_notebooks.py), then `make plain`") from None

    def reference(self, role: str, content: str) -> str:
        m = EXPLICIT.match(content)
        text, label = (m["text"], m["target"]) if m else (None, content.strip())
        target = self.labels.get(label)
        if target is None:
            raise PlainEditionError(f"{self.chapter}: {{{role}}}`{content}`: no chapter defines the label {label!r}")
        if text is None:
            if target.text is None:
                raise PlainEditionError(f"{self.chapter}: {{{role}}}`{content}`: {label!r} has no title to show; "
                                        f"write {{{role}}}`text <{label}>`")
            text = target.text
            if target.chapter != self.chapter and text.startswith("Exercise"):
                text += f" of chapter {target.chapter[:2]}"
        href = f"#{label}" if target.chapter == self.chapter else f"{target.chapter}.ipynb#{label}"
        return f"[{text}]({href})"

    def document(self, content: str) -> str:
        m = EXPLICIT.match(content)
        text, path = (m["text"], m["target"]) if m else (None, content.strip())
        stem = Path(path).name.removesuffix(".md").removesuffix(".ipynb")
        if stem not in self.titles:
            raise PlainEditionError(f"{self.chapter}: {{doc}}`{content}`: the plain edition links only to chapters")
        return f"[{text or self.titles[stem]}]({stem}.ipynb)"


# -------------------------------------------------------------------- the check


_LEFTOVER_LINES = [
    (re.compile(r"^:{3,}\{"), "a MyST colon fence"),
    (re.compile(r"^\([^()\s]+\)=\s*$"), "a MyST (label)= target"),
    (re.compile(r"^%"), "a MyST % comment line"),
    (re.compile(r"^\+\+\+"), "a +++ cell break"),
    (re.compile(r"^:[\w-]+:(\s|$)"), "a directive option line"),
]


def myst_leftovers(markdown: str) -> list[str]:
    """MyST syntax that a CommonMark renderer would show as text or code, found in the rendered tokens."""
    found = []
    tokens = MarkdownIt("commonmark").parse(markdown)
    for token in tokens:
        if token.type == "fence" and token.info.strip().startswith("{"):
            found.append(f"a MyST directive fence ```{token.info.strip()}")
        if token.type in ("inline", "html_block"):
            for line in token.content.split("\n"):
                for pattern, what in _LEFTOVER_LINES:
                    if pattern.match(line.strip()):
                        found.append(f"{what}: {line.strip()!r}")
        children = token.children or []
        for before, after in zip(children, children[1:]):
            role = re.search(r"\{[A-Za-z][\w:.+-]*\}$", before.content) if before.type == "text" else None
            if role and after.type == "code_inline":
                found.append(f"a MyST role {role[0]}`{after.content}`")
    return found


# -------------------------------------------------------------------- the edition


def chapters(notebooks: Path = NOTEBOOKS) -> list[Path]:
    """Every chapter's executed notebook."""
    found = sorted(notebooks.glob("[0-9][0-9]_*.ipynb"))
    missing = [md.name for md in sorted(notebooks.glob("[0-9][0-9]_*.md")) if not md.with_suffix(".ipynb").is_file()]
    if missing:
        raise PlainEditionError(f"{', '.join(missing)}: not executed yet; run `make execute` first")
    return found


def plain_notebook(stem: str, nb, labels: dict[str, Target], titles: dict[str, str], macros: dict[str, str]):
    """One chapter's plain notebook (a copy; ``nb`` is unchanged)."""
    nb = copy.deepcopy(nb)
    nb.metadata.pop("jupytext", None)  # not paired with a .md: jupytext must not write one beside it
    convert = Converter(stem, labels, titles, macros)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        cell.source = convert.cell(cell.source, cell.metadata.pop("user_expressions", None))
        left = myst_leftovers(cell.source)
        if left:  # pragma: no cover - a bug of the converter, not of the chapter
            raise PlainEditionError(f"{stem}, markdown cell {index}: MyST left after conversion: {'; '.join(left)}")
    return nb


def colab_url(repository: str, branch: str, name: str) -> str | None:
    """Colab's link to plain/<name> in a GitHub repository (Colab opens notebooks from GitHub only)."""
    m = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+)", repository)
    return f"{COLAB}/{m[1]}/{m[2]}/blob/{branch}/plain/{name}" if m else None


def repository(book: Path = BOOK) -> tuple[str, str]:
    """(url, branch) of the course's public repository in book.yml (tools/set_repository.py writes them)."""
    config = yaml.safe_load(book.read_text(encoding="utf-8")) or {}
    repo = config.get("repository") or {}
    return (repo.get("url") or "").strip(), (repo.get("branch") or "main").strip()


def readme(titles: dict[str, str], url: str, branch: str) -> str:
    lines = [
        "# The plain edition (generated: do not edit)",
        "",
        "The course's chapters as notebooks for **Colab, VS Code and GitHub**: the executed",
        "`notebooks/NN_topic.ipynb` with every output, and with their markdown written as",
        "CommonMark and HTML instead of MyST (which these show as blocks of code): admonitions",
        "as quotes, exercises as bold lines, solutions and answers in collapsed boxes, the",
        "numbers in the prose as the run computed them.",
        "",
        "`make plain` (`tools/make_plain.py`) writes this folder from the chapters; any edit",
        "made here is lost. To change a chapter, edit `notebooks/NN_topic.md`, then run",
        "`make execute NOTEBOOKS=notebooks/NN_topic.md` and `make plain`",
        "(`tests/test_plain_edition.py` fails while this folder is out of date).",
        "In a clone, work in `notebooks/` with `make lab`: JupyterLab shows MyST as the book does.",
        "",
    ]
    links = {stem: colab_url(url, branch, f"{stem}.ipynb") for stem in titles}
    if all(links.values()) and links:
        lines += ["| chapter | |", "|---|---|"]
        lines += [f"| [{titles[stem]}]({stem}.ipynb) | [Open in Colab]({links[stem]}) |" for stem in titles]
    else:
        lines += ["| chapter |", "|---|"] + [f"| [{titles[stem]}]({stem}.ipynb) |" for stem in titles]
        lines += ["", "No GitHub repository is set in `book.yml`, so there are no Colab links here: "
                      "`python tools/set_repository.py https://github.com/you/llm-course` sets one "
                      "(README.md, \"Colab and Binder\")."]
    return "\n".join(lines) + "\n"


def edition(notebooks: Path = NOTEBOOKS, book: Path = BOOK) -> dict[str, str]:
    """The plain edition as {file name: text}: every chapter's notebook, and README.md."""
    read = {path.stem: nbformat.read(path, as_version=4) for path in chapters(notebooks)}
    labels: dict[str, Target] = {}
    for stem, nb in read.items():
        for label, target in targets(stem, nb).items():
            if label in labels:
                raise PlainEditionError(f"{stem}: the label {label!r} is defined in {labels[label].chapter} too")
            labels[label] = target
    titles = {stem: chapter_title(nb) for stem, nb in read.items()}
    macros = tex_macros(book)
    files = {f"{stem}.ipynb": nbformat.writes(plain_notebook(stem, nb, labels, titles, macros)) + "\n"
             for stem, nb in read.items()}
    files["README.md"] = readme(titles, *repository(book))
    return files


def stale(out: Path, files: dict[str, str]) -> list[str]:
    """The files of ``out`` that differ from ``files``: changed, missing, or no longer in the edition."""
    present = {p.name for p in out.glob("*") if p.is_file()} if out.is_dir() else set()
    differ = [name for name, text in files.items()
              if name not in present or (out / name).read_text(encoding="utf-8") != text]
    return sorted(differ + [name for name in present - set(files) if name.endswith((".ipynb", ".md"))])


def write_edition(out: Path = PLAIN, notebooks: Path = NOTEBOOKS, book: Path = BOOK) -> list[str]:
    """Write the edition into ``out``; return the names of the files that changed."""
    files = edition(notebooks, book)
    changed = stale(out, files)
    out.mkdir(parents=True, exist_ok=True)
    for name in changed:
        if name in files:
            (out / name).write_text(files[name], encoding="utf-8")
        else:
            (out / name).unlink()  # a chapter that is gone
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=PLAIN, help="folder to write (default: plain/)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if the folder is out of date")
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOKS, help=argparse.SUPPRESS)
    parser.add_argument("--book", type=Path, default=BOOK, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        if args.check:
            differ = stale(args.out, edition(args.notebooks, args.book))
            if differ:
                print(f"{args.out}: out of date ({', '.join(differ)}); run `make plain`")
                return 1
            print(f"{args.out}: up to date")
            return 0
        changed = write_edition(args.out, args.notebooks, args.book)
    except PlainEditionError as error:
        print(f"make_plain: {error}", file=sys.stderr)
        return 1
    print(f"plain edition in {args.out}: " + (f"rewrote {', '.join(changed)}" if changed else "up to date"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
