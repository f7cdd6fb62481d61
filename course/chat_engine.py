"""The decoding engine of the course's assistant, with its calculator tool (chapter 11).

`stream_reply(model, tokenizer, messages)` writes the assistant's next reply
token by token and yields `ChatEvent` objects as it goes, so a terminal
(`course.chat`) or a widget (`course.widgets.chat`) can show the reply while it
is written. `reply(...)` runs it to the end and returns the `Reply`.
`ChatSession` keeps a conversation across turns.

**One loop.** The prompt is the rendered conversation followed by
``<|assistant|>`` (`course.chat_format.render_prompt`). The model reads it once
(a prefill that fills its KV cache), then each step takes the logits after the
last token, reshapes them (below), picks a token (the argmax, or a draw with a
seeded ``torch.Generator``) and feeds only that token through the cache.

**What a reply may hold.** Before any other processing the engine sets to
``-inf`` the logits of every token a reply cannot hold: ``<|system|>``,
``<|user|>``, ``<|assistant|>`` and ``<|tool_result|>`` always (the model cannot
forge a turn or a calculator result: only the engine writes those), ids beyond
the tokenizer's vocabulary, ``<|tool_call|>`` when calls are not allowed (below)
or inside a call, and ``<|end|>`` right after ``<|tool_call|>`` (a call is never
empty). Then come chapter 06's processors (`course.sampling.build_processors`:
temperature, top-k, top-p; temperature 0 means greedy) and any extra
``processors``.

**The calculator.** When the model writes ``<|tool_call|>``, the characters
that follow are the expression, up to the next ``<|end|>``. The engine then
evaluates it with `course.calculator.calculate` (never Python's ``eval``); a
refusal (``CalculatorError``), or any other failure of the tool, becomes the
result text ``"error: <message>"``. The result text is cut to
``max_result_chars`` characters (``...`` marks a cut) and characters outside the
vocabulary become ``?``. The engine then **forces** the tokens
``<|end|> <|tool_result|> result <|end|> <|assistant|>`` into the context: one
forward pass over just these tokens, appended to the KV cache (positions
continue from the cache's length), so the prefix is never recomputed. The
logits after the forced ``<|assistant|>`` start the rest of the reply, which the
model writes as before. That is exactly how `render_conversation` writes a
conversation with a tool call, so the context after a reply equals the rendered
``messages + reply.messages``.

**Limits.**

* ``max_new_tokens``: tokens the model picks (forced tokens do not count);
  reaching it ends the reply (reason ``"max_new_tokens"``).
* ``max_tool_calls``: once that many calls are done, ``<|tool_call|>`` is masked
  out, so the model has to answer in text. ``tools=False`` masks it from the
  start: no call is ever written or run (the model answers by itself: compare
  its accuracy with and without the tool).
* The context (``block_size``): ``overflow="stop"`` (the default) ends the reply
  when the next token (or the forced result) does not fit (reason
  ``"context"``), and refuses a prompt longer than the context with
  `ContextFullError`. ``overflow="slide"`` keeps going: the oldest tokens are
  dropped, keeping the newest ``block_size // 2`` (at least the forced tokens),
  and the cache is rebuilt from them (cached keys carry their positions, so a
  shifted window cannot reuse them; dropping half at once needs one re-prefill
  per ``block_size // 2`` tokens, not one per token). The model then no longer
  sees the start of the conversation. A prompt longer than the context keeps its
  newest ``block_size // 2`` tokens.

**Events** (`ChatEvent`, ``kind`` in `EVENT_KINDS`):

* ``"text"``: a character of the reply (``text``, ``token_id``);
* ``"tool_call"``: the model opened a call;
* ``"tool_text"``: a character of the expression;
* ``"tool_result"``: the call is evaluated: ``expression``, ``text`` (the result
  as forced into the context), ``error`` (the calculator's full message, or None);
* ``"notice"``: a remark for the user (`ChatSession`: older turns forgotten);
* ``"end"``: the last event: ``reason`` (`END_REASONS`) and ``reply`` (a `Reply`).

`display_text(event)` is the one rule for showing events (the terminal and the
widget both use it): a call reads ``[calculator: 12*34 = 408]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn

from .calculator import calculate
from .chat_format import ChatTokenizer, render_prompt, validate_messages
from .evaluate import eval_mode
from .sampling import Processor, apply_processors, build_processors, pick
from .validate import non_negative_int, one_of, positive_int, settings_with

__all__ = [
    "END_REASONS", "EVENT_KINDS", "OVERFLOWS", "ChatEvent", "ChatSession", "ChatSettings", "ContextFullError",
    "Reply", "ToolCall", "display_text", "reply", "run_tool", "stream_reply",
]

EVENT_KINDS = ("notice", "text", "tool_call", "tool_text", "tool_result", "end")
END_REASONS = ("end", "max_new_tokens", "context")
OVERFLOWS = ("stop", "slide")
NEG_INF = float("-inf")


class ContextFullError(ValueError):
    """The conversation does not fit the model's context; the message says what to do."""


