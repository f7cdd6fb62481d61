"""Browser tests: the rendered book and JupyterLab, opened in headless Chromium (`make browser-test`).

The browser is the system's Chromium (Debian's package ``chromium``; set
``COURSE_CHROMIUM`` to use another binary), driven by Playwright; no browser is
downloaded. Every step writes a screenshot under ``_build/browser/`` for a person
to look at. Pages may load nothing from outside the machine: every request to
another host is refused and reported.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import socket
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "browser"

# Chromium on a machine with no network: no background connections, no sandbox as root
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-quic",
]


def chromium_path() -> str:
    path = os.environ.get("COURSE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("no Chromium found: install Debian's `chromium` package (make browser-test does, as root) "
                    "or point COURSE_CHROMIUM at a Chromium binary", pytrace=False)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def browser():
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[browser]'")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield b
        b.close()


class LocalOnly:
    """Refuses every request that leaves 127.0.0.1 and remembers it."""

    def __init__(self) -> None:
        self.refused: list[str] = []

    def __call__(self, route) -> None:
        url = route.request.url
        if url.startswith(("http://127.0.0.1", "http://localhost", "data:", "blob:", "about:")):
            route.continue_()
        else:
            self.refused.append(url)
            route.abort()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    guard = LocalOnly()
    context.route("**/*", guard)
    pg = context.new_page()
    pg.errors = []  # uncaught JavaScript errors
    pg.on("pageerror", lambda err: pg.errors.append(str(err)))
    pg.local_only = guard
    yield pg
    context.close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # the test reports what matters
        pass


@pytest.fixture(scope="session")
def book_url():
    if not (HTML / "index.html").is_file():
        pytest.fail("no rendered book: run `make render` (or `make book`) first", pytrace=False)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()),
                                             functools.partial(_QuietHandler, directory=str(HTML)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="session")
def shots() -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS
