"""The chat widget of chapter 11: a text box, the reply streamed as it is written, calculator calls shown.

The plain functions compute everything the widget shows (tests call them
without a browser): `chat_turn(session, text, on_update)` sends one message and
reports the reply as it grows; `transcript` / `transcript_html` turn a
conversation into what is shown (a calculator call reads
``[calculator: 12*34 = 408]``, as in the terminal chat, `course.chat`);
`transcript_figure` draws it for the static face. `chat_widget` is the thin
ipywidgets wiring: a text box and a Send button, a Reset button, a temperature
slider and a calculator switch.
"""

from __future__ import annotations

import html
import textwrap
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from matplotlib.figure import Figure
from torch import nn

from course.chat_engine import ChatEvent, ChatSession, ChatSettings, display_text
from course.chat_format import ChatTokenizer, validate_messages
from course.widgets.explorer import Explorer, static_face

SPEAKERS = {"system": "system", "user": "you", "assistant": "assistant"}
_COLOURS = {"system": "#666666", "you": "#1f4e79", "assistant": "#222222", "error": "#a00000"}


@dataclass(frozen=True)
class Turn:
    """One exchange as the widget shows it."""

    user: str
    reply: str  # the reply as shown (display_text of its events), "" when the message was refused
    reason: str | None  # how the reply ended (course.chat_engine.END_REASONS), None when refused
    notice: str | None = None  # a remark of the session (older exchanges forgotten)
    error: str | None = None  # why the message was refused (unknown characters, too long)


def reply_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """How a reply (its assistant and tool messages, in order) is shown: calls as ``[calculator: expr = result]``.

    It is the text that `display_text` streams for the same reply (without the
    note of a cut reply).
    """
    parts = []
    for m in messages:
        if m["role"] == "assistant":
            parts.append(m["content"])
            if "tool_call" in m:
                parts.append(display_text(ChatEvent("tool_call")) + m["tool_call"])
        elif m["role"] == "tool":
            error = "" if not m["content"].startswith("error:") else m["content"]
            parts.append(display_text(ChatEvent("tool_result", m["content"], error=error or None)))
    return "".join(parts)


