"""The course map as a picture: the path from text to generated text (chapter 00)."""

from __future__ import annotations

from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from . import PALETTE, new_figure

#: (label, detail, chapter) for each stage of a GPT-style language model.
STAGES: list[tuple[str, str, str]] = [
    ("text", '"To be, or not"', "00"),
    ("tokens", "integer ids,\none per token", "01"),
    ("embeddings\n+ positions", "vectors (T x d)", "02"),
    ("causal\nself-attention", "mix information\nfrom earlier tokens", "03, 04"),
    ("MLP, residual,\nnorm (x N blocks)", "the Transformer\nblock, repeated", "04"),
    ("logits\n-> softmax", "next-token\ndistribution", "04, 05"),
    ("sampling", "pick a token,\nappend, repeat", "06"),
]


def pipeline_diagram() -> Figure:
    """Boxes and arrows from text to sampled text, each stage labelled with its chapter."""
    fig, ax = new_figure(11.0, 3.2)
    ax.set_xlim(0, len(STAGES) * 1.6)
    ax.set_ylim(0, 3)
    ax.axis("off")
    for i, (label, detail, chapter) in enumerate(STAGES):
        x = 0.15 + i * 1.6
        colour = PALETTE[i % len(PALETTE)]
        box = FancyBboxPatch((x, 1.1), 1.25, 1.4, boxstyle="round,pad=0.04", fc=colour, ec="black", alpha=0.25)
        ax.add_patch(box)
        ax.text(x + 0.625, 2.1, label, ha="center", va="center", fontsize=9, weight="bold")
        ax.text(x + 0.625, 1.45, detail, ha="center", va="center", fontsize=7.5, color="#333333")
        ax.text(x + 0.625, 2.62, f"ch. {chapter}", ha="center", va="center", fontsize=8, color="#333333")
        if i + 1 < len(STAGES):
            ax.add_patch(FancyArrowPatch((x + 1.3, 1.8), (x + 1.6 + 0.12, 1.8), arrowstyle="-|>", mutation_scale=12))
    # the loop of autoregressive generation
    ax.add_patch(
        FancyArrowPatch(
            (0.15 + 6 * 1.6 + 0.625, 1.05), (0.15 + 1 * 1.6 + 0.625, 1.05),
            connectionstyle="arc3,rad=-0.18", arrowstyle="-|>", mutation_scale=12, ls="--", color="#555555",
        )
    )
    ax.text(0.15 + 3.5 * 1.6 + 0.625, 0.15, "append the sampled token and run again (autoregressive generation)",
            ha="center", fontsize=8, color="#555555")
    ax.set_title("A GPT-style language model, stage by stage (training: chapter 05; fine-tuning: 07; efficiency: 08; scaling: 09; other families, data: 10)", fontsize=10)
    return fig
