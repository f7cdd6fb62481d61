"""Tests of course.widgets.chat (chapter 11): the plain functions behind the chat widget (a turn streamed, the
transcript as text, HTML and a picture, refused messages) and the ipywidgets wiring, driven without a browser."""

from __future__ import annotations

import base64

import matplotlib.pyplot as plt

from chat_helpers import TOK, ScriptedReplies, tiny_model
from course.chat_engine import ChatSession, ChatSettings
from course.widgets.chat import (
    chat_turn,
    chat_widget,
    reply_text,
    status_line,
    transcript,
    transcript_figure,
    transcript_html,
)
from course.widgets.explorer import LIVE_NOTE, PNG_SIGNATURE

TOOL_SCRIPT = ["<|tool_call|>12*34<|end|>", "It is 408.<|end|>"]


def _session(script=TOOL_SCRIPT, **settings) -> ChatSession:
    return ChatSession(tiny_model(), TOK, ChatSettings(processors=(ScriptedReplies(script),), **settings))


def test_a_turn_streams_the_reply_as_the_transcript_shows_it():
    session = _session()
    updates: list[str] = []
    turn = chat_turn(session, "What is 12*34?", updates.append)
    assert turn.reply == "[calculator: 12*34 = 408]It is 408." and turn.reason == "end" and turn.error is None
    assert updates[0] == "[calculator: " and updates[-1] == turn.reply
    assert all(b.startswith(a) for a, b in zip(updates, updates[1:])), "the shown reply only grows"
    assert transcript(session.messages) == [("you", "What is 12*34?"), ("assistant", turn.reply)]
    assert reply_text(session.messages[1:]) == turn.reply


def test_refused_messages_and_errors_come_back_as_text():
    session = _session()
    turn = chat_turn(session, "12 €")
    assert turn.reply == "" and turn.reason is None and "'€'" in turn.error
    assert session.messages == []
    errors = transcript(
        [{"role": "user", "content": "2**3?"}, {"role": "assistant", "content": "", "tool_call": "2**3"},
         {"role": "tool", "content": "error: powers (**): not allowed"}, {"role": "assistant", "content": "No."}])
    assert errors[-1] == ("assistant", "[calculator: 2**3 -> error: powers (**): not allowed]No.")


def test_transcript_html_escapes_and_shows_the_pending_reply():
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "<b>hi</b> & bye"}]
    page = transcript_html(messages, pending="Hel", error="oops")
    assert "&lt;b&gt;hi&lt;/b&gt; &amp; bye" in page and "<b>hi</b>" not in page
    assert "Hel\u258c" in page and "oops" in page and "system&gt;" in page
    assert "Type a message" in transcript_html([])
    assert "greedy" in status_line(None, ChatSettings()) and "calculator off" in status_line(None, ChatSettings(tools=False))


def test_transcript_figure_draws_every_line():
    messages = [{"role": "user", "content": "Spell 'crown'."}, {"role": "assistant", "content": "c-r-o-w-n " * 20}]
    fig = transcript_figure(messages, "Chat")
    texts = [t.get_text() for t in fig.texts]
    assert texts[0] == "Chat" and texts[1] == "you> Spell 'crown'." and texts[2].startswith("assistant> c-r-o-w-n")
    assert len(texts) > 4, "a long reply is wrapped over several lines"
    plt.close(fig)


def test_the_widget_wiring_without_a_browser():
    model = tiny_model()
    widget = chat_widget(model, TOK, ChatSettings(processors=(ScriptedReplies(TOOL_SCRIPT),)), example="What is 12*34?")
    bundle = widget._repr_mimebundle_()
    assert base64.b64decode(bundle["image/png"]).startswith(PNG_SIGNATURE) and LIVE_NOTE in bundle["text/plain"]
    c = widget.controls
    assert "[calculator: 12*34 = 408]It is 408." in c["history"].value
    assert "last reply: end" in c["status"].value
    c["text"].value = "Thanks!"  # Enter in the text box (continuous_update=False: the value arrives on Enter)
    assert c["text"].value == "" and "Thanks!" in c["history"].value
    assert [m["role"] for m in widget.session.messages] == ["user", "assistant", "tool", "assistant", "user", "assistant"]
    c["text"].value = "12 €"
    assert "does not know" in c["history"].value and len(widget.session.messages) == 6
    c["temperature"].value = 0.7
    c["tools"].value = False
    assert widget.session.settings.temperature == 0.7 and not widget.session.settings.tools
    assert "temperature 0.7" in c["status"].value and "calculator off" in c["status"].value
    c["reset"].click()
    assert widget.session.messages == [] and "Type a message" in c["history"].value
    c["send"].click()  # an empty box sends nothing
    assert widget.session.messages == []
    plt.close("all")
