"""course.token_data: token files whose integer type is stored beside them (issue 15, item 9)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from course.token_data import Dataset, TokenData, check_ids, dtype_file, load_token_files, token_dtype, write_token_files
from course.tokenizers import CharTokenizer


def test_token_dtype_is_decided_by_the_vocabulary():
    assert token_dtype(65) == np.uint16 and token_dtype(2**16) == np.uint16  # ids 0..65535 fit
    assert token_dtype(2**16 + 1) == np.uint32 and token_dtype(100_000) == np.uint32
    with pytest.raises(ValueError, match="vocab_size"):
        token_dtype(0)


def test_ids_of_65536_and_above_round_trip(tmp_path):
    ids = np.array([0, 5, 65_535, 65_536, 70_000, 99_999], dtype=np.int64)
    path = TokenData(ids).to_bin(tmp_path / "train.bin")
    assert json.loads(dtype_file(path).read_text())["dtype"] == "uint32"
    assert np.array_equal(np.asarray(TokenData.from_bin(path).tokens), ids)  # the type is read, not guessed


def test_a_large_vocabulary_with_small_ids_reads_back_right(tmp_path):
    """Validation ids all below 65,536 but a vocabulary above it: both files must use the one type the vocabulary needs."""
    chars = [chr(c) for c in range(0x100, 0x100 + 70_100) if not 0xD800 <= c <= 0xDFFF]
    tok = CharTokenizer(chars)
    assert tok.vocab_size > 2**16
    train = np.array([1, 2, 3, 68_000, 67_999] * 10, dtype=np.int64)
    val = np.array([4, 5, 6, 7] * 10, dtype=np.int64)  # every id < 65,536
    write_token_files(Dataset(TokenData(train), TokenData(val), tok, "big"), tmp_path)
    back = load_token_files(tmp_path)
    assert np.array_equal(np.asarray(back.train.tokens), train)
    assert np.array_equal(np.asarray(back.val.tokens), val)
    assert back.val.tokens.dtype == back.train.tokens.dtype == np.uint32


def test_files_without_a_stored_type_need_one_and_damage_is_clear(tmp_path):
    raw = tmp_path / "nanogpt.bin"
    np.arange(10, dtype=np.uint16).tofile(raw)
    with pytest.raises(ValueError, match="pass dtype"):
        TokenData.from_bin(raw)
    assert np.array_equal(np.asarray(TokenData.from_bin(raw, np.uint16).tokens), np.arange(10))
    path = TokenData(np.arange(10)).to_bin(tmp_path / "t.bin")
    with pytest.raises(ValueError, match="leave dtype out"):
        TokenData.from_bin(path, np.uint32)
    with open(path, "ab") as f:
        f.write(b"\x00")  # a partial id
    with pytest.raises(ValueError, match="truncated"):
        TokenData.from_bin(path)
    with pytest.raises(FileNotFoundError, match="write_token_files"):
        load_token_files(tmp_path / "nothing")
    with pytest.raises(ValueError, match="outside a vocabulary of 5"):
        TokenData(np.arange(10)).to_bin(tmp_path / "u.bin", vocab_size=5)


def test_folders_written_before_the_type_was_stored_still_load(tmp_path):
    tok = CharTokenizer.from_text("abcdef")
    ids = np.array([0, 1, 2, 3, 4, 5] * 5)
    write_token_files(Dataset(TokenData(ids), TokenData(ids[:12]), tok, "old"), tmp_path)
    for name in ("train.bin", "val.bin"):
        dtype_file(tmp_path / name).unlink()  # an older folder: only meta.json's bin_dtype
    back = load_token_files(tmp_path)
    assert np.array_equal(np.asarray(back.train.tokens), ids) and np.array_equal(np.asarray(back.val.tokens), ids[:12])


def test_check_ids_names_the_problem():
    check_ids(torch.tensor([0, 4]), 5)
    with pytest.raises(ValueError, match="token id 5, outside the model's vocabulary"):
        check_ids(torch.tensor([0, 5]), 5, "the data")
    with pytest.raises(ValueError, match="token id -1"):
        check_ids(np.array([-1, 2]), 5)
