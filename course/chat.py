"""Chat with the course's assistant in a terminal (chapter 11).

    python -m course.chat --checkpoint runs/assistant
    python -m course.chat --checkpoint runs/assistant --temperature 0.7 --no-tools

Without ``--checkpoint`` it uses the shipped assistant (``course/checkpoints/assistant-char``)
when the course has one, and otherwise says how to make one. ``--base`` chats
with the pretrained Shakespeare model grown to the chat vocabulary, before any
instruction tuning: it continues text, it does not answer (try it once).

The reply streams as it is written; calculator calls show as they happen
(``[calculator: 12*34 = 408]``). Commands: ``/reset`` forgets the conversation,
``/temperature 0.7`` changes the temperature (0: greedy), ``/help``, ``/quit``.
Ctrl-C during a reply stops that reply and returns to the prompt; Ctrl-C or
Ctrl-D (end of input) at the prompt ends the chat.

`chat_loop` is the loop itself, a plain function with injectable input and
output (the tests drive it without a terminal); `main` builds the session from
the command line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Sequence, TextIO

from .chat_engine import ChatSession, ChatSettings, ContextFullError, display_text

ASSISTANT_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "assistant-char"
PROMPT = "you> "
REPLY = "assistant> "
HELP = ("commands: /reset forgets the conversation; /temperature T sets the temperature (0: greedy); "
        "/help; /quit. Ctrl-C stops a reply; Ctrl-C or Ctrl-D at the prompt ends the chat.")
NO_ASSISTANT = (
    "No assistant checkpoint to chat with: the course does not ship {path} yet.\n"
    "Pass one with --checkpoint DIR: a checkpoint folder, or a training run's out_dir, holding model.safetensors, "
    "config.json and the chat tokenizer (tokenizer.json with format 'course-chat-tokenizer').\n"
    "To make one: grow the pretrained model to the chat vocabulary (course.chat_format.grow_model), fine-tune it on "
    "course.assistant_tasks with course.train.Trainer (course.chat_data.mixture_rows and trainer_batches, out_dir set), "
    "then write the tokenizer next to the weights with course.chat_data.attach_tokenizer(out_dir, tokenizer): "
    "chapter 11 does all of this.\n"
    "Or try --base: the pretrained model before any instruction tuning."
)


def _write(out: TextIO) -> Callable[[str], None]:
    def write(text: str) -> None:
        out.write(text)
        out.flush()

    return write


def _command(session: ChatSession, line: str, write: Callable[[str], None]) -> bool:
    """Run a /command; False when it ends the chat."""
    name, _, arg = line.partition(" ")
    arg = arg.strip()
    if name in ("/quit", "/exit"):
        return False
    if name == "/reset":
        session.reset()
        write("(conversation cleared)\n")
    elif name == "/temperature":
        try:
            session.configure(temperature=float(arg))
        except ValueError as err:
            write(f"error: {err if arg else 'give a value: /temperature 0.7'}\n")
        else:
            t = session.settings.temperature
            write(f"(temperature {t:g}{': greedy' if t == 0 else ''})\n")
    elif name == "/help":
        write(HELP + "\n")
    else:
        write(f"unknown command {name}; {HELP}\n")
    return True


def chat_loop(session: ChatSession, read: Callable[[str], str], write: Callable[[str], None]) -> int:
    """Read a line, stream the reply, repeat; returns the exit status (0).

    ``read(prompt)`` returns the user's line (raising EOFError or
    KeyboardInterrupt to end the chat, as `input` does); ``write(text)`` shows
    text. A KeyboardInterrupt while a reply streams stops that reply (what was
    written stays in the conversation) and goes back to the prompt.
    """
    while True:
        try:
            line = read(PROMPT)
        except (EOFError, KeyboardInterrupt):
            write("\n")
            return 0
        line = line.strip()
        if not line:
            continue
        if line.startswith("/"):
            if not _command(session, line, write):
                return 0
            continue
        try:
            events = session.send(line)
        except ValueError as err:  # unknown characters, a message too long for the context
            write(f"error: {err}\n")
            continue
        write(REPLY)
        try:
            for event in events:
                if event.kind == "notice":
                    write(f"({event.text})\n{REPLY}")
                else:
                    write(display_text(event))
        except KeyboardInterrupt:
            events.close()  # type: ignore[attr-defined]  (the session keeps the reply as far as it got)
            write(" [stopped]")
        except ContextFullError as err:
            write(f"\nerror: {err}")
        write("\n")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m course.chat", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", help=f"a checkpoint folder or a run's out_dir; default: {ASSISTANT_CHECKPOINT}")
    p.add_argument("--base", action="store_true", help="the pretrained model grown to the chat vocabulary, untuned")
    p.add_argument("--temperature", type=float, default=0.0, help="0 (the default) is greedy decoding")
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--max-new-tokens", type=int, default=200)
    p.add_argument("--max-tool-calls", type=int, default=3)
    p.add_argument("--no-tools", action="store_true", help="never call the calculator: the model answers by itself")
    p.add_argument("--overflow", choices=("stop", "slide"), default="stop",
                   help="when a reply fills the context: stop it, or slide the window on")
    p.add_argument("--system", default=None, help="a system message that starts the conversation")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling generator (same seed, same replies)")
    p.add_argument("--device", default="cpu")
    return p


def _load(args: argparse.Namespace):
    """(model, tokenizer) from the arguments, or a str saying what is wrong."""
    from .chat_format import ChatTokenizer

    if args.base:
        from .chat_format import grow_model
        from .pretrained import load_pretrained

        model, base = load_pretrained(args.device)
        tokenizer = ChatTokenizer(base)
        return grow_model(model, tokenizer.vocab_size).eval(), tokenizer
    folder = args.checkpoint or (ASSISTANT_CHECKPOINT if ASSISTANT_CHECKPOINT.is_dir() else None)
    if folder is None:
        return NO_ASSISTANT.format(path=ASSISTANT_CHECKPOINT)
    from .checkpoint import load_model, load_tokenizer

    try:
        tokenizer = load_tokenizer(folder)
        model, _ = load_model(folder, device=args.device)
    except (FileNotFoundError, ValueError, RuntimeError) as err:  # CheckpointError is a RuntimeError
        return f"cannot load {folder}: {err}"
    if not isinstance(tokenizer, ChatTokenizer):
        return (f"{folder} holds a {type(tokenizer).__name__}, not a chat tokenizer: this is a language model, not an "
                "assistant. Fine-tune it in the chat format first (chapter 11), or try --base.")
    return model, tokenizer


def main(argv: Sequence[str] | None = None, *, stdin: TextIO | None = None, out: TextIO | None = None) -> int:
    args = _parser().parse_args(argv)
    out = out or sys.stdout
    try:
        settings = ChatSettings(temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens,
                                max_tool_calls=args.max_tool_calls, tools=not args.no_tools, overflow=args.overflow)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    loaded = _load(args)
    if isinstance(loaded, str):
        print(loaded, file=sys.stderr)
        return 2
    model, tokenizer = loaded
    try:
        session = ChatSession(model, tokenizer, settings, system=args.system, seed=args.seed)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    write = _write(out)
    where = "the untuned base model" if args.base else str(args.checkpoint or ASSISTANT_CHECKPOINT)
    tools = "off" if args.no_tools else "on"
    write(f"Chatting with {where} (context {model.config.block_size} tokens, calculator {tools}). /help for commands.\n")
    if stdin is None:
        read = input
    else:
        def read(prompt: str) -> str:
            write(prompt)
            line = stdin.readline()
            if not line:
                raise EOFError
            return line
    return chat_loop(session, read, write)


if __name__ == "__main__":
    raise SystemExit(main())
