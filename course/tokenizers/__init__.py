"""Tokenizers (chapter 01): characters, and byte-level BPE exact against GPT-2.

* `CharTokenizer`: one id per character (later chapters use it on Tiny Shakespeare).
* `BPETokenizer`: byte-level BPE; `BPETokenizer.train` learns merges,
  `BPETokenizer.from_gpt2_files` loads GPT-2's, `save` / `load` use a readable JSON file.
* `count_pairs`, `merge_pair`, `train_bpe`, `train_bpe_naive`: the training steps.
* `GPT2_PATTERN`, `pretokenize`: GPT-2's pre-tokenization.
"""

from .bpe import BPETrainingResult, count_pairs, merge_pair, train_bpe, train_bpe_naive, word_counts
from .char import CharTokenizer
from .files import TokenizerFileError, bytes_to_text, gpt2_file_paths, text_to_bytes
from .pretokenize import GPT2_PATTERN, SpecialSplitter, pretokenize
from .tokenizer import BPETokenizer

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
    "merge_pair",
    "pretokenize",
    "text_to_bytes",
    "train_bpe",
    "train_bpe_naive",
    "word_counts",
]
