"""The sampling explorer of chapter 06: prompt, temperature, top-k, top-p and seed in; text and a distribution out.

`explore(model, tokenizer, ...)` computes everything the widget shows (a plain
function that tests call without a browser); `explorer_figure` draws the
next-token distribution before and after the settings; `sampling_explorer` is
the thin ipywidgets wiring around the two.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from matplotlib.figure import Figure

from course.model import GPT
from course.plots.sampling import before_after
from course.sampling import entropy, generate_text, next_token_probs
from course.widgets.explorer import Explorer, static_face


@dataclass(frozen=True)
class Exploration:
    """What the explorer shows for one setting of its controls."""

    prompt: str
    settings: dict  # temperature, top_k, top_p (None when switched off)
    seed: int
    text: str  # the generated continuation
    labels: list[str]  # the most likely next tokens after the prompt (before processing), best first
    before: torch.Tensor  # their probabilities under the model (temperature 1, nothing filtered)
    after: torch.Tensor  # their probabilities under the settings
    kept: int  # how many tokens of the whole vocabulary keep a probability above 0
    entropy_before: float  # bits, whole distribution
    entropy_after: float

    @property
    def summary(self) -> str:
        s = self.settings
        parts = [f"T={s['temperature']:g}", f"top-k={s['top_k'] or 'off'}", f"top-p={s['top_p'] if s['top_p'] is not None else 'off'}"]
        return (f"{', '.join(parts)}, seed {self.seed}: {self.kept} tokens can be drawn next; "
                f"entropy {self.entropy_before:.2f} -> {self.entropy_after:.2f} bits")


def explore(
    model: GPT,
    tokenizer,
    prompt: str = "ROMEO:\n",
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int = 0,
    n_tokens: int = 200,
    show: int = 12,
) -> Exploration:
    """Generate from ``prompt`` with these settings and describe the first next-token distribution.

    ``top_k=0`` and ``top_p=1.0`` switch those filters off (the slider positions).
    """
    if not prompt:
        raise ValueError("the prompt is empty: type at least one character.")
    settings = {"temperature": float(temperature), "top_k": int(top_k) or None, "top_p": None if top_p >= 1.0 else float(top_p)}
    ids = torch.tensor([tokenizer.encode(prompt)], dtype=torch.long)
    with torch.no_grad():
        logits, _ = model(ids[:, -model.config.block_size:])
    last = logits[:, -1, :].float()
    before = torch.softmax(last, dim=-1)[0]
    after = next_token_probs(last, ids, **settings)[0]
    top = torch.argsort(before, descending=True)[:show]
    text = generate_text(model, tokenizer, prompt, n_tokens, generator=torch.Generator().manual_seed(seed), **settings)
    log2 = math.log(2)
    return Exploration(
        prompt=prompt, settings=settings, seed=seed, text=text,
        labels=[tokenizer.decode([int(i)]) for i in top], before=before[top], after=after[top],
        kept=int((after > 0).sum()),
        entropy_before=float(entropy(last[0])) / log2,
        entropy_after=float(entropy(torch.log(after))) / log2,
    )


def explorer_figure(result: Exploration) -> Figure:
    """The next-token distribution after the prompt: the model's (grey) and the one sampled from (colour)."""
    fig = before_after(result.labels, result.before, result.after, result.summary)
    fig.axes[0].legend(fontsize=8)
    return fig


def sampling_explorer(
    model: GPT,
    tokenizer,
    prompt: str = "ROMEO:\n",
    n_tokens: int = 200,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int = 0,
) -> Explorer:
    """Controls for the prompt and the settings; the generated text and the distribution follow them.

    The keyword arguments set where the controls start (the view the picture in
    the book shows).
    """
    import ipywidgets as w
    import matplotlib.pyplot as plt
    from IPython.display import display

    style = {"description_width": "90px"}
    prompt_box = w.Textarea(value=prompt, description="prompt", layout=w.Layout(width="420px", height="60px"), style=style)
    start = explore(model, tokenizer, prompt, temperature, top_k, top_p, seed, n_tokens)  # the first view; fails early on a bad prompt
    t_slider = w.FloatSlider(value=temperature, min=0.05, max=2.0, step=0.05, description="temperature", continuous_update=False, style=style)
    k_slider = w.IntSlider(value=top_k, min=0, max=model.config.vocab_size, description="top-k (0 off)", continuous_update=False, style=style)
    p_slider = w.FloatSlider(value=top_p, min=0.05, max=1.0, step=0.05, description="top-p (1 off)", continuous_update=False, style=style)
    seed_box = w.IntText(value=seed, description="seed", style=style)
    out = w.Output()

    def show(result: Exploration) -> None:
        print(result.prompt + result.text)
        fig = explorer_figure(result)
        display(fig)
        plt.close(fig)

    def redraw(_change: object = None) -> None:
        out.clear_output(wait=True)
        with out:
            try:
                result = explore(model, tokenizer, prompt_box.value, t_slider.value, k_slider.value, p_slider.value, seed_box.value, n_tokens)
            except ValueError as err:  # e.g. a character the tokenizer does not know
                print(f"cannot sample: {err}")
                return
            show(result)

    for control in (prompt_box, t_slider, k_slider, p_slider, seed_box):
        control.observe(redraw, names="value")
    with out:
        show(start)
    face_fig = explorer_figure(start)
    face = static_face(face_fig, f"prompt {prompt!r}, {start.summary.split(':')[0]}")
    plt.close(face_fig)
    return Explorer([w.HBox([w.VBox([prompt_box, seed_box]), w.VBox([t_slider, k_slider, p_slider])]), out], face=face,
                    description=f"Sampling explorer (prompt {prompt!r})")
