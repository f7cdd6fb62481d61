"""JupyterLab as `make lab` starts it, driven by headless Chromium like a student would use it.

A copy of chapter 02 (its MyST source, its executed notebook and jupytext.toml) is
served from a temporary folder, so nothing JupyterLab saves can touch the
repository, with fresh user settings and workspaces, so nothing of a person's own
JupyterLab leaks in. The server gets the flags the Makefile's `lab` target passes
(read from the Makefile). Steps, each with a screenshot in _build/browser/lab/:

1. the file browser lists the chapter; no pop-up (the "official Jupyter news" question);
2. double-clicking the .md opens it as a notebook (jupytext), with the stored outputs,
   not marked modified;
3. Run All: the explorer widget appears live;
4. typing a new dimension into its slider's box redraws the figure: the picture changes.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from conftest import ROOT, free_port

CHAPTER = "02_embeddings_and_positions"


def make_lab_flags() -> list[str]:
    """The extra flags `make lab` gives `jupyter lab` (Makefile: LAB_FLAGS), with $(CURDIR) resolved."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    match = re.search(r"^LAB_FLAGS\s*:?=\s*(.*)$", text, flags=re.M)
    assert match, "the Makefile defines LAB_FLAGS for `make lab`"
    return shlex.split(match.group(1).replace("$(CURDIR)", str(ROOT)))


@contextlib.contextmanager
def running_lab(root: Path, work: Path, *extra_flags: str) -> Iterator[str]:
    """JupyterLab as `make lab` starts it, serving `work`, with fresh settings under `root`; yields its URL."""
    port = free_port()
    env = dict(os.environ,
               JUPYTERLAB_SETTINGS_DIR=str(root / "user-settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(root / "workspaces"),
               JUPYTER_CONFIG_DIR=str(root / "config"),
               JUPYTER_RUNTIME_DIR=str(root / "runtime"))
    jupyter = Path(sys.executable).with_name("jupyter")
    cmd = [str(jupyter), "lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
           "--IdentityProvider.token=", "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
           *(["--allow-root"] if os.geteuid() == 0 else []), *make_lab_flags(), *extra_flags, str(work)]
    log = open(root / "lab.log", "w")
    server = subprocess.Popen(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status", timeout=2)
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"JupyterLab did not start:\n{(root / 'lab.log').read_text()[-3000:]}", pytrace=False)
            time.sleep(0.5)
    try:
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    work = root / "notebooks"
    work.mkdir()
    for name in (f"{CHAPTER}.md", f"{CHAPTER}.ipynb", "jupytext.toml"):
        shutil.copy(ROOT / "notebooks" / name, work / name)
    with running_lab(root, work) as url:
        yield url, work


def run_all_cells(page) -> None:
    """Run > Run All Cells from the menu, as a learner does, with the open notebook in command mode."""
    page.locator(".jp-Notebook").click()
    page.keyboard.press("Escape")
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()


def _notebook_tab(page):
    return page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text=CHAPTER[:12])


def test_a_student_opens_the_chapter_runs_it_and_moves_a_slider(lab, page, shots):
    url, work = lab
    out = shots / "lab"
    out.mkdir(exist_ok=True)
    before = {p.name: p.read_bytes() for p in work.iterdir()}

    # 1. the file browser, with no pop-up over it
    page.goto(f"{url}/lab", wait_until="load")
    item = page.locator(".jp-DirListing-item", has_text=f"{CHAPTER}.md")
    item.wait_for(timeout=60_000)
    page.wait_for_timeout(3000)  # the news question, when enabled, arrives a moment after start
    page.screenshot(path=str(out / "1-file-browser.png"))
    assert page.get_by_text("official Jupyter news").count() == 0, "a pop-up asks about Jupyter news"

    # 2. the MyST source opens as a notebook, with the stored outputs, unmodified
    item.dblclick()
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
    page.locator(".jp-OutputArea-output").first.wait_for(timeout=60_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle'], .jp-Toolbar-kernelStatus", timeout=60_000)
    page.wait_for_timeout(3000)  # let the kernel connect: a kernelspec that differs would mark it modified now
    page.screenshot(path=str(out / "2-chapter-opened.png"))
    assert page.locator(".jp-FileEditor:visible").count() == 0, "the .md opened in the text editor, not as a notebook"
    tab = _notebook_tab(page)
    assert tab.count() == 1
    assert "jp-mod-dirty" not in (tab.get_attribute("class") or ""), "the chapter is marked modified just by opening it"

    # 3. Run All; the explorer appears live (a slider with its editable box)
    run_all_cells(page)
    readout = page.locator(".widget-slider .widget-readout").first
    readout.wait_for(timeout=180_000)
    explorer = page.locator(".jp-OutputArea-output", has=page.locator(".widget-slider")).first
    image = explorer.locator("img").first
    image.wait_for(timeout=60_000)
    explorer.scroll_into_view_if_needed()
    page.screenshot(path=str(out / "3-explorer-live.png"))
    first_src = image.get_attribute("src")
    assert readout.inner_text().strip() == "64", "the dimension slider starts at 64"

    # 4. move the slider (type into its box, as a keyboard user would) and see the figure change
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("16")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "([el, src]) => { const img = el.querySelector('img'); return img && img.getAttribute('src') !== src; }",
        arg=[explorer.element_handle(), first_src], timeout=60_000)
    page.wait_for_timeout(500)
    explorer.scroll_into_view_if_needed()
    page.screenshot(path=str(out / "4-slider-moved.png"))
    assert readout.inner_text().strip() == "16"

    # nothing was written to the files (the student has not saved)
    after = {p.name: p.read_bytes() for p in work.iterdir() if p.name in before}
    assert after == before, "JupyterLab changed the chapter's files without being asked to save"
    assert page.errors == [], f"JavaScript errors: {page.errors}"
