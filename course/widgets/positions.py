"""The position-encoding explorer of chapter 02: vary the dimension and the base, see the table change.

`explorer_data(dim, base)` computes everything the widget shows (a plain function
that tests call without a browser); `explorer_figure` draws it; `positions_explorer`
is the thin ipywidgets wiring around the two.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure

from course.plots.positions import positions_explorer as _draw
from course.positional import sinusoidal_table, wavelengths
from course.widgets.explorer import Explorer, static_face


@dataclass(frozen=True)
class ExplorerData:
    """What the explorer shows for one setting of its sliders."""

    dim: int
    base: float
    table: np.ndarray  # (num_positions, dim), the sinusoidal table
    offsets: np.ndarray  # 0 .. num_positions - 1
    similarity: np.ndarray  # PE[0]·PE[k] / (dim/2), 1 at k = 0
    wavelengths: np.ndarray  # 2π·base^(2i/dim), one per pair

    @property
    def summary(self) -> str:
        return (
            f"dim={self.dim}, base={self.base:g}: {self.dim // 2} frequencies, wavelengths from "
            f"{self.wavelengths[0]:.2f} to {self.wavelengths[-1]:,.0f} positions"
        )


def explorer_data(dim: int = 64, base: float = 10000.0, num_positions: int = 100) -> ExplorerData:
    """The sinusoidal table for (dim, base) and what follows from it.

    The similarity PE[0]·PE[k] equals the sum over pairs of cos(k·ω_i) (the sines
    of position 0 are zero, the cosines one); divided by dim/2 it is 1 at k = 0.
    """
    table = sinusoidal_table(num_positions, dim, base, dtype=torch.float64).numpy()
    similarity = table[0] @ table.T / (dim / 2)
    return ExplorerData(
        dim=dim,
        base=float(base),
        table=table,
        offsets=np.arange(num_positions),
        similarity=similarity,
        wavelengths=wavelengths(dim, base).numpy(),
    )


def explorer_figure(dim: int = 64, base: float = 10000.0, num_positions: int = 100) -> Figure:
    """The explorer's figure for one setting (also the static figure shown in the book)."""
    data = explorer_data(dim, base, num_positions)
    return _draw(data.table, data.offsets, data.similarity, data.wavelengths, title=data.summary)


def positions_explorer(dim: int = 64, base: float = 10000.0, num_positions: int = 100) -> Explorer:
    """Sliders for the dimension and the base, and the figure that follows them."""
    import ipywidgets as w
    import matplotlib.pyplot as plt
    from IPython.display import display

    dim_slider = w.IntSlider(value=dim, min=2, max=256, step=2, description="dim", continuous_update=False)
    base_slider = w.FloatLogSlider(
        value=base, base=10, min=1, max=6, step=0.25, description="base", continuous_update=False
    )
    out = w.Output()

    def redraw(_change: object = None) -> None:
        fig = explorer_figure(dim_slider.value, base_slider.value, num_positions)
        out.clear_output(wait=True)
        with out:
            display(fig)
        plt.close(fig)

    dim_slider.observe(redraw, names="value")
    base_slider.observe(redraw, names="value")
    redraw()
    face_fig = explorer_figure(dim, base, num_positions)
    face = static_face(face_fig, f"dim = {dim}, base = {base:g}; sliders: dim 2 to 256, base 10 to 10^6")
    plt.close(face_fig)
    return Explorer([w.HBox([dim_slider, base_slider]), out], face=face,
                    description=f"Position-encoding explorer (dim = {dim}, base = {base:g})")


__all__ = ["ExplorerData", "explorer_data", "explorer_figure", "positions_explorer"]