# ============================================================================ settings, events, replies


@dataclass(frozen=True)
class ChatSettings:
    """Every setting of the engine, validated when made. ``temperature=0`` is greedy decoding."""

    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None
    max_new_tokens: int = 200
    max_tool_calls: int = 3
    tools: bool = True
    overflow: str = "stop"
    use_cache: bool = True
    max_result_chars: int = 60
    processors: tuple[Processor, ...] = ()

    def __post_init__(self) -> None:
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0:
            raise ValueError(f"temperature must be a finite number >= 0 (0 is greedy decoding), got {t!r}.")
        if not self.greedy:
            build_processors(temperature=t, top_k=self.top_k, top_p=self.top_p)  # validates top_k and top_p
        elif self.top_k is not None or self.top_p is not None:
            build_processors(top_k=self.top_k, top_p=self.top_p)
        positive_int(self.max_new_tokens, "max_new_tokens")
        non_negative_int(self.max_tool_calls, "max_tool_calls")
        positive_int(self.max_result_chars, "max_result_chars")
        one_of(self.overflow, OVERFLOWS, "overflow")
        for name in ("tools", "use_cache"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}.")
        procs = (self.processors,) if callable(self.processors) else tuple(self.processors)
        if not all(callable(p) for p in procs):
            raise TypeError("processors must be callables (logits (1, V), ids (1, T)) -> logits.")
        object.__setattr__(self, "processors", procs)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def chain(self) -> list[Processor]:
        """The processors after the reply mask: temperature, top-k, top-p (none when greedy), then ``processors``."""
        base = [] if self.greedy else build_processors(temperature=self.temperature, top_k=self.top_k, top_p=self.top_p)
        return base + list(self.processors)


def _settings(settings: ChatSettings | None, overrides: Mapping[str, Any]) -> ChatSettings:
    return settings_with(ChatSettings, settings, overrides, "chat")


@dataclass(frozen=True)
class ToolCall:
    """One calculator call of a reply."""

    expression: str
    result: str  # the text forced into the context
    error: str | None = None  # the calculator's message when it refused


@dataclass(frozen=True)
class Reply:
    """A finished reply: its visible ``text``, the ``messages`` to append to the conversation, and how it ended."""

    text: str
    messages: list[dict[str, str]]
    tool_calls: list[ToolCall]
    reason: str
    new_tokens: int  # tokens the model picked (forced ones not counted)
    ids: list[int]  # the context the model last read (after any slide); the last token picked was never fed


@dataclass(frozen=True)
class ChatEvent:
    """One thing that happened while writing a reply (see the module docstring for each ``kind``)."""

    kind: str
    text: str = ""
    token_id: int | None = None
    expression: str | None = None
    error: str | None = None
    reason: str | None = None
    reply: Reply | None = field(default=None, repr=False)


_END_NOTES = {"max_new_tokens": " [cut: max new tokens]", "context": " [cut: the context is full]"}


def display_text(event: ChatEvent) -> str:
    """How a terminal or a widget shows an event: text as is, a call as ``[calculator: 12*34 = 408]``."""
    if event.kind in ("text", "tool_text"):
        return event.text
    if event.kind == "tool_call":
        return "[calculator: "
    if event.kind == "tool_result":
        return (" -> " if event.error is not None else " = ") + event.text + "]"
    if event.kind == "end":
        return _END_NOTES.get(event.reason or "", "")
    return ""


