"""Tests of course.chat (chapter 11), the terminal chat: the loop as a plain function with injected input and output
(replies stream, calculator calls show, /reset, /temperature, /help, /quit, Ctrl-C stops a reply, Ctrl-C or EOF at the
prompt ends the chat), the command line's messages, and the real CLI driven in a pseudo-terminal."""

from __future__ import annotations

import io
import os
import select
import signal
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import course.chat as chat
from chat_helpers import TOK, ScriptedReplies, tiny_model
from course.chat_engine import ChatSession, ChatSettings

ROOT = Path(__file__).resolve().parent.parent


def _lines(*lines):
    queue = list(lines)

    def read(prompt: str) -> str:
        if not queue:
            raise EOFError
        item = queue.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    return read


def _save(model, folder: Path, tokenizer=TOK) -> Path:
    from course.checkpoint import save_checkpoint
    from course.train_config import TrainConfig

    optimizer = torch.optim.AdamW(model.parameters())
    save_checkpoint(folder, 1, model, optimizer, SimpleNamespace(generator=torch.Generator()),
                    TrainConfig(model=model.config), tokenizer, {})
    return folder


def _unigram_model(block_size: int = 64):
    """A GPT whose next-token distribution is the same everywhere: 'a' 80%, <|end|> 20%, the rest ~0.

    Sampled, it writes a few a's and stops; greedy, it writes a's for ever.
    """
    model = tiny_model(block_size=block_size, tie_weights=False)
    with torch.no_grad():
        model.norm_f.weight.zero_()
        model.norm_f.bias.zero_()
        model.norm_f.bias[0] = 1.0  # every final hidden state is e_0
        model.head.weight.zero_()
        model.head.weight[:, 0] = -30.0
        model.head.weight[TOK.encode("a")[0], 0] = float(torch.log(torch.tensor(0.8)))
        model.head.weight[TOK.end_id, 0] = float(torch.log(torch.tensor(0.2)))
    return model


def test_the_loop_streams_replies_shows_calls_and_runs_commands():
    script = ScriptedReplies(["<|tool_call|>12*34<|end|>", "It is 408.<|end|>"])
    session = ChatSession(tiny_model(), TOK, ChatSettings(processors=(script,)))
    out: list[str] = []
    status = chat.chat_loop(session, _lines("What is 12*34?", "", "/temperature 0.7", "/temperature", "/temperature -1",
                                            "/help", "/bogus", "/reset", "/quit", "never read"), out.append)
    text = "".join(out)
    assert status == 0
    assert "assistant> [calculator: 12*34 = 408]It is 408.\n" in text
    assert "(temperature 0.7)" in text and "give a value" in text and "error: temperature must be" in text
    assert "commands: /reset" in text and "unknown command /bogus" in text and "(conversation cleared)" in text
    assert session.messages == [] and session.settings.temperature == 0.7


def test_ctrl_c_stops_a_reply_and_ctrl_c_or_eof_at_the_prompt_ends_the_chat():
    session = ChatSession(tiny_model(), TOK, ChatSettings(processors=(ScriptedReplies(["a" * 100]),)))
    out: list[str] = []
    pieces = [0]

    def write(text: str) -> None:
        if text == "a":
            pieces[0] += 1
            if pieces[0] == 4:
                raise KeyboardInterrupt  # Ctrl-C while the 4th character is being shown
        out.append(text)

    assert chat.chat_loop(session, _lines("Go on.", KeyboardInterrupt()), write) == 0
    text = "".join(out)
    assert "assistant> aaa [stopped]\n" in text
    # the stopped reply stays as far as it was generated (the 4th character was written, not yet shown)
    assert session.messages[-1] == {"role": "assistant", "content": "aaaa"}
    assert chat.chat_loop(session, _lines(), out.append) == 0  # EOF (Ctrl-D) at the prompt
    out.clear()
    assert chat.chat_loop(session, _lines("12 €", "/quit"), out.append) == 0
    assert "error: your message has characters the model does not know: '€'" in "".join(out)