def transcript(messages: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """The conversation as (speaker, shown text) pairs: a system message, then each user message and its reply."""
    out: list[tuple[str, str]] = []
    reply: list[Mapping[str, Any]] = []
    for m in validate_messages(messages):
        if m["role"] in ("assistant", "tool"):
            reply.append(m)
            continue
        if reply:
            out.append(("assistant", reply_text(reply)))
            reply = []
        out.append((SPEAKERS[m["role"]], m["content"]))
    if reply:
        out.append(("assistant", reply_text(reply)))
    return out


def transcript_html(messages: Sequence[Mapping[str, Any]], pending: str | None = None, error: str | None = None) -> str:
    """The conversation as HTML (escaped), with the reply being written (``pending``) and an error line last."""
    rows = transcript(messages)
    if pending is not None:
        rows.append(("assistant", pending + "\u258c"))  # a cursor while the reply is written
    if error is not None:
        rows.append(("error", error))
    if not rows:
        rows.append(("system", "Type a message below."))
    lines = []
    for speaker, text in rows:
        body = html.escape(text).replace("\n", "<br>")
        colour = _COLOURS.get(speaker, "#222222")
        lines.append(f'<div style="margin:2px 0;color:{colour}"><b>{html.escape(speaker)}&gt;</b> '
                     f'<span style="font-family:monospace">{body}</span></div>')
    return '<div style="max-height:320px;overflow-y:auto">' + "".join(lines) + "</div>"


def chat_turn(session: ChatSession, text: str, on_update: Callable[[str], None] | None = None) -> Turn:
    """Send ``text`` to the session and run the reply; ``on_update(reply so far)`` follows each event.

    A message the model cannot read comes back as a `Turn` with ``error`` set
    (the conversation is unchanged), never as an exception: a widget shows it.
    """
    try:
        events = session.send(text)
    except ValueError as err:
        return Turn(text, "", None, error=str(err))
    shown, notice, reason = "", None, None
    for event in events:
        if event.kind == "notice":
            notice = event.text
            continue
        if event.kind == "end":
            reason = event.reason
        shown += display_text(event)
        if on_update is not None:
            on_update(shown)
    return Turn(text, shown, reason, notice)


def status_line(turn: Turn | None, settings: ChatSettings) -> str:
    """The line under the transcript: the settings, how the last reply ended, any notice or error."""
    t = settings.temperature
    parts = [f"temperature {t:g}{' (greedy)' if t == 0 else ''}", f"calculator {'on' if settings.tools else 'off'}"]
    if turn is not None and turn.error is None:
        parts.append(f"last reply: {turn.reason}")
    if turn is not None and turn.notice:
        parts.append(turn.notice)
    return "; ".join(parts)


def transcript_figure(messages: Sequence[Mapping[str, Any]], title: str = "Chat", width: int = 80) -> Figure:
    """The transcript drawn as text (the widget's static face): one block per speaker, lines wrapped at ``width``."""
    lines: list[tuple[str, str]] = []
    for speaker, text in transcript(messages) or [("system", "(no messages yet)")]:
        wrapped = textwrap.wrap(f"{speaker}> {text}", width, subsequent_indent="    ") or [f"{speaker}>"]
        lines.extend((speaker, line) for line in wrapped[:12])
    fig = Figure(figsize=(8, 0.6 + 0.22 * len(lines)))
    fig.text(0.02, 1.0 - 0.25 / fig.get_figheight(), title, fontsize=11, weight="bold", va="top")
    for i, (speaker, line) in enumerate(lines):
        y = 1.0 - (0.55 + 0.22 * i) / fig.get_figheight()
        fig.text(0.02, y, line, fontsize=9, family="monospace", va="top", color=_COLOURS.get(speaker, "#222222"))
    return fig


def chat_widget(
    model: nn.Module,
    tokenizer: ChatTokenizer,
    settings: ChatSettings | None = None,
    *,
    example: str | None = "What is 12*34?",
    system: str | None = None,
    seed: int = 0,
) -> Explorer:
    """A chat with ``model``: type a message, press Enter or Send; the reply streams in. ``example`` is sent first.

    The returned `Explorer` carries the picture of the first exchange (the
    book's view), ``session`` (the `ChatSession`) and ``controls`` (a dict of the
    widgets, for tests).
    """
    import ipywidgets as w

    session = ChatSession(model, tokenizer, settings, system=system, seed=seed)
    last: list[Turn | None] = [None]
    if example:
        last[0] = chat_turn(session, example)
    history = w.HTML(transcript_html(session.messages))
    status = w.HTML(status_line(last[0], session.settings))
    box = w.Text(placeholder="Type a message, then Enter", continuous_update=False, layout=w.Layout(width="420px"))
    send = w.Button(description="Send", button_style="primary")
    reset = w.Button(description="Reset")
    slider = w.FloatSlider(value=session.settings.temperature, min=0.0, max=1.5, step=0.05, description="temperature",
                           continuous_update=False)
    tools = w.Checkbox(value=session.settings.tools, description="calculator")

    def submit(_: object = None) -> None:
        text = box.value.strip()
        if not text:
            return
        box.value = ""
        turn = chat_turn(session, text, lambda shown: setattr(history, "value", transcript_html(session.messages, shown)))
        history.value = transcript_html(session.messages, error=turn.error)
        last[0] = turn
        status.value = status_line(turn, session.settings)

    def on_box(change: dict) -> None:
        if change["new"]:
            submit()

    def on_reset(_: object = None) -> None:
        session.reset()
        last[0] = None
        history.value = transcript_html(session.messages)
        status.value = status_line(None, session.settings)

    def on_setting(_: object = None) -> None:
        session.configure(temperature=float(slider.value), tools=bool(tools.value))
        status.value = status_line(last[0], session.settings)

    box.observe(on_box, names="value")
    send.on_click(submit)
    reset.on_click(on_reset)
    slider.observe(on_setting, names="value")
    tools.observe(on_setting, names="value")
    fig = transcript_figure(session.messages, "Chat with the assistant")
    s = session.settings
    settings_text = (f"temperature {s.temperature:g}, calculator {'on' if s.tools else 'off'}"
                     + (f", first message {example!r}" if example else ""))
    face = static_face(fig, settings_text)
    explorer = Explorer([history, status, w.HBox([box, send, reset]), w.HBox([slider, tools])], face=face,
                        description="Chat widget")
    explorer.session = session
    explorer.controls = {"history": history, "status": status, "text": box, "send": send, "reset": reset,
                         "temperature": slider, "tools": tools}
    return explorer


__all__ = ["Turn", "chat_turn", "chat_widget", "reply_text", "status_line", "transcript", "transcript_figure",
           "transcript_html"]
