"""What every explorer of chapters 02, 03 and 06 shares: a live widget with a static face.

A live ipywidgets view needs a running kernel. The rendered book has none, and a
notebook opened from disk has not run yet, so the view would be empty there.
`Explorer` is an ipywidgets ``VBox`` whose output carries two faces of the same
thing:

- ``application/vnd.jupyter.widget-view+json``: the live widget, which JupyterLab
  shows while the kernel runs;
- ``image/png``: its default view drawn as a picture, with one line saying that
  the controls are live in JupyterLab. The book shows this face (book.yml tells
  it to skip the widget view), and so does JupyterLab for a notebook whose
  outputs it does not trust, one opened from disk before it has run.

`static_face` draws that picture from the figure the explorer shows first.
"""

from __future__ import annotations

import base64
import io
import textwrap

import ipywidgets as w
from matplotlib.figure import Figure

LIVE_NOTE = "Live in JupyterLab: run the notebook, then use the controls. Shown here: the default view"

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def static_face(fig: Figure, settings: str, *, dpi: int = 100) -> bytes:
    """The figure as PNG bytes, with a last line naming the settings it shows and where it is live.

    The figure is drawn as it is; the line goes below it (``bbox_inches="tight"``
    grows the picture to hold it), so the caller's figure is not resized.
    """
    if not settings:
        raise ValueError("`settings` must name what the picture shows, e.g. 'dim = 64, base = 10000'.")
    width_chars = max(40, int(fig.get_figwidth() * 15))  # about 15 characters of 9-point italic per inch
    line = textwrap.fill(f"{LIVE_NOTE} ({settings}).", width_chars)
    note = fig.text(0.5, 0.0, line, ha="center", va="top", fontsize=9, style="italic", color="#444444")
    try:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.15)
    finally:
        note.remove()
    return buf.getvalue()


class Explorer(w.VBox):
    """A VBox whose output also holds a picture of its default view (``face``) and a plain-text line.

    Front ends pick the richest face they can show: JupyterLab with a kernel draws
    the widget; the book and untrusted notebooks show the picture; a terminal
    prints the line.
    """

    def __init__(self, children, *, face: bytes, description: str, **kwargs) -> None:
        if not face.startswith(PNG_SIGNATURE):
            raise ValueError("`face` must be PNG bytes, as `static_face` returns.")
        super().__init__(children, **kwargs)
        self.face = face
        self.description = description

    def _repr_mimebundle_(self, **kwargs):
        bundle = super()._repr_mimebundle_(**kwargs) or {}
        bundle["image/png"] = base64.b64encode(self.face).decode("ascii")
        bundle["text/plain"] = f"{self.description}. {LIVE_NOTE}."
        return bundle


__all__ = ["Explorer", "LIVE_NOTE", "PNG_SIGNATURE", "static_face"]
