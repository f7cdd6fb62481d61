"""A character-level tokenizer (chapter 01; used by later chapters on Tiny Shakespeare).

Every distinct character of a training text gets one id, in sorted order, so the
same text always gives the same vocabulary. Simple and lossless on that text;
a character it never saw is an error that names the character and where it is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Sequence

FORMAT = "course-char-tokenizer"


class CharTokenizer:
    """Maps each character of a fixed alphabet to an id and back.

    >>> tok = CharTokenizer.from_text("hello")
    >>> tok.encode("hell"), tok.decode([1, 0])
    ([1, 0, 2, 2], 'he')
    """

    def __init__(self, chars: Sequence[str]) -> None:
        chars = list(chars)
        for i, c in enumerate(chars):
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"every vocabulary entry must be a single character; entry {i} is {c!r}.")
        if len(set(chars)) != len(chars):
            dup = sorted({c for c in chars if chars.count(c) > 1})
            raise ValueError(f"the vocabulary lists these characters more than once: {dup!r}.")
        if not chars:
            raise ValueError("the vocabulary is empty: build it from a non-empty text with CharTokenizer.from_text(text).")
        self.chars: list[str] = chars
        self.stoi: dict[str, int] = {c: i for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> "CharTokenizer":
        """The vocabulary of every distinct character in ``text``, sorted by code point."""
        if not isinstance(text, str):
            raise TypeError(f"from_text expects a str, got {type(text).__name__}.")
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def __len__(self) -> int:
        return len(self.chars)

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(
                f"encode expects a str, got {type(text).__name__}"
                + (": decode bytes first, e.g. data.decode('utf-8')." if isinstance(text, bytes) else ".")
            )
        stoi = self.stoi
        try:
            return [stoi[c] for c in text]
        except KeyError:
            pos = next(i for i, c in enumerate(text) if c not in stoi)
            c = text[pos]
            raise ValueError(
                f"character {c!r} (U+{ord(c):04X}) at position {pos} is not in the vocabulary "
                f"({self.vocab_size} characters learned from the training text). "
                "Build the tokenizer from a text that contains it, or remove it from the input."
            ) from None

    def decode(self, ids: Iterable[int]) -> str:
        chars, n = self.chars, len(self.chars)
        out = []
        for pos, i in enumerate(ids):
            i = int(i)
            if not 0 <= i < n:
                raise ValueError(f"id {i} at position {pos} is out of range: ids go from 0 to {n - 1}.")
            out.append(chars[i])
        return "".join(out)

    def save(self, path: str | Path) -> None:
        """Write the vocabulary as readable JSON (the characters in id order)."""
        data = {"format": FORMAT, "version": 1, "chars": self.chars}
        Path(path).write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "CharTokenizer":
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err}); was it written by CharTokenizer.save?") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("chars"), list):
            raise ValueError(f"{path} is not a character tokenizer file (expected format {FORMAT!r} with a 'chars' list).")
        return cls(data["chars"])
