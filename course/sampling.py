"""Generating text from a trained model: decoding only (chapter 06; chapter 05 uses `generate` to print samples).

Decoding repeats one step: run the model, take the logits of the last position,
reshape them with a chain of **logit processors**, pick a token, append it.
Measuring a model (negative log-likelihood, perplexity, sequence
log-probabilities, bits per character) is `course.evaluate`.

* Logit processors are plain functions: a processor is any callable
  ``(logits (B, V), ids (B, T)) -> logits``. The built-in ones are
  `apply_temperature`, `top_k_filter`, `top_p_filter` (the nucleus),
  `min_p_filter`, `repetition_penalty` (CTRL's divide-or-multiply) and
  `frequency_penalty` (subtract per occurrence, plus a presence term); each
  checks its arguments and calls its unchecked core. Filtering sets logits to
  ``-inf``, so the softmax renormalises what is kept. `build_processors` checks
  the settings once and chains the cores (``functools.partial``) in the usual
  order: penalties, temperature, top-k, top-p, min-p; `apply_processors` runs a
  chain.
* `SamplingConfig`: every decoding setting in one validated, frozen dataclass.
  `stream` yields each new token (shape ``(batch,)``) as soon as it is chosen;
  `generate` collects them after the prompt; `stream_text` / `generate_text`
  work on strings with a tokenizer. Each takes a `SamplingConfig` or its fields
  as keywords (``generate(model, ids, 50, temperature=0.8)``).
  Batched prompts must have equal length.
  Sampling draws with a seeded `torch.Generator` (reproducible); ``greedy=True``
  takes the most likely token.
* Stop conditions: ``max_new_tokens``; an end-of-text id (``eos_id``); stop
  strings (``stop_strings`` with a ``decode`` function). A finished row of a
  batch is padded with ``pad_id`` until every row has finished.
* The KV cache (``use_cache=True``): the model keeps the keys and values of
  earlier positions (`course.attention.KVCache`) and processes only the new
  token at each step.
* A full context: once the sequence outgrows ``block_size`` the model sees a
  window of recent tokens. Cached keys carry their positions, so a shifted
  window cannot reuse them; the cache is rebuilt from the window (a
  re-prefill). ``overflow="slide"`` keeps the last ``block_size`` tokens (exact
  sliding window, one re-prefill per token: as slow as no cache);
  ``overflow="halve"`` keeps the last ``block_size // 2`` tokens, so a
  re-prefill happens once every ``block_size // 2`` tokens. Cached and uncached
  generation follow the same window rule, so they agree token for token.
* `beam_search` (its scores are `course.evaluate.sequence_logprob`), `entropy`, `kv_cache_bytes`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch
from torch import Tensor

from .evaluate import check_prompt, eval_mode
from .model import GPT, GPTConfig
from .validate import settings_with

NEG_INF = float("-inf")
OVERFLOWS = ("slide", "halve")
LONG_PROMPTS = ("truncate", "error")


# ============================================================================ logit processors
#
# A logit processor is any callable ``(logits (B, V), ids (B, T) so far) -> logits``.
# Each built-in one is a plain function: the public function (`apply_temperature`,
# `top_k_filter`, ...) checks its arguments, for a person who calls it, and calls
# the core below it (`_temperature`, `_top_k`, ...): the math alone, written in the
# processor's form ``(logits, ids, setting)``. `build_processors` checks every
# setting once and binds it to its core with `functools.partial`; that chain is what
# generation runs at every token, with no check left in it.

Processor = Callable[[Tensor, Tensor], Tensor]  # (logits (B, V), ids (B, T)) -> logits (B, V)


def apply_temperature(logits: Tensor, temperature: float) -> Tensor:
    """Divide logits by the temperature: below 1 sharpens the distribution, above 1 flattens it."""
    _check_temperature(temperature)
    return _temperature(logits, None, temperature)


def _temperature(logits: Tensor, ids: Tensor | None, temperature: float) -> Tensor:
    return logits / temperature


def top_k_filter(logits: Tensor, k: int) -> Tensor:
    """Keep the k largest logits of each row; set the rest to -inf (ties at the k-th value are kept)."""
    _check_top_k(k)
    _check_logits(logits)
    return _top_k(logits, None, k)


def _top_k(logits: Tensor, ids: Tensor | None, k: int) -> Tensor:
    kth = torch.topk(logits, min(k, logits.shape[-1]), dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, NEG_INF)


def top_p_filter(logits: Tensor, p: float) -> Tensor:
    """Nucleus filtering: keep the smallest set of most likely tokens whose probability reaches p.

    A token is kept when the probability of the tokens strictly more likely than
    it is below p, so the token that crosses p is kept and the most likely token
    always is.
    """
    _check_top_p(p)
    _check_logits(logits)
    return _top_p(logits, None, p)


def _top_p(logits: Tensor, ids: Tensor | None, p: float) -> Tensor:
    if p == 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = torch.softmax(sorted_logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)
    before = probs.cumsum(dim=-1) - probs  # mass of the tokens strictly more likely than this one
    drop_sorted = before >= p
    drop_sorted[..., 0] = False  # guard against rounding: the most likely token is always kept
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, NEG_INF)


def min_p_filter(logits: Tensor, min_p: float) -> Tensor:
    """Keep tokens whose probability is at least ``min_p`` times the largest probability."""
    _check_min_p(min_p)
    _check_logits(logits)
    return _min_p(logits, None, min_p)


def _min_p(logits: Tensor, ids: Tensor | None, min_p: float) -> Tensor:
    # p_i >= min_p * p_max  <=>  logit_i >= logit_max + ln(min_p): no softmax needed
    threshold = logits.max(dim=-1, keepdim=True).values + math.log(min_p)
    return logits.masked_fill(logits < threshold, NEG_INF)


def repetition_penalty(logits: Tensor, ids: Tensor, penalty: float) -> Tensor:
    """CTRL's penalty on every token already in ``ids``: positive logits divided by it, negative ones multiplied.

    Either way the token becomes less likely (for ``penalty`` > 1); 1 changes nothing.
    """
    _check_repetition_penalty(penalty)
    _check_logits(logits)
    _check_ids(logits, ids)
    return _repetition(logits, ids, penalty)


def _repetition(logits: Tensor, ids: Tensor, penalty: float) -> Tensor:
    seen = _counts(ids, logits.shape[-1]) > 0
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)


def frequency_penalty(logits: Tensor, ids: Tensor, frequency: float = 0.0, presence: float = 0.0) -> Tensor:
    """Subtract ``frequency`` per earlier occurrence of a token, and ``presence`` once if it occurred at all."""
    _check_additive_penalty("frequency_penalty", frequency)
    _check_additive_penalty("presence_penalty", presence)
    _check_logits(logits)
    _check_ids(logits, ids)
    return _frequency(logits, ids, frequency, presence)


def _frequency(logits: Tensor, ids: Tensor, frequency: float, presence: float) -> Tensor:
    counts = _counts(ids, logits.shape[-1]).to(logits.dtype)
    return logits - frequency * counts - presence * (counts > 0).to(logits.dtype)


def _counts(ids: Tensor, vocab_size: int) -> Tensor:
    """(B, V) number of occurrences of each token id in each row of ``ids`` (B, T)."""
    counts = torch.zeros(ids.shape[0], vocab_size, dtype=torch.float32, device=ids.device)
    if ids.numel():
        counts.scatter_add_(1, ids.long(), torch.ones(ids.shape, dtype=torch.float32, device=ids.device))
    return counts


def build_processors(
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    repetition_penalty: float | None = None,
    frequency_penalty: float = 0.0,
    presence_penalty: float = 0.0,
) -> list[Processor]:
    """The processors for these settings, in order: penalties, temperature, top-k, top-p, min-p.

    Every setting is checked here, once. Each processor is its core with the
    setting bound (``functools.partial(_top_k, k=5)``), so running the chain checks
    nothing. Settings that change nothing (temperature 1, penalty 1 or 0, None)
    are left out.
    """
    if repetition_penalty is not None:
        _check_repetition_penalty(repetition_penalty)
    _check_additive_penalty("frequency_penalty", frequency_penalty)
    _check_additive_penalty("presence_penalty", presence_penalty)
    _check_temperature(temperature)
    for value, check in ((top_k, _check_top_k), (top_p, _check_top_p), (min_p, _check_min_p)):
        if value is not None:
            check(value)
    chain: list[Processor] = []
    if repetition_penalty is not None and repetition_penalty != 1.0:
        chain.append(partial(_repetition, penalty=repetition_penalty))
    if frequency_penalty or presence_penalty:
        chain.append(partial(_frequency, frequency=frequency_penalty, presence=presence_penalty))
    if temperature != 1.0:
        chain.append(partial(_temperature, temperature=temperature))
    if top_k is not None:
        chain.append(partial(_top_k, k=top_k))
    if top_p is not None:
        chain.append(partial(_top_p, p=top_p))
    if min_p is not None:
        chain.append(partial(_min_p, min_p=min_p))
    return chain


def apply_processors(logits: Tensor, ids: Tensor | None, processors: Iterable[Processor]) -> Tensor:
    """Run ``logits`` (B, V) through each processor in turn; ``ids`` (B, T) are the tokens so far.

    Nothing is checked here (it runs at every token): the settings were checked
    when the chain was built.
    """
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # half precision -> float32; float64 stays
    if ids is None:
        ids = torch.zeros(logits.shape[0] if logits.dim() == 2 else 1, 0, dtype=torch.long, device=logits.device)
    for processor in processors:
        logits = processor(logits, ids)
    return logits


def next_token_logits(
    logits: Tensor, *, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
    min_p: float | None = None,
) -> Tensor:
    """The processed logits that sampling draws from (temperature, then top-k, top-p, min-p): `build_processors`' chain."""
    chain = build_processors(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p)
    _check_logits(logits)
    return apply_processors(logits, None, chain)