def test_main_without_a_checkpoint_says_what_to_pass_and_how_to_make_one(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(chat, "ASSISTANT_CHECKPOINT", tmp_path / "assistant-char")
    assert chat.main([]) == 2
    err = capsys.readouterr().err
    assert "--checkpoint DIR" in err and "attach_tokenizer" in err and "assistant-char" in err and "--base" in err
    assert chat.main(["--checkpoint", str(tmp_path / "nowhere")]) == 2
    assert "cannot load" in capsys.readouterr().err
    plain = _save(tiny_model(vocab_size=TOK.text.vocab_size), tmp_path / "plain", TOK.text)
    assert chat.main(["--checkpoint", str(plain)]) == 2
    assert "not a chat tokenizer" in capsys.readouterr().err
    assert chat.main(["--checkpoint", str(plain), "--temperature", "-2"]) == 2
    assert "temperature" in capsys.readouterr().err


def test_main_chats_with_a_checkpoint_in_process(tmp_path):
    folder = _save(_unigram_model(), tmp_path / "run")
    out = io.StringIO()
    status = chat.main(["--checkpoint", str(folder), "--temperature", "1", "--seed", "3"],
                       stdin=io.StringIO("Hello\n/reset\nHello\n"), out=out)
    text = out.getvalue()
    assert status == 0
    assert text.startswith(f"Chatting with {folder} (context 64 tokens, calculator on)")
    replies = [line for line in text.splitlines() if "assistant> " in line]
    assert len(replies) == 2 and replies[0] == replies[1], "after /reset the seed starts again: the same reply"
    assert set(replies[0].split("assistant> ")[1]) <= {"a"}


class _Terminal:
    """The parent's side of a pseudo-terminal: everything read so far, and where the last expected text ended."""

    def __init__(self, fd: int) -> None:
        self.fd, self.text, self.pos = fd, "", 0

    def expect(self, wanted: str, timeout: float = 20.0) -> str:
        """Read until ``wanted`` appears after the previous match; returns the text between the two."""
        deadline = time.monotonic() + timeout
        start = self.pos  # search only text not searched yet (a reply that streams megabytes stays linear)
        while (found := self.text.find(wanted, start)) < 0:
            start = max(self.pos, len(self.text) - len(wanted) + 1)
            if time.monotonic() > deadline:
                raise AssertionError(f"{wanted!r} did not appear; the terminal shows:\n{self.text[-2000:]}")
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if not ready:
                continue
            try:
                data = os.read(self.fd, 65536)
            except OSError:  # the child closed the terminal
                data = b""
            if not data:
                raise AssertionError(f"{wanted!r} did not appear before the chat ended:\n{self.text[-2000:]}")
            self.text += data.decode("utf-8", "replace")
        end = found + len(wanted)
        between, self.pos = self.text[self.pos: end], end
        return between

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def drain(self) -> None:
        while select.select([self.fd], [], [], 0.1)[0]:
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                return
            if not data:
                return
            self.text += data.decode("utf-8", "replace")


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_the_real_cli_in_a_pseudo_terminal(tmp_path):
    import pty

    folder = _save(_unigram_model(), tmp_path / "run")
    argv = [sys.executable, "-m", "course.chat", "--checkpoint", str(folder), "--temperature", "1",
            "--overflow", "slide", "--max-new-tokens", "1000000"]
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    pid, fd = pty.fork()
    if pid == 0:  # the child: the chat, with the pseudo-terminal as its controlling terminal
        os.chdir(ROOT)
        # As a terminal's shell starts a program: Ctrl-C's SIGINT at its default. A test run started in the background
        # by a non-interactive shell (`make test &`) ignores SIGINT, execve keeps that, and Python then never raises
        # KeyboardInterrupt: the chat would stream on after Ctrl-C.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.execve(sys.executable, argv, env)
    term = _Terminal(fd)
    try:
        term.expect("you> ")
        term.send(b"Hello\n")
        shown = term.expect("you> ")
        reply = shown.split("assistant> ")[-1].split("\r\n")[0]
        assert reply and set(reply) <= {"a"}, shown
        term.send(b"/temperature 0\n")
        term.expect("(temperature 0: greedy)")
        term.expect("you> ")
        term.send(b"Go on for ever.\n")  # greedy: 'a' for ever, the window sliding; only Ctrl-C stops it
        term.expect("a" * 200)
        term.send(b"\x03")  # Ctrl-C, through the terminal: SIGINT to the chat
        term.expect(" [stopped]")
        term.expect("you> ")
        term.send(b"/reset\n")
        term.expect("(conversation cleared)")
        term.expect("you> ")
        # Ctrl-C at the prompt: a clean exit. (Wait a moment first: "you> " is written just before input() starts
        # reading, and a SIGINT in between is only noticed after the next line, as in any Python program.)
        time.sleep(0.5)
        term.send(b"\x03")
        deadline = time.monotonic() + 20
        while True:
            term.drain()
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"the chat did not exit after Ctrl-C at the prompt:\n{term.text[-2000:]}")
            time.sleep(0.05)
        assert os.waitstatus_to_exitcode(status) == 0
        assert "Traceback" not in term.text
    finally:
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(fd)
