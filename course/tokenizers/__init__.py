"""Tokenizers (chapter 01): characters, and byte-level BPE exact against GPT-2.

* `CharTokenizer`: one id per character (later chapters use it on Tiny Shakespeare).
* `BPETokenizer`: byte-level BPE; `BPETokenizer.train` learns merges,
  `BPETokenizer.from_gpt2_files` loads GPT-2's, `save` / `load` use a readable JSON file.
* `count_pairs`, `merge_pair`, `train_bpe`, `train_bpe_naive`: the training steps.
* `GPT2_PATTERN`, `pretokenize`: GPT-2's pre-tokenization.
* `load_tokenizer_file`: either kind, chosen by the file's own ``"format"`` field
  (the one rule every loader of the course uses).
"""

import json
from pathlib import Path

from .bpe import BPETrainingResult, count_pairs, merge_pair, train_bpe, train_bpe_naive, word_counts
from .char import CharTokenizer
from .files import TokenizerFileError, bytes_to_text, gpt2_file_paths, text_to_bytes
from .pretokenize import GPT2_PATTERN, SpecialSplitter, pretokenize
from .tokenizer import BPETokenizer
from .char import FORMAT as _CHAR_FORMAT
from .tokenizer import FORMAT as _BPE_FORMAT


def load_tokenizer_file(path: str | Path) -> CharTokenizer | BPETokenizer:
    """A tokenizer saved by `CharTokenizer.save` or `BPETokenizer.save`, of the kind its ``"format"`` field names."""
    path = Path(path)
    try:
        fmt = json.loads(path.read_text(encoding="utf-8")).get("format")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as err:
        raise TokenizerFileError(f"{path} is not a tokenizer file written by the course ({type(err).__name__}: {err}).") from None
    kinds = {_CHAR_FORMAT: CharTokenizer, _BPE_FORMAT: BPETokenizer}
    if fmt not in kinds:
        raise TokenizerFileError(f"{path} has format {fmt!r}; the course's tokenizer files have {sorted(kinds)}.")
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
    "text_to_bytes",
    "train_bpe",
    "train_bpe_naive",
    "word_counts",
]
