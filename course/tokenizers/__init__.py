"""Tokenizers (chapter 01): characters, and byte-level BPE exact against GPT-2.

* `CharTokenizer`: one id per character (later chapters use it on Tiny Shakespeare).
* `BPETokenizer`: byte-level BPE; `BPETokenizer.train` learns merges,
  `BPETokenizer.from_gpt2_files` loads GPT-2's, `save` / `load` use a readable JSON file.
* `count_pairs`, `merge_pair`, `train_bpe`, `train_bpe_naive`: the training steps.
* `GPT2_PATTERN`, `pretokenize`: GPT-2's pre-tokenization.
* `load_tokenizer_file`: either kind, chosen by the file's own ``"format"`` field
  (the one rule every loader of the course uses). Kinds defined in later
  modules register their format with `register_tokenizer_format`: chapter 11's
  `course.chat_format.ChatTokenizer` (``"course-chat-tokenizer"``) does, when
  ``course.chat_format`` is imported. This package never imports it at import
  time (it builds on this one); reading a file of that format imports it then.
"""

import importlib
import json
from pathlib import Path

from .bpe import BPETrainingResult, count_pairs, merge_pair, train_bpe, train_bpe_naive, word_counts
from .char import CharTokenizer
from .files import TokenizerFileError, bytes_to_text, gpt2_file_paths, text_to_bytes
from .pretokenize import GPT2_PATTERN, SpecialSplitter, pretokenize
from .tokenizer import BPETokenizer
from .char import FORMAT as _CHAR_FORMAT
from .tokenizer import FORMAT as _BPE_FORMAT

#: Tokenizer kinds of later modules, by the "format" of their files (`register_tokenizer_format`).
_REGISTERED: dict = {}
#: Formats of later modules, and the module that registers each (named in the error when it is not imported yet).
_REGISTERED_BY = {"course-chat-tokenizer": "course.chat_format"}


def register_tokenizer_format(fmt: str, kind: type) -> None:
    """Let `load_tokenizer_file` read files of format ``fmt`` with ``kind.load(path)`` (a later module's tokenizer)."""
    if not isinstance(fmt, str) or not fmt or fmt in (_CHAR_FORMAT, _BPE_FORMAT):
        raise ValueError(f"fmt must be a new non-empty format name, got {fmt!r}.")
    if not callable(getattr(kind, "load", None)):
        raise TypeError(f"{kind!r} has no load(path) classmethod: load_tokenizer_file could not read its files.")
    _REGISTERED[fmt] = kind


def load_tokenizer_file(path: str | Path):  # -> CharTokenizer | BPETokenizer | a registered kind
    """A tokenizer saved by `CharTokenizer.save` or `BPETokenizer.save` (or a registered kind's ``save``), of the
    kind its ``"format"`` field names."""
    path = Path(path)
    try:
        fmt = json.loads(path.read_text(encoding="utf-8")).get("format")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as err:
        raise TokenizerFileError(f"{path} is not a tokenizer file written by the course ({type(err).__name__}: {err}).") from None
    kinds = {_CHAR_FORMAT: CharTokenizer, _BPE_FORMAT: BPETokenizer, **_REGISTERED}
    if fmt in _REGISTERED_BY and fmt not in kinds:  # a later module's format: import it now (it registers itself)
        importlib.import_module(_REGISTERED_BY[fmt])
        kinds.update(_REGISTERED)
    if fmt not in kinds:
        raise TokenizerFileError(
            f"{path} has format {fmt!r}; the course's tokenizer files have {sorted({*kinds, *_REGISTERED_BY})}."
        )
    return kinds[fmt].load(path)

__all__ = [
    "BPETokenizer",
    "BPETrainingResult",
    "CharTokenizer",
    "GPT2_PATTERN",
    "SpecialSplitter",
    "TokenizerFileError",
    "bytes_to_text",
    "count_pairs",
    "gpt2_file_paths",
    "load_tokenizer_file",
    "merge_pair",
    "pretokenize",
    "register_tokenizer_format",
    "text_to_bytes",
    "train_bpe",
    "train_bpe_naive",
    "word_counts",
]
