"""Every explorer widget has a static face: a picture of its default view, shown where no kernel runs.

The book renders executed notebooks without a kernel; an ipywidgets view there is
an empty box. course/widgets/explorer.py puts a PNG of the default view beside the
widget view in the same output, and book.yml tells the book to skip the widget
view. These tests check the faces themselves, the executed notebooks (no widget
output without a picture) and the book's setting. browser_tests/ checks the
rendered pages in a browser.
"""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from course.widgets.explorer import LIVE_NOTE, PNG_SIGNATURE, Explorer, static_face  # noqa: E402
from notebook_utils import NOTEBOOKS, read_ipynb  # noqa: E402

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _png_size(png: bytes) -> tuple[int, int]:
    assert png.startswith(PNG_SIGNATURE)
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")  # the IHDR chunk


def _face_of(explorer: Explorer) -> tuple[dict, bytes]:
    bundle = explorer._repr_mimebundle_()
    assert WIDGET_VIEW in bundle, "the live widget view must stay first in line for JupyterLab"
    png = base64.b64decode(bundle["image/png"])
    assert png.startswith(PNG_SIGNATURE)
    assert LIVE_NOTE in bundle["text/plain"]
    return bundle, png


def test_static_face_adds_a_line_below_and_leaves_the_figure_as_it_was():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1], [0, 1])
    plain = io.BytesIO()
    fig.savefig(plain, format="png", dpi=100, bbox_inches="tight", pad_inches=0.15)
    face = static_face(fig, "x = 1")
    assert not fig.texts, "the note must not stay on the caller's figure"
    (w0, h0), (w1, h1) = _png_size(plain.getvalue()), _png_size(face)
    assert h1 > h0, "the note goes below the figure, so the picture grows"
    assert w1 >= w0 - 2
    with pytest.raises(ValueError, match="settings"):
        static_face(fig, "")
    plt.close(fig)


def test_explorer_rejects_a_face_that_is_not_png():
    with pytest.raises(ValueError, match="PNG"):
        Explorer([], face=b"GIF89a", description="x")


def test_positions_explorer_face():
    from course.widgets.positions import positions_explorer

    bundle, png = _face_of(positions_explorer(dim=16, base=100.0, num_positions=20))
    assert "dim = 16, base = 100" in bundle["text/plain"]
    assert _png_size(png)[0] > 600
    plt.close("all")


def test_attention_explorer_face():
    from course.widgets.attention import attention_explorer

    bundle, _ = _face_of(attention_explorer(["One word, good citizens.", "Speak, speak."], n_heads=2))
    assert "2 sentences, 2 heads" in bundle["text/plain"]
    plt.close("all")


def test_sampling_explorer_face_and_its_starting_settings():
    from course.model import GPT, GPTConfig
    from course.tokenizers.char import CharTokenizer
    from course.widgets.sampling import explore, sampling_explorer

    torch.manual_seed(0)
    tok = CharTokenizer(list("abcdefgh \n"))
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=16, dropout=0.0)).eval()
    box = sampling_explorer(model, tok, "abc", n_tokens=10, temperature=0.8, top_p=0.9, seed=2)
    _face_of(box)
    controls = [c for column in box.children[0].children for c in column.children]
    values = {c.description: c.value for c in controls}
    assert values["temperature"] == 0.8 and values["top-p (1 off)"] == 0.9 and values["seed"] == 2
    with pytest.raises(ValueError, match="prompt is empty"):
        sampling_explorer(model, tok, "")
    assert explore(model, tok, "abc", 0.8, 0, 0.9, 2, 10).settings["top_p"] == 0.9
    plt.close("all")


def _widget_outputs(nb):
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if WIDGET_VIEW in out.get("data", {}):
                yield i, out


@pytest.mark.parametrize("chapter", ["02_embeddings_and_positions", "03_attention_numpy", "06_sampling"])
def test_each_explorer_chapter_stores_a_face(chapter):
    outputs = list(_widget_outputs(read_ipynb(NOTEBOOKS / f"{chapter}.ipynb")))
    assert outputs, f"{chapter} should show an explorer widget"
    for i, out in outputs:
        png = base64.b64decode(out["data"].get("image/png", ""))
        assert png.startswith(PNG_SIGNATURE), (
            f"{chapter}.ipynb cell {i}: a widget output without a picture shows as an empty box in the book; "
            "build the explorer on course.widgets.explorer.Explorer and re-execute the chapter")


def test_no_chapter_stores_a_widget_without_a_face():
    for ipynb in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        for i, out in _widget_outputs(read_ipynb(ipynb)):
            assert "image/png" in out["data"], f"{ipynb.name} cell {i}: widget output without a static face"


def test_the_book_shows_the_face_not_the_widget_view():
    config = yaml.safe_load((NOTEBOOKS.parent / "book.yml").read_text(encoding="utf-8"))
    overrides = config["sphinx"]["config"]["nb_mime_priority_overrides"]
    assert ["*", WIDGET_VIEW, None] in [list(o) for o in overrides], (
        "book.yml must drop the widget view for every builder (myst-nb priority None): "
        "with no kernel and no saved state it renders as an empty box")