def next_token_probs(logits: Tensor, ids: Tensor | None = None, **settings: Any) -> Tensor:
    """The distribution that sampling draws from: softmax of the processed logits (keywords of `build_processors`)."""
    chain = build_processors(**settings)
    _check_logits(logits)
    if ids is not None:
        _check_ids(logits, ids)
    return torch.softmax(apply_processors(logits, ids, chain), dim=-1)


def entropy(logits: Tensor, *, base: float = math.e) -> Tensor:
    """Entropy of softmax(logits) over the last axis (nats by default; base=2 for bits)."""
    logp = torch.log_softmax(logits.double(), dim=-1)
    h = -(logp.exp() * logp).nan_to_num(0.0).sum(dim=-1)  # 0·log 0 = 0 for filtered tokens
    return h / math.log(base)


def pick(logits: Tensor, *, greedy: bool = False, generator: torch.Generator | None = None) -> Tensor:
    """One token per row of processed logits (B, V): the argmax, or a draw from their softmax."""
    if greedy:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


# ============================================================================ the decoding window (and its cache)


class _Window:
    """The tokens the model currently sees, their KV cache, and the logits of the last position."""

    def __init__(self, model: GPT, ids: Tensor, *, use_cache: bool, overflow: str) -> None:
        if overflow not in OVERFLOWS:
            raise ValueError(f"overflow must be one of {OVERFLOWS}, got {overflow!r}.")
        self.model = model
        self.block = model.config.block_size
        self.keep = self.block if overflow == "slide" else max(1, self.block // 2)
        self.use_cache = use_cache
        self.ids = ids
        self.logits = self._run_window()

    def _run_window(self) -> Tensor:
        """Run the model on the whole window (with a cache: a fresh one, filled by this prefill)."""
        self.cache = self.model.new_cache() if self.use_cache else None
        logits, _ = self.model(self.ids, cache=self.cache)
        return logits[:, -1, :].float()

    def push(self, token: Tensor) -> None:
        """Append one token per row and compute the logits that follow it."""
        self.ids = torch.cat((self.ids, token[:, None]), dim=1)
        if self.ids.shape[1] > self.block:  # the context is full: shift the window and rebuild
            self.ids = self.ids[:, -self.keep:]
            self.logits = self._run_window()
        elif self.cache is not None:
            logits, _ = self.model(token[:, None], cache=self.cache)
            self.logits = logits[:, -1, :].float()
        else:  # no cache: recompute every position
            self.logits = self._run_window()

    def reorder(self, index: Tensor) -> None:
        """Keep rows ``index`` (beam search: continue the chosen beams)."""
        self.ids, self.logits = self.ids[index], self.logits[index]
        if self.cache is not None:
            self.cache.layers = [None if kv is None else (kv[0][index], kv[1][index]) for kv in self.cache.layers]


def _fit_prompt(ids: Tensor, block: int, long_prompt: str) -> Tensor:
    if long_prompt not in LONG_PROMPTS:
        raise ValueError(f"long_prompt must be one of {LONG_PROMPTS}, got {long_prompt!r}.")
    if ids.shape[1] <= block:
        return ids
    message = (f"the prompt has {ids.shape[1]} tokens but the model's context is block_size={block}")
    if long_prompt == "error":
        raise ValueError(message + f": shorten it, or pass long_prompt='truncate' to keep its last {block} tokens.")
    warnings.warn(message + f"; only its last {block} tokens are used.", stacklevel=3)
    return ids[:, -block:]


def _check_count(max_new_tokens: int) -> None:
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}.")


