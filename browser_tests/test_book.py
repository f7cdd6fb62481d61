"""Every page of the rendered book, opened in headless Chromium with no network.

On every page: the math is typeset by the MathJax served with the book, every image
loads, no Python traceback shows, no widget or output area is left empty, the
solutions are collapsed (and open when clicked), no script fails, and nothing is
fetched from another host. A screenshot of each page (and of each explorer's
picture) goes to _build/browser/book/.
"""

from __future__ import annotations

import re

import pytest

from conftest import HTML

PAGES = sorted(p.relative_to(HTML).as_posix() for p in HTML.rglob("*.html")
               if not p.relative_to(HTML).parts[0].startswith("_")) if HTML.is_dir() else []
CHAPTERS_WITH_EXPLORERS = {"notebooks/02_embeddings_and_positions.html", "notebooks/03_attention_numpy.html",
                           "notebooks/06_sampling.html"}

BROKEN_IMAGES = """async () => {
  const broken = [];
  for (const img of document.images) {
    const probe = new Image();
    probe.src = img.currentSrc || img.src;
    try { await probe.decode(); if (!probe.naturalWidth) broken.push(img.src); }
    catch (e) { broken.push(img.src); }
  }
  return broken;
}"""

UNTYPESET_MATH = """async () => {
  if (!window.MathJax) return ['MathJax is not loaded'];
  if (MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  const raw = [];
  for (const el of document.querySelectorAll('.math')) {
    if (!el.querySelector('mjx-container') && el.tagName !== 'MJX-CONTAINER') raw.push(el.textContent.slice(0, 60));
  }
  return raw;
}"""

EMPTY_OUTPUTS = """() => {
  const empty = [];
  for (const out of document.querySelectorAll('.cell_output')) {
    const text = out.innerText.trim();
    const media = out.querySelector('img, svg, table, mjx-container, iframe, video');
    if (!text && !media) {
      const cell = out.closest('.cell');
      const code = cell ? (cell.querySelector('.cell_input') || cell).innerText.trim() : '';
      empty.push(code.slice(0, 80));
    }
  }
  return empty;
}"""


def test_the_book_has_pages():
    assert "index.html" in PAGES and any(p.startswith("notebooks/") for p in PAGES), (
        f"{HTML} holds no rendered chapters: run `make render`")


@pytest.mark.parametrize("name", PAGES)
def test_page(page, book_url, shots, name):
    page.goto(f"{book_url}/{name}", wait_until="load")
    html = page.content()
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", name.removesuffix(".html"))
    out = shots / "book"
    out.mkdir(exist_ok=True)

    if 'class="math' in html:
        assert page.evaluate(UNTYPESET_MATH) == [], f"{name}: math left untypeset"
        sources = page.eval_on_selector_all("script[src*='mathjax' i]", "els => els.map(e => e.src)")
        assert sources and all(s.startswith(book_url) for s in sources), (
            f"{name}: MathJax must be served with the book (sphinx-mathjax-offline), got {sources}")

    assert page.evaluate(BROKEN_IMAGES) == [], f"{name}: images that do not load"
    text = page.inner_text("body")
    assert "Traceback" not in text, f"{name}: a Python traceback is shown"
    assert "COURSE_REPOSITORY" not in text, f"{name}: the Colab setup cell is shown (it is tagged remove-cell)"
    raw = re.findall(r"(?:VBox|HBox|IntSlider|FloatSlider|Output)\(|<Figure size [^>]*>|<matplotlib\.[^>]*>", text)
    assert not raw, f"{name}: raw Python reprs shown instead of their pictures: {raw[:3]}"
    assert page.locator("script[type='application/vnd.jupyter.widget-view+json']").count() == 0, (
        f"{name}: a widget view without a kernel renders as an empty box (book.yml: nb_mime_priority_overrides)")
    assert page.evaluate(EMPTY_OUTPUTS) == [], f"{name}: output areas with nothing in them (cells shown)"

    page.screenshot(path=str(out / f"{stem}.png"))
    solutions = page.locator(".solution.dropdown")
    for i in range(solutions.count()):
        body = solutions.nth(i).locator(":scope > :not(.admonition-title)")
        assert body.count() and not any(body.nth(j).is_visible() for j in range(body.count())), (
            f"{name}: solution {i + 1} is open; solutions start collapsed")
    if solutions.count():
        first = solutions.first
        button = first.locator("button.toggle-button")  # the title's own text links to the exercise
        button.click()
        body = first.locator(":scope > :not(.admonition-title)")
        page.wait_for_timeout(400)  # the toggle animates
        assert any(body.nth(j).is_visible() for j in range(body.count())), f"{name}: a solution does not open"
        button.click()

    if name in CHAPTERS_WITH_EXPLORERS:
        faces = page.locator(".cell", has=page.locator(".cell_input", has_text="_explorer(")).locator(".cell_output img")
        assert faces.count() >= 1, f"{name}: the explorer's picture is missing"
        for i in range(faces.count()):
            faces.nth(i).scroll_into_view_if_needed()
            faces.nth(i).screenshot(path=str(out / f"{stem}-explorer-{i + 1}.png"))
            assert faces.nth(i).evaluate("img => img.naturalWidth") > 300

    assert page.errors == [], f"{name}: JavaScript errors: {page.errors}"
    assert page.local_only.refused == [], f"{name}: tried to load from outside: {page.local_only.refused[:5]}"


def test_search_works_offline(page, book_url, shots):
    page.goto(f"{book_url}/search.html?q=softmax", wait_until="load")
    results = page.locator("#search-results li, ul.search li")
    results.first.wait_for(timeout=30_000)
    assert results.count() >= 3, "searching the book for 'softmax' should find several pages"
    (shots / "book").mkdir(exist_ok=True)
    page.screenshot(path=str(shots / "book" / "search-softmax.png"))
    assert page.local_only.refused == []
