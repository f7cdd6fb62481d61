"""A Sphinx extension of the course's book (book.yml: sphinx.local_extensions).

Scripts added twice: sphinx-togglebutton and sphinx-thebe add their inline
configuration scripts (``var togglebuttonSelector``, ``const THEBE_JS_URL``) once
more on every build that reuses the environment, and a second ``const`` declaration
is a JavaScript error on every page (browser_tests/test_book.py found it). Each
page keeps the first copy of every script.
"""

from __future__ import annotations


def _script_key(script) -> tuple:
    filename = getattr(script, "filename", str(script)) or ""  # None or "" for an inline script (text in attributes)
    attributes = tuple(sorted((k, str(v)) for k, v in getattr(script, "attributes", {}).items()))
    return filename, attributes


def dedupe_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            kept.append(script)
    scripts[:] = kept


def setup(app):
    app.connect("html-page-context", dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
