"""A Sphinx extension of the course's book (book.yml: sphinx.local_extensions).

Colab opens the plain edition: sphinx-book-theme's Colab launch button points at
the page's notebook, notebooks/NN_topic.ipynb, whose MyST Colab shows as code. On a
chapter's page it points at plain/NN_topic.ipynb instead (tools/make_plain.py); the
Binder button still opens notebooks/ in JupyterLab, which renders MyST.

Scripts added twice: sphinx-togglebutton and sphinx-thebe add their inline
configuration scripts (``var togglebuttonSelector``, ``const THEBE_JS_URL``) once
more on every build that reuses the environment, and a second ``const`` declaration
is a JavaScript error on every page (browser_tests/test_book.py found it). Each
page keeps the first copy of every script.
"""

from __future__ import annotations

import re


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


def colab_opens_plain(app, pagename, templatename, context, doctree) -> None:
    """On a chapter's page, Colab's launch button opens plain/NN_topic.ipynb instead of notebooks/NN_topic.ipynb."""
    chapter = re.fullmatch(r"notebooks/(\d\d_\w+)", pagename)
    if chapter is None:
        return
    launch = [g for g in context.get("header_buttons") or [] if g.get("label") == "launch-buttons"]
    for group in launch:
        for button in group.get("buttons") or []:
            url = button.get("url") or ""
            if button.get("text") == "Colab" and url.endswith(f"/{pagename}.ipynb"):
                button["url"] = url.removesuffix(f"{pagename}.ipynb") + f"plain/{chapter[1]}.ipynb"


def setup(app):
    app.connect("html-page-context", colab_opens_plain, priority=900)  # after sphinx-book-theme's buttons (501)
    app.connect("html-page-context", dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
