"""Pre-tokenization and special tokens (chapter 01).

Before BPE sees any bytes, GPT-2 cuts text into *pre-tokens* with a regular
expression: contractions, words with their leading space, runs of digits, runs
of punctuation, and whitespace. BPE then works inside each pre-token only, so no
merge ever spans a word boundary ("dog." and "dog!" share the token " dog").

Special tokens such as ``<|endoftext|>`` are cut out before that: they are never
split by the regex and never merged with their neighbours. When one special is a
prefix of another, the longest one wins.
"""

from __future__ import annotations

import re
from typing import Collection, Iterator

import regex

#: GPT-2's pre-tokenization pattern, as published with GPT-2 (``\p{L}`` letters, ``\p{N}`` digits).
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

_compiled: dict[str, regex.Pattern] = {}


def compile_pattern(pattern: str) -> regex.Pattern:
    if pattern not in _compiled:
        try:
            _compiled[pattern] = regex.compile(pattern)
        except regex.error as err:
            raise ValueError(f"the pre-tokenization pattern {pattern!r} is not a valid regular expression: {err}") from None
    return _compiled[pattern]


def pretokenize(text: str, pattern: str | None = GPT2_PATTERN) -> list[str]:
    """Cut ``text`` into pre-tokens; ``pattern=None`` keeps the text whole."""
    if pattern is None:
        return [text] if text else []
    return compile_pattern(pattern).findall(text)


class SpecialSplitter:
    """Cuts text into ordinary stretches and special tokens (longest match first)."""

    def __init__(self, specials: Collection[str]) -> None:
        for s in specials:
            if not isinstance(s, str) or not s:
                raise ValueError(f"special tokens must be non-empty strings, got {s!r}.")
        # Longest first: the alternation tries them in order, so "<|a|><|b|>" beats "<|a|>".
        self.specials = sorted(set(specials), key=lambda s: (-len(s), s))
        self._re = re.compile("|".join(re.escape(s) for s in self.specials)) if self.specials else None

    def split(self, text: str) -> Iterator[tuple[str, bool]]:
        """Yield ``(piece, is_special)`` in order; ordinary pieces are never empty."""
        if self._re is None:
            if text:
                yield text, False
            return
        start = 0
        for m in self._re.finditer(text):
            if m.start() > start:
                yield text[start : m.start()], False
            yield m.group(), True
            start = m.end()
        if start < len(text):
            yield text[start:], False

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Start and end of every special token found in ``text``."""
        return [m.span() for m in self._re.finditer(text)] if self._re is not None else []

    def pending_start(self, text: str) -> int:
        """The earliest position from which the end of ``text`` could still grow into a special token.

        ``len(text)`` when no suffix of ``text`` is a proper prefix of a special.
        Text before this position can be split safely; what follows must wait
        for more input.
        """
        for start in range(max(0, len(text) - max((len(s) for s in self.specials), default=0) + 1), len(text)):
            tail = text[start:]
            if any(len(s) > len(tail) and s.startswith(tail) for s in self.specials):
                return start
        return len(text)


_STREAM_CUT = regex.compile(r"\S(?=\s)")


def last_safe_cut(text: str, limit: int) -> int:
    """The last position ``q <= limit`` (``0 < q < len(text)``) where GPT-2's pattern surely has a boundary.

    A non-whitespace character followed by whitespace is such a place: no
    GPT-2 pre-token contains both, and no pre-token before it depends on what
    comes after it. Returns 0 when there is none.
    """
    best = 0
    for m in _STREAM_CUT.finditer(text, 0, min(limit, len(text)) + 1):
        q = m.start() + 1
        if q <= limit:
            best = q
    return best