# ============================================================================ the sampling settings


@dataclass(frozen=True)
class SamplingConfig:
    """Every setting of decoding, validated when it is made (before any token is produced).

    The logit processors (applied in this order): ``repetition_penalty``,
    ``frequency_penalty`` / ``presence_penalty``, ``temperature``, ``top_k``,
    ``top_p``, ``min_p``, then the extra ``processors`` (callables
    ``(logits, ids) -> logits``). ``greedy`` takes the argmax instead of drawing.
    Stops: ``eos_id`` (yielded, then the row is finished) and ``stop_strings``
    (need a ``decode`` function at generation time); finished rows yield
    ``pad_id`` (default: ``eos_id``, else 0). The context: ``use_cache`` (the KV
    cache), ``long_prompt`` (``"truncate"`` with a warning, or ``"error"``) and
    ``overflow`` (``"slide"`` or ``"halve"``, see the module docstring).

    `stream`, `generate`, `stream_text` and `generate_text` take one as their
    fourth argument, or the same settings as keywords (``temperature=0.8``);
    keywords given with a config override its fields.
    """

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    processors: tuple[Processor, ...] = ()
    greedy: bool = False
    use_cache: bool = True
    eos_id: int | None = None
    stop_strings: tuple[str, ...] = ()
    pad_id: int | None = None
    long_prompt: str = "truncate"
    overflow: str = "slide"

    def __post_init__(self) -> None:
        for name in ("processors", "stop_strings"):  # one item or any sequence -> a tuple (frozen, safe to share)
            value = getattr(self, name)
            if isinstance(value, str) or callable(value):
                value = (value,)
            try:
                object.__setattr__(self, name, tuple(value))
            except TypeError:
                raise TypeError(f"{name} must be a list or tuple, got {type(value).__name__}.") from None
        self.processor_chain()  # checks every processor setting (build_processors), before any token
        bad = [p for p in self.processors if not callable(p)]
        if bad:
            raise TypeError(f"processors must be callables (logits, ids) -> logits, got {bad[0]!r}.")
        if any(not isinstance(s, str) or not s for s in self.stop_strings):
            raise ValueError(f"stop_strings must be non-empty strings, got {list(self.stop_strings)!r}.")
        for name in ("greedy", "use_cache"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}.")
        for name in ("eos_id", "pad_id"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"{name} must be a token id (an int >= 0) or None, got {value!r}.")
        if self.long_prompt not in LONG_PROMPTS:
            raise ValueError(f"long_prompt must be one of {LONG_PROMPTS}, got {self.long_prompt!r}.")
        if self.overflow not in OVERFLOWS:
            raise ValueError(f"overflow must be one of {OVERFLOWS}, got {self.overflow!r}.")

    def processor_chain(self) -> list[Processor]:
        """The processors these settings call for, in order (`build_processors`, then the extra ``processors``)."""
        return build_processors(
            temperature=self.temperature, top_k=self.top_k, top_p=self.top_p, min_p=self.min_p,
            repetition_penalty=self.repetition_penalty, frequency_penalty=self.frequency_penalty,
            presence_penalty=self.presence_penalty,
        ) + list(self.processors)

    @property
    def pad(self) -> int:
        """The id that finished rows yield."""
        return self.pad_id if self.pad_id is not None else (self.eos_id if self.eos_id is not None else 0)


