"""Render the Jupyter Book to _build/html from book.yml (config + toc in one file).

Jupyter Book 1 cannot read config keys from a toc file, so the `toc:` section of
book.yml is written to _build/_toc.yml and the rest to _build/_config.yml. Only
chapters whose executed notebook exists are listed. Sphinx warnings are errors
(a broken cross-reference fails the build).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "_build"


def book_config(config: dict) -> tuple[dict, dict]:
    """Split book.yml into (Jupyter Book config, toc), checking the toc and the repository setting."""
    config = dict(config)
    toc = config.pop("toc")
    for part in toc.get("parts", []):
        for chapter in part["chapters"]:
            f = chapter["file"]
            if not any((ROOT / f).with_suffix(s).is_file() for s in (".ipynb", ".md")):
                raise SystemExit(f"book.yml lists {f}, which does not exist")
    if not (config.get("repository") or {}).get("url"):
        # no public repository configured (tools/set_repository.py): buttons would point nowhere
        config.pop("launch_buttons", None)
        config.pop("repository", None)
        config["html"] = {**config.get("html", {}), "use_repository_button": False}
    sphinx = config.get("sphinx") or {}
    if sphinx.get("local_extensions"):  # relative to the repository, not to _build/ where the config goes
        config["sphinx"] = {**sphinx, "local_extensions": {
            name: str((ROOT / folder).resolve()) for name, folder in sphinx["local_extensions"].items()}}
    return config, toc


def main() -> int:
    config, toc = book_config(yaml.safe_load((ROOT / "book.yml").read_text(encoding="utf-8")))
    BUILD.mkdir(exist_ok=True)
    (BUILD / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False), encoding="utf-8")
    (BUILD / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    cmd = [
        str(Path(sys.executable).with_name("jupyter-book")), "build", str(ROOT),
        "--config", str(BUILD / "_config.yml"), "--toc", str(BUILD / "_toc.yml"),
        "--path-output", str(ROOT), "-W", "-n", "--keep-going",
    ]
    print(" ".join(cmd), flush=True)
    result = subprocess.run(cmd, cwd=ROOT)
    if result.returncode == 0:
        print(f"book: {BUILD / 'html' / 'index.html'}")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