class _ReplyBuilder:
    """The reply's messages, built from its events (also from the events of an interrupted reply)."""

    def __init__(self) -> None:
        self.parts: list[dict[str, str]] = [{"role": "assistant", "content": ""}]
        self.expression: str | None = None  # the call being written
        self.calls: list[ToolCall] = []
        self.complete = False  # the model closed the reply with <|end|>

    def add(self, event: ChatEvent) -> None:
        last = self.parts[-1]
        if event.kind == "text":
            last["content"] += event.text
        elif event.kind == "tool_call":
            self.expression = ""
        elif event.kind == "tool_text":
            self.expression = (self.expression or "") + event.text
        elif event.kind == "tool_result":
            last["tool_call"] = event.expression or ""
            self.parts.append({"role": "tool", "content": event.text})
            self.parts.append({"role": "assistant", "content": ""})
            self.calls.append(ToolCall(event.expression or "", event.text, event.error))
            self.expression = None
        elif event.kind == "end":
            self.complete = event.reason == "end"

    def messages(self) -> list[dict[str, str]]:
        """The reply as messages. An unfinished call is left out; so is an empty message after a result, unless
        the model closed it with ``<|end|>`` (then the empty answer is what it wrote)."""
        parts = [dict(m) for m in self.parts]
        if len(parts) > 1 and parts[-1] == {"role": "assistant", "content": ""} and not self.complete:
            parts.pop()  # cut (or interrupted) before any answer after the last result
        return parts

    @property
    def text(self) -> str:
        return "".join(m["content"] for m in self.parts if m["role"] == "assistant")


# ============================================================================ the tool


def run_tool(expression: str, tokenizer: ChatTokenizer, max_chars: int = 60) -> tuple[str, str | None]:
    """``(result text, error message or None)``: the calculator's answer as the engine writes it into the context.

    A refusal, or any other exception of the tool, becomes ``"error: <message>"``
    (the tool is run on text a model wrote: it must never stop the chat). The
    text is cut to ``max_chars`` characters and unknown characters become ``?``.
    """
    try:
        text, error = calculate(expression), None
    except Exception as err:  # noqa: BLE001  (CalculatorError, or a bug: either way the model reads an error)
        error = str(err) or type(err).__name__
        text = f"error: {error}"
    if len(text) > max_chars:
        text = text[: max(0, max_chars - 3)] + "..."
    known = set(tokenizer.chars)
    return "".join(c if c in known else "?" for c in text), error


# ============================================================================ the context and its cache