def sampling_config(config: SamplingConfig | None = None, **settings: Any) -> SamplingConfig:
    """``config`` (default: `SamplingConfig()`) with ``settings`` overriding its fields, validated.

    An unknown keyword is refused with the list of the settings there are.
    """
    return settings_with(SamplingConfig, config, settings, "sampling")


# ============================================================================ streaming and generation


@torch.no_grad()
def stream(
    model: GPT,
    prompt_ids: Tensor | Sequence[int] | Sequence[Sequence[int]],
    max_new_tokens: int,
    config: SamplingConfig | None = None,
    *,
    generator: torch.Generator | None = None,
    decode: Callable[[list[int]], str] | None = None,
    **settings: Any,
) -> Iterator[Tensor]:
    """Yield each new token (shape (batch,)) as soon as it is chosen.

    The settings are a `SamplingConfig` (``config``) or its fields as keywords.
    The logits of the last position go through the penalties (which look at every
    token so far, prompt included), then temperature, top-k, top-p, min-p, then the
    extra ``processors``; ``greedy`` takes the argmax, otherwise a token is drawn
    with ``generator``. A row stops at ``eos_id`` (which is yielded) or once its
    generated text contains one of ``stop_strings`` (decoded with ``decode``);
    stopped rows yield ``pad_id`` (default: ``eos_id``, else 0) until all rows stop.
    A prompt longer than the context is cut to its last ``block_size`` tokens, with
    a warning (``long_prompt="error"`` refuses it instead).
    """
    _check_count(max_new_tokens)
    ids = check_prompt(model, prompt_ids)
    cfg = sampling_config(config, **settings)
    chain = cfg.processor_chain()
    stop_strings = cfg.stop_strings
    if stop_strings and decode is None:
        raise ValueError("stop_strings need a decode function to turn token ids into text: pass decode=tokenizer.decode.")
    vocab = model.config.vocab_size
    for name, value in (("eos_id", cfg.eos_id), ("pad_id", cfg.pad_id)):
        if value is not None and not 0 <= value < vocab:
            raise ValueError(f"{name}={value} is outside the vocabulary (0..{vocab - 1}).")
    pad = cfg.pad
    ids = _fit_prompt(ids, model.config.block_size, cfg.long_prompt)
    if max_new_tokens == 0:
        return
    device = next(model.parameters()).device
    history = ids.to(device)  # every token so far (the penalties look at all of them)
    done = torch.zeros(ids.shape[0], dtype=torch.bool, device=device)
    longest_stop = max((len(s) for s in stop_strings), default=0)
    with eval_mode(model):
        window = _Window(model, history, use_cache=cfg.use_cache, overflow=cfg.overflow)
        start = history.shape[1]
        for step in range(max_new_tokens):
            logits = apply_processors(window.logits, history, chain)
            token = pick(logits, greedy=cfg.greedy, generator=generator)
            token = torch.where(done, torch.full_like(token, pad), token)
            yield token
            history = torch.cat((history, token[:, None]), dim=1)
            if cfg.eos_id is not None:
                done |= token == cfg.eos_id
            if stop_strings:  # decode only the tail that could hold a new stop string
                for row in range(history.shape[0]):
                    if not done[row]:
                        tail = history[row, max(start, history.shape[1] - longest_stop - 8):].tolist()
                        done[row] = any(s in decode(tail) for s in stop_strings)  # type: ignore[misc]
            if bool(done.all()) or step == max_new_tokens - 1:
                break
            window.push(token)


