"""The attention explorer of chapter 03: pick a sentence, a head, a scale and the mask; see the weights.

`attention_maps(sentence, ...)` computes what the widget shows (a plain function
that tests call without a browser): the sentence split into word tokens, and the
attention weights of every head of one **untrained** multi-head attention layer
(random embeddings and random projections, fixed by ``seed``). The patterns are
therefore not linguistics: they show what the mask and the scale do. `attention_figure`
draws one head; `attention_explorer` is the thin ipywidgets wiring around the two.

The ``scale`` is a temperature-like factor on the scores: the weights are
``softmax(scale · q kᵀ / √d_head)``; ``scale=0`` gives uniform weights over the
visible keys, a large scale approaches a one-hot argmax.
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from course.attention_numpy import (
    causal_mask,
    init_attention_params,
    scaled_dot_product_attention,
    split_heads,
)
from course.plots.attention import attention_heatmap
from course.widgets.explorer import Explorer, static_face

_WORD = re.compile(r"\w+(?:'\w+)?|[^\w\s]")


def word_tokens(sentence: str) -> list[str]:
    """A simple word-level split: words (with an inner apostrophe, as in "we'll") and punctuation marks."""
    if not isinstance(sentence, str):
        raise TypeError(f"`sentence` must be a str; got {type(sentence).__name__}.")
    tokens = _WORD.findall(sentence)
    if not tokens:
        raise ValueError(f"`sentence` has no words to attend over: {sentence!r}.")
    return tokens


def _token_vector(token: str, d_model: int) -> np.ndarray:
    """A fixed random embedding per (lower-cased) token: the same word always gets the same vector."""
    rng = np.random.default_rng(zlib.crc32(token.lower().encode("utf-8")))
    return rng.standard_normal(d_model)


def _sinusoidal(t: int, d_model: int) -> np.ndarray:
    """Sinusoidal positions (chapter 02): PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(...)."""
    pos = np.arange(t)[:, None]
    freq = 10000.0 ** (-np.arange(0, d_model, 2) / d_model)
    pe = np.zeros((t, d_model))
    pe[:, 0::2] = np.sin(pos * freq)
    pe[:, 1::2] = np.cos(pos * freq)
    return pe


@dataclass(frozen=True)
class AttentionMaps:
    """What the explorer shows for one sentence and setting."""

    tokens: list[str]
    weights: np.ndarray  # (heads, time, time); each row sums to 1
    scale: float
    causal: bool

    @property
    def entropy(self) -> np.ndarray:
        """Mean entropy (nats) of each head's rows: low = sharp, log(#visible keys) = uniform."""
        w = self.weights
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(w > 0, -w * np.log(w), 0.0)
        return terms.sum(axis=-1).mean(axis=-1)


def attention_maps(
    sentence: str,
    *,
    n_heads: int = 4,
    d_model: int = 32,
    scale: float = 1.0,
    causal: bool = True,
    seed: int = 0,
) -> AttentionMaps:
    """The weights of every head of an untrained attention layer over ``sentence``'s word tokens."""
    if not math.isfinite(scale) or scale < 0:
        raise ValueError(f"`scale` must be a finite number >= 0; got {scale!r}.")
    tokens = word_tokens(sentence)
    t = len(tokens)
    x = np.stack([_token_vector(tok, d_model) for tok in tokens]) + _sinusoidal(t, d_model)
    params = init_attention_params(d_model, seed)
    q = split_heads((x @ params["Wq"] + params["bq"])[None], n_heads)[0]  # (heads, time, head_dim)
    k = split_heads((x @ params["Wk"] + params["bk"])[None], n_heads)[0]
    v = split_heads((x @ params["Wv"] + params["bv"])[None], n_heads)[0]
    head_dim = d_model // n_heads
    mask = causal_mask(t) if causal else None
    _, weights = scaled_dot_product_attention(q, k, v, mask, scale=scale / math.sqrt(head_dim))
    return AttentionMaps(tokens=tokens, weights=weights, scale=float(scale), causal=causal)


def attention_figure(
    sentence: str, head: int = 0, *, scale: float = 1.0, causal: bool = True, n_heads: int = 4, seed: int = 0
) -> Figure:
    """The explorer's figure for one setting: one head's weights with tokens on both axes."""
    maps = attention_maps(sentence, n_heads=n_heads, scale=scale, causal=causal, seed=seed)
    if not 0 <= head < n_heads:
        raise ValueError(f"`head` must be between 0 and {n_heads - 1}; got {head}.")
    title = (f"head {head}, scale {scale:g}, {'causal' if causal else 'no mask'} "
             f"(untrained layer; mean entropy {maps.entropy[head]:.2f} nats)")
    return attention_heatmap(maps.weights[head], maps.tokens, title=title)


def attention_explorer(sentences: Sequence[str], *, n_heads: int = 4, seed: int = 0) -> Explorer:
    """Pick the sentence, the head, the scale and the mask; the heat map redraws."""
    import ipywidgets as w
    import matplotlib.pyplot as plt
    from IPython.display import display

    if not sentences:
        raise ValueError("`sentences` must hold at least one sentence.")
    sentence = w.Dropdown(options=list(sentences), value=sentences[0], description="sentence",
                          layout=w.Layout(width="95%"))
    head = w.IntSlider(value=0, min=0, max=n_heads - 1, description="head", continuous_update=False)
    scale = w.FloatLogSlider(value=1.0, base=10, min=-1.5, max=1.5, step=0.125, description="scale",
                             continuous_update=False)
    causal = w.Checkbox(value=True, description="causal mask")
    out = w.Output()

    def redraw(_change: object = None) -> None:
        fig = attention_figure(sentence.value, head.value, scale=scale.value, causal=causal.value,
                               n_heads=n_heads, seed=seed)
        out.clear_output(wait=True)
        with out:
            display(fig)
        plt.close(fig)

    for control in (sentence, head, scale, causal):
        control.observe(redraw, names="value")
    redraw()
    face_fig = attention_figure(sentences[0], 0, scale=1.0, causal=True, n_heads=n_heads, seed=seed)
    face = static_face(face_fig, f"the first of {len(sentences)} sentences, head 0 of {n_heads}, scale 1, causal mask")
    plt.close(face_fig)
    return Explorer([sentence, w.HBox([head, scale, causal]), out], face=face,
                    description=f"Attention explorer ({len(sentences)} sentences, {n_heads} heads)")


__all__ = ["AttentionMaps", "attention_explorer", "attention_figure", "attention_maps", "word_tokens"]