class _Context:
    """The tokens the model sees, their KV cache and the logits after the last one."""

    def __init__(
        self, model: nn.Module, ids: list[int], *, use_cache: bool, overflow: str, device: torch.device
    ) -> None:
        self.model, self.use_cache, self.overflow, self.device = model, use_cache, overflow, device
        self.block = int(model.config.block_size)
        self.keep = max(1, self.block // 2)
        if len(ids) > self.block:
            if overflow == "stop":
                raise ContextFullError(
                    f"the conversation takes {len(ids)} tokens but the model's context holds {self.block}: start a new "
                    "conversation (ChatSession.reset, /reset in the terminal), leave out older messages, or pass "
                    "overflow='slide' to keep only the newest tokens."
                )
            ids = ids[-self.keep:]
        self.ids = list(ids)
        self.slides = 0
        self._prefill()

    def _run(self, tokens: list[int]) -> Tensor:
        x = torch.tensor([tokens], dtype=torch.long, device=self.device)
        logits, _ = self.model(x, cache=self.cache)
        return logits[0, -1].float()

    def _prefill(self) -> None:
        self.cache = self.model.new_cache() if self.use_cache else None
        self.logits = self._run(self.ids)

    def feed(self, tokens: list[int]) -> bool:
        """Append ``tokens`` and compute the logits after them; False (nothing changed) when they do not fit."""
        if len(self.ids) + len(tokens) > self.block:
            if self.overflow == "stop" or len(tokens) > self.block:
                return False
            self.ids = (self.ids + tokens)[-max(self.keep, len(tokens)):]
            self.slides += 1
            self._prefill()
            return True
        self.ids += tokens
        self.logits = self._run(tokens if self.cache is not None else self.ids)  # with a cache: only the new tokens
        return True


def _reply_masks(tokenizer: ChatTokenizer, vocab_size: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Boolean masks (V,) of the tokens a reply may hold: (characters and ``<|end|>``, characters only).

    The first is the mask inside a call and (plus ``<|tool_call|>`` when calls are
    allowed) outside one; the second the mask right after ``<|tool_call|>``.
    """
    chars = torch.zeros(vocab_size, dtype=torch.bool, device=device)
    chars[: tokenizer.text.vocab_size] = True
    with_end = chars.clone()
    with_end[tokenizer.end_id] = True
    return with_end, chars


def _check_model(model: nn.Module, tokenizer: ChatTokenizer) -> None:
    if not isinstance(tokenizer, ChatTokenizer):
        raise TypeError(
            f"tokenizer must be a course.chat_format.ChatTokenizer, got {type(tokenizer).__name__}: the engine needs "
            "the chat format's special tokens (a model fine-tuned as in chapter 11)."
        )
    config = getattr(model, "config", None)
    if not isinstance(model, nn.Module) or config is None or not hasattr(model, "new_cache"):
        raise TypeError(f"model must be a course.model.GPT (or have its config, new_cache and forward), "
                        f"got {type(model).__name__}.")
    if config.vocab_size < tokenizer.vocab_size:
        raise ValueError(
            f"the model has {config.vocab_size} token rows but the chat tokenizer has {tokenizer.vocab_size} ids: grow "
            "the model first (course.chat_format.grow_model) and fine-tune it in the chat format."
        )


# ============================================================================ the engine


@torch.no_grad()
def stream_reply(
    model: nn.Module,
    tokenizer: ChatTokenizer,
    messages: Sequence[Mapping[str, Any]],
    settings: ChatSettings | None = None,
    *,
    generator: torch.Generator | None = None,
    on_logits: Callable[[Tensor], None] | None = None,
    **overrides: Any,
) -> Iterator[ChatEvent]:
    """Write the next assistant reply to ``messages``, yielding a `ChatEvent` for each step (see the module docstring).

    ``settings`` is a `ChatSettings`, or its fields as keywords. ``generator``
    seeds the draws when sampling (temperature > 0). ``on_logits`` (for tests and
    plots) is called with a copy of the raw logits (V,) before each choice.
    """
    s = _settings(settings, overrides)
    _check_model(model, tokenizer)
    prompt = render_prompt(messages, tokenizer)
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    with_end, chars_only = _reply_masks(tokenizer, model.config.vocab_size, device)
    chain = s.chain()
    tok = tokenizer
    builder = _ReplyBuilder()
    new_tokens = calls = 0
    expression: list[int] | None = None  # the ids of the call being written, or None outside a call
    with eval_mode(model):
        ctx = _Context(model, prompt, use_cache=s.use_cache, overflow=s.overflow, device=device)

        def emit(event: ChatEvent) -> ChatEvent:
            builder.add(event)
            return event

        reason = "max_new_tokens"
        while new_tokens < s.max_new_tokens:
            logits = ctx.logits
            if on_logits is not None:
                on_logits(logits.detach().clone())
            if expression is None:
                allowed = with_end.clone()
                allowed[tok.tool_call_id] = s.tools and calls < s.max_tool_calls
            else:
                allowed = with_end if expression else chars_only
            masked = logits.masked_fill(~allowed, NEG_INF)[None]
            history = torch.tensor([ctx.ids], dtype=torch.long, device=device)
            token = int(pick(apply_processors(masked, history, chain), greedy=s.greedy, generator=generator)[0])
            new_tokens += 1
            if token == tok.end_id and expression is None:
                reason = "end"
                break
            if token == tok.end_id:  # the call is complete: run it, force the result, go on
                text = tok.decode(expression)
                result, error = run_tool(text, tok, s.max_result_chars)
                calls += 1
                expression = None
                yield emit(ChatEvent("tool_result", result, expression=text, error=error))
                forced = [tok.end_id, tok.tool_result_id, *tok.encode(result), tok.end_id, tok.assistant_id]
                if not ctx.feed(forced):
                    reason = "context"
                    break
                continue
            if token == tok.tool_call_id:
                expression = []
                yield emit(ChatEvent("tool_call", token_id=token))
            elif expression is not None:
                expression.append(token)
                yield emit(ChatEvent("tool_text", tok.decode([token]), token_id=token))
            else:
                yield emit(ChatEvent("text", tok.decode([token]), token_id=token))
            if new_tokens < s.max_new_tokens and not ctx.feed([token]):
                reason = "context"
                break
    builder.add(ChatEvent("end", reason=reason))
    messages_out = builder.messages()
    validate_messages(list(messages) + messages_out)  # the reply always continues the conversation in its schema
    done = Reply(builder.text, messages_out, list(builder.calls), reason, new_tokens, list(ctx.ids))
    yield ChatEvent("end", reason=reason, reply=done)


def reply(
    model: nn.Module, tokenizer: ChatTokenizer, messages: Sequence[Mapping[str, Any]],
    settings: ChatSettings | None = None, **kwargs: Any,
) -> Reply:
    """The whole reply (`stream_reply` run to its end)."""
    for event in stream_reply(model, tokenizer, messages, settings, **kwargs):
        if event.kind == "end":
            return event.reply  # type: ignore[return-value]
    raise AssertionError("stream_reply always ends with an 'end' event")  # pragma: no cover


# ============================================================================ a conversation


class ChatSession:
    """A conversation with the model: ``send(text)`` streams the reply's events and appends it to ``messages``.

    ``messages`` keeps the whole conversation. Before each reply the session
    leaves out the oldest exchanges (never the system message) until the prompt
    leaves ``min_room`` tokens of the context for the reply, and says so with a
    ``"notice"`` event. One seeded generator serves the whole session: the same
    seed and messages give the same replies. A reply that is interrupted (the
    consumer stops iterating, or Ctrl-C) is kept as far as it got.
    """

    def __init__(
        self, model: nn.Module, tokenizer: ChatTokenizer, settings: ChatSettings | None = None, *,
        system: str | None = None, seed: int = 0, min_room: int | None = None,
    ) -> None:
        _check_model(model, tokenizer)
        self.model, self.tokenizer = model, tokenizer
        self.settings = _settings(settings, {})
        self.system = system
        self.seed = seed
        block = int(model.config.block_size)
        self.min_room = positive_int(min_room, "min_room") if min_room is not None else max(1, min(64, block // 4))
        if self.min_room >= block:
            raise ValueError(f"min_room={self.min_room} leaves no room for a prompt in a context of {block} tokens.")
        if system is not None:
            self._check_text(system, "the system message")
        self.reset()

    def reset(self) -> None:
        """Forget the conversation (the system message stays) and restart the generator from the seed."""
        self.messages: list[dict[str, str]] = [{"role": "system", "content": self.system}] if self.system else []
        param = next(self.model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        self.generator = torch.Generator(device).manual_seed(self.seed)

    def configure(self, **changes: Any) -> ChatSettings:
        """Change settings (``temperature=0.7``...), validated; returns the new settings."""
        self.settings = _settings(self.settings, changes)
        return self.settings

    def _check_text(self, text: str, what: str) -> None:
        if not isinstance(text, str):
            raise TypeError(f"{what} must be a str, got {type(text).__name__}.")
        missing = self.tokenizer.missing_chars(text)
        if missing:
            raise ValueError(f"{what} has characters the model does not know: {' '.join(map(repr, missing))}. "
                             "It knows letters, digits, spaces and the punctuation of Shakespeare's plays.")

    def _prompt_messages(self, new: dict[str, str]) -> tuple[list[dict[str, str]], int]:
        """The messages the model is shown for this reply, and how many exchanges were left out."""
        head = self.messages[:1] if self.system else []
        rest = self.messages[len(head):]
        starts = [i for i, m in enumerate(rest) if m["role"] == "user"]
        budget = int(self.model.config.block_size) - self.min_room
        for dropped, first in enumerate(starts + [len(rest)]):
            shown = head + rest[first:] + [new]
            if len(render_prompt(shown, self.tokenizer)) <= budget:
                return shown, dropped
        raise ContextFullError(
            f"this message takes {len(render_prompt(head + [new], self.tokenizer))} tokens with the conversation's "
            f"start; with {self.min_room} tokens for the reply it must fit the model's context of "
            f"{self.model.config.block_size}: shorten it."
        )

    def send(self, text: str) -> Iterator[ChatEvent]:
        """Add the user's ``text`` and return the stream of the reply's events; the reply is appended as it ends.

        A message the model cannot read (unknown characters, too long) is refused
        here, with a ValueError, before anything is added.
        """
        self._check_text(text, "your message")
        new = {"role": "user", "content": text}
        shown, dropped = self._prompt_messages(new)
        self.messages.append(new)
        return self._stream(shown, dropped)

    def _stream(self, shown: list[dict[str, str]], dropped: int) -> Iterator[ChatEvent]:
        if dropped:
            block = self.model.config.block_size
            yield ChatEvent("notice", f"the model no longer sees the {dropped} oldest exchange(s): its context holds "
                                      f"{block} tokens")
        builder = _ReplyBuilder()
        try:
            for event in stream_reply(self.model, self.tokenizer, shown, self.settings, generator=self.generator):
                builder.add(event)
                yield event
        finally:  # also when the reply is interrupted: keep what was written
            self.messages.extend(builder.messages())