def generate(
    model: GPT,
    prompt_ids: Tensor | Sequence[int] | Sequence[Sequence[int]],
    max_new_tokens: int,
    config: SamplingConfig | None = None,
    **kwargs: Any,
) -> Tensor:
    """The prompt followed by the generated tokens: shape (batch, time + new), new <= max_new_tokens.

    Fewer than ``max_new_tokens`` are returned only when every row hit a stop
    condition. ``config`` and the keyword arguments are those of `stream`.
    """
    prompt_ids = check_prompt(model, prompt_ids)
    new = list(stream(model, prompt_ids, max_new_tokens, config, **kwargs))
    if not new:
        return prompt_ids
    return torch.cat((prompt_ids, torch.stack(new, dim=1).to(prompt_ids.device)), dim=1)


def _cut(text: str, stop_strings: Sequence[str]) -> tuple[str, bool]:
    """Text before the first stop string, and whether one was found."""
    hits = [i for i in (text.find(s) for s in stop_strings) if i >= 0]
    return (text[: min(hits)], True) if hits else (text, False)


def stream_text(
    model: GPT, tokenizer: Any, prompt: str, max_new_tokens: int, config: SamplingConfig | None = None, **kwargs: Any
) -> Iterator[str]:
    """Yield the generated text piece by piece, for one prompt string.

    The text ends before the first stop string (``stop_strings``) or end-of-text
    token (``eos_id``), neither of which is shown. Text that might be the start of
    a stop string is held back until it is clear that it is not. ``config`` and
    the keyword arguments are those of `stream` (``decode`` defaults to the
    tokenizer's).
    """
    generator = kwargs.pop("generator", None)
    decode = kwargs.pop("decode", tokenizer.decode)
    cfg = sampling_config(config, **kwargs)
    stop_strings, eos_id = cfg.stop_strings, cfg.eos_id
    ids = torch.tensor([tokenizer.encode(prompt)], dtype=torch.long)
    generated: list[int] = []
    shown = 0
    for token in stream(model, ids, max_new_tokens, cfg, generator=generator, decode=decode):
        t = int(token[0])
        if eos_id is not None and t == eos_id:
            break
        generated.append(t)
        text, stopped = _cut(tokenizer.decode(generated), stop_strings)
        if stopped:
            if len(text) > shown:
                yield text[shown:]
            return
        hold = max((k for s in stop_strings for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
        if "\ufffd" in text[len(text) - hold - 1:]:  # a multi-byte character split across tokens: wait for the rest
            hold = max(hold, 1)
        if len(text) - hold > shown:
            yield text[shown: len(text) - hold]
            shown = len(text) - hold
    text, _ = _cut(tokenizer.decode(generated), stop_strings)
    if len(text) > shown:
        yield text[shown:]


def generate_text(
    model: GPT, tokenizer: Any, prompt: str, max_new_tokens: int, config: SamplingConfig | None = None, **kwargs: Any
) -> str:
    """The generated continuation of ``prompt`` as a string (see `stream_text`)."""
    return "".join(stream_text(model, tokenizer, prompt, max_new_tokens, config, **kwargs))


# ============================================================================ beam search


@dataclass(frozen=True)
class Beam:
    ids: Tensor  # the generated tokens (without the prompt)
    logprob: float  # sum of the log-probabilities of the generated tokens
    score: float  # logprob / len(ids) ** length_penalty: what beams are ranked by


@torch.no_grad()
def beam_search(
    model: GPT,
    prompt_ids: Tensor,
    max_new_tokens: int,
    num_beams: int = 4,
    *,
    eos_id: int | None = None,
    length_penalty: float = 1.0,
    use_cache: bool = True,
) -> list[Beam]:
    """The ``num_beams`` most likely continuations found by beam search, best first.

    At each step every beam is extended by every token, and the ``num_beams``
    highest total log-probabilities survive. A beam that emits ``eos_id`` is
    finished; finished beams of different lengths are ranked by
    logprob / length ** length_penalty (0: raw sum, which favours short ones).
    The search stops after ``max_new_tokens`` or once ``num_beams`` beams finished.
    """
    _check_count(max_new_tokens)
    if isinstance(num_beams, bool) or not isinstance(num_beams, int) or num_beams < 1:
        raise ValueError(f"num_beams must be an int >= 1 (1 is greedy decoding), got {num_beams!r}.")
    ids = check_prompt(model, prompt_ids)
    if ids.shape[0] != 1:
        raise ValueError(f"beam_search takes one prompt, shape (time,) or (1, time); got batch {ids.shape[0]}.")
    if max_new_tokens == 0:
        return [Beam(ids.new_zeros(0), 0.0, 0.0)]
    ids = _fit_prompt(ids, model.config.block_size, "truncate")
    device = next(model.parameters()).device
    with eval_mode(model):
        window = _Window(model, ids.to(device), use_cache=use_cache, overflow="slide")
        seqs = torch.zeros(1, 0, dtype=torch.long, device=device)  # generated tokens of each live beam
        scores = torch.zeros(1, dtype=torch.float64, device=device)
        finished: list[Beam] = []
        vocab = model.config.vocab_size

        def ranked(seq: Tensor, logprob: float) -> Beam:
            return Beam(seq.cpu(), logprob, logprob / max(len(seq), 1) ** length_penalty)

        for step in range(max_new_tokens):
            total = scores[:, None] + torch.log_softmax(window.logits.double(), dim=-1)  # (beams, V)
            best = torch.topk(total.flatten(), min(2 * num_beams, total.numel()))
            keep_rows, keep_tokens, keep_scores = [], [], []
            for value, flat in zip(best.values.tolist(), best.indices.tolist()):
                row, token = divmod(flat, vocab)
                if eos_id is not None and token == eos_id:
                    finished.append(ranked(torch.cat((seqs[row], seqs.new_tensor([token]))), value))
                else:
                    keep_rows.append(row)
                    keep_tokens.append(token)
                    keep_scores.append(value)
                if len(keep_rows) == num_beams:
                    break
            if len(finished) >= num_beams or not keep_rows:
                break
            rows = torch.tensor(keep_rows, device=device)
            tokens = torch.tensor(keep_tokens, device=device)
            seqs = torch.cat((seqs[rows], tokens[:, None]), dim=1)
            scores = torch.tensor(keep_scores, dtype=torch.float64, device=device)
            if step < max_new_tokens - 1:
                window.reorder(rows)
                window.push(tokens)
        if len(finished) < num_beams:
            finished += [ranked(s, float(v)) for s, v in zip(seqs, scores)]
        return sorted(finished, key=lambda b: b.score, reverse=True)[:num_beams]


# ============================================================================ the cache's size


def kv_cache_bytes(config: GPTConfig, tokens: int, *, batch: int = 1, dtype: torch.dtype = torch.float32) -> int:
    """Memory of a full KV cache: 2 (keys and values) x layers x tokens x d_model x batch x bytes per number.

    With grouped-query attention (``config.n_kv_head``, chapter 13) the cache holds only the
    key/value heads: d_model becomes n_kv_head x head_dim. With sliding-window attention
    (``config.attention_window``) it holds at most the last window positions.
    """
    bytes_per = torch.empty(0, dtype=dtype).element_size()
    width = config.n_embd if config.n_kv_head is None else config.n_kv_head * config.head_dim
    kept = tokens if config.attention_window is None else min(tokens, config.attention_window)
    return 2 * config.n_layer * kept * width * batch * bytes_per


# ============================================================================ checks (of a direct call; never per token)


def _check_logits(logits: Tensor) -> None:
    if not isinstance(logits, Tensor) or logits.dim() < 1 or logits.shape[-1] == 0:
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(f"logits must be a tensor of shape (..., vocab_size) with vocab_size >= 1, got {shape}.")


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))


