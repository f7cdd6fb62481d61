"""Code shown from the course's files (solution boxes, a class of course/) as plain code blocks.

A chapter shows a solution, or a piece of the package, by naming where it comes from
in MyST comment lines, followed by the code itself in an ordinary fenced block:

    % literalinclude ../solutions/ch03_attention_numpy.py
    % :pyobject: softmax
    % :prepend: import numpy as np
    ```python
    import numpy as np
    def softmax(scores): ...
    ```

The comment lines use the options of Sphinx's `literalinclude` (`:pyobject:`,
`:prepend:`, `:lines:`, ...), and the block is what that directive would show, read
with Sphinx's own reader. Why not the directive itself: the book resolves it, but
JupyterLab (jupyterlab-myst), Colab and GitHub do not, and a solution there opened
to an empty box. The file stays the one source: this tool writes the blocks, and
tests/test_pairing.py fails when one is stale.

    python tools/sync_solutions.py            # rewrite stale blocks (the .md and its .ipynb)
    python tools/sync_solutions.py --check    # exit 1 and name them instead

A `{literalinclude}` directive in a chapter is converted to this form.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"

DIRECTIVE = re.compile(r"^```\{literalinclude\}[ \t]+(\S+)\n((?::[\w-]+:[^\n]*\n)*)```[ \t]*$", re.M)
GENERATED = re.compile(r"^% literalinclude[ \t]+(\S+)\n((?:% :[\w-]+:[^\n]*\n)*)(`{3,})python\n(.*?)^\3[ \t]*$",
                       re.M | re.S)
OPTION = re.compile(r"^:([\w-]+):[ \t]*(.*)$")


def parse_options(lines: str) -> dict[str, str | int]:
    """`:name: value` lines (with or without the leading "% ") as the options Sphinx's reader takes.

    Values are read as MyST reads directive options (YAML-like: "import math\\nimport torch" is two lines).
    """
    from myst_parser.parsers.options import options_to_items

    body = []
    for line in lines.splitlines():
        line = line.removeprefix("% ").strip()
        if not OPTION.match(line):
            raise ValueError(f"not an option line: {line!r}")
        body.append(line[1:])  # "pyobject: softmax"
    items, _ = options_to_items("\n".join(body))
    return {k: int(v) if k in ("dedent", "lineno-start") else str(v) for k, v in items}


def include(path: Path, options: dict[str, str | int]) -> str:
    """What Sphinx's `literalinclude` shows for `path` with `options` (its own reader, so the same text)."""
    from sphinx.directives.code import LiteralIncludeReader

    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (named by a literalinclude in a chapter)")
    text, _ = LiteralIncludeReader(str(path), dict(options), SimpleNamespace(source_encoding="utf-8-sig")).read()
    return text


def block(target: str, options: dict[str, str | int], code: str) -> str:
    """The comment lines and the fenced block for one included piece of code."""
    fence = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`{3,}", code)), default=0))
    lines = [f"% literalinclude {target}", *(f"% :{k}: {_option(v)}" for k, v in options.items())]
    return "\n".join(lines) + f"\n{fence}python\n{code.rstrip(chr(10))}\n{fence}"


def _option(value: str | int) -> str:
    """An option value as MyST reads it back (quoted, with escapes, when it spans lines)."""
    text = str(value)
    return json.dumps(text) if "\n" in text or text != text.strip() else text


def sync_text(text: str, folder: Path) -> str:
    """`text` (a chapter's markdown) with every included block regenerated and every directive converted."""
    def directive(match: re.Match) -> str:
        options = parse_options(match.group(2))
        return block(match.group(1), options, include((folder / match.group(1)).resolve(), options))

    def generated(match: re.Match) -> str:
        options = parse_options(match.group(2))
        return block(match.group(1), options, include((folder / match.group(1)).resolve(), options))

    return GENERATED.sub(generated, DIRECTIVE.sub(directive, text))


def sync(md: Path, check: bool = False) -> bool:
    """Bring one chapter's blocks (the .md and the markdown cells of its .ipynb) up to date; True if stale."""
    from execute_notebooks import stable_ids

    text = md.read_text(encoding="utf-8")
    new = sync_text(text, md.parent)
    stale = new != text
    ipynb = md.with_suffix(".ipynb")
    nb = nbformat.read(ipynb, as_version=4) if ipynb.is_file() else None
    if nb is not None:
        cells = [c for c in nb.cells if c.cell_type == "markdown"]
        updated = [sync_text(c.source, md.parent) for c in cells]
        stale_nb = any(u != c.source for u, c in zip(updated, cells))
        stale = stale or stale_nb
    if stale and not check:
        md.write_text(new, encoding="utf-8")
        if nb is not None and stale_nb:
            for cell, source in zip(cells, updated):
                cell.source = source
            stable_ids(nb)
            nbformat.write(nb, ipynb)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path, help="MyST sources (default: notebooks/*.md)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a block is stale")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "tools"))
    paths = args.notebooks or sorted(NOTEBOOKS.glob("[0-9][0-9]_*.md"))
    stale = [md for md in paths if sync(Path(md), check=args.check)]
    for md in stale:
        print(f"{md}: {'stale' if args.check else 'updated'} code from the course's files")
    if args.check and stale:
        print("run: python tools/sync_solutions.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
