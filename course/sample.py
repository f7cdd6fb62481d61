"""Sample text from a checkpoint on the command line (chapter 06).

    python -m course.sample --prompt "ROMEO:" --max-new-tokens 300 --temperature 0.8 --top-p 0.9
    python -m course.sample --checkpoint runs/cpu --prompt "JULIET:" --greedy --stop "\\n\\n"

Without ``--checkpoint`` it uses the course's pretrained model
(`course.pretrained.load_pretrained`). Tokens are printed as they are produced.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence, TextIO

import torch

from .sampling import SamplingConfig, stream_text


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m course.sample", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", help="a checkpoint folder (or a run folder with latest.json); default: the course's pretrained model")
    p.add_argument("--prompt", default="\n", help="the text to continue (default: a newline); \\n is read as a newline")
    p.add_argument("--max-new-tokens", type=int, default=200)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--min-p", type=float, default=None)
    p.add_argument("--repetition-penalty", type=float, default=None)
    p.add_argument("--frequency-penalty", type=float, default=0.0)
    p.add_argument("--presence-penalty", type=float, default=0.0)
    p.add_argument("--greedy", action="store_true", help="always take the most likely token")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling generator (same seed, same text)")
    p.add_argument("--stop", action="append", default=[], help="stop before this string (repeatable)")
    p.add_argument("--no-cache", action="store_true", help="recompute every position at every step (slow; for comparison)")
    p.add_argument("--device", default="cpu")
    return p


def _unescape(text: str) -> str:
    return text.replace("\\n", "\n").replace("\\t", "\t")


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    args = _parser().parse_args(argv)
    out = out or sys.stdout
    if args.checkpoint:
        from .checkpoint import load_model, load_tokenizer

        model, _ = load_model(args.checkpoint, device=args.device)
        tokenizer = load_tokenizer(args.checkpoint)
    else:
        from .pretrained import load_pretrained

        model, tokenizer = load_pretrained(args.device)
    prompt = _unescape(args.prompt)
    try:
        tokenizer.encode(prompt)  # fail early (before printing anything) on bad settings or characters
        if args.max_new_tokens < 0:
            raise ValueError(f"--max-new-tokens must be >= 0, got {args.max_new_tokens}.")
        config = SamplingConfig(  # validated here, before the first token
            temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, min_p=args.min_p,
            repetition_penalty=args.repetition_penalty, frequency_penalty=args.frequency_penalty,
            presence_penalty=args.presence_penalty, greedy=args.greedy, use_cache=not args.no_cache,
            stop_strings=tuple(_unescape(s) for s in args.stop),
        )
        pieces = stream_text(
            model, tokenizer, prompt, args.max_new_tokens, config,
            generator=torch.Generator(args.device).manual_seed(args.seed),
        )
        out.write(prompt)
        for piece in pieces:
            out.write(piece)
            out.flush()
    except ValueError as err:  # bad settings: say what is wrong, without a traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
    out.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