def _check_temperature(temperature: object) -> None:
    if not _is_number(temperature) or not temperature > 0 or math.isinf(temperature):  # type: ignore[operator, arg-type]
        raise ValueError(
            f"temperature must be a finite number > 0, got {temperature!r}; "
            "for the most likely token (the limit temperature -> 0) use greedy=True."
        )


def _check_top_k(k: object) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"top_k must be an int >= 1 (1 is greedy; None switches it off), got {k!r}.")


def _check_top_p(p: object) -> None:
    if not _is_number(p) or not 0.0 < p <= 1.0:  # type: ignore[operator]
        raise ValueError(f"top_p must be in (0, 1] (1 keeps every token), got {p!r}.")


def _check_min_p(min_p: object) -> None:
    if not _is_number(min_p) or not 0.0 < min_p <= 1.0:  # type: ignore[operator]
        raise ValueError(f"min_p must be in (0, 1] (None switches it off), got {min_p!r}.")


def _check_repetition_penalty(penalty: object) -> None:
    if not _is_number(penalty) or not penalty > 0 or math.isinf(penalty):  # type: ignore[operator, arg-type]
        raise ValueError(f"repetition_penalty must be a finite number > 0 (1 is off, above 1 penalises), got {penalty!r}.")


def _check_additive_penalty(name: str, value: object) -> None:
    if not _is_number(value) or not math.isfinite(value):  # type: ignore[arg-type]
        raise ValueError(f"{name} must be a finite number (0 is off), got {value!r}.")


def _check_ids(logits: Tensor, ids: Tensor) -> None:
    if logits.dim() != 2 or ids.dim() != 2 or ids.shape[0] != logits.shape[0]:
        raise ValueError(
            f"penalties need logits (batch, vocab) and ids (batch, time) with the same batch; "
            f"got logits {tuple(logits.shape)} and ids {tuple(ids.shape)}."
        )


__all__ = [
    "Beam", "Processor", "SamplingConfig", "apply_processors", "apply_temperature", "beam_search", "build_processors",
    "entropy", "frequency_penalty", "generate", "generate_text", "kv_cache_bytes", "min_p_filter", "next_token_logits",
    "next_token_probs", "pick", "repetition_penalty", "sampling_config", "stream", "stream_text", "top_k_filter",
    "top_p_filter",
]
