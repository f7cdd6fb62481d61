"""course.data: lookup order, checksums, atomic downloads, offline fallback; no network used."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
import torch

from course import data
from course.data import CorpusError, download, tinyshakespeare, train_val_split, verify_file

REAL = None
for candidate in [Path(__import__("os").environ.get("COURSE_DATA_DIR", "/nonexistent")) / "tinyshakespeare.txt"]:
    if candidate.is_file():
        REAL = candidate.read_bytes()

needs_real = pytest.mark.skipif(REAL is None, reason="needs COURSE_DATA_DIR with tinyshakespeare.txt")


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No COURSE_DATA_DIR, an empty cache, and any download attempt is an error."""
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    monkeypatch.delenv("COURSE_STRICT_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def no_network(*args, **kwargs):
        raise OSError("network disabled in tests")

    monkeypatch.setattr(data.urllib.request, "urlopen", no_network)
    monkeypatch.setattr(data, "download", _download_with(no_network))
    return tmp_path


def _download_with(opener):
    def fake_download(url, dest, sha256, size=None, **kwargs):
        return download(url, dest, sha256, size, opener=opener)

    return fake_download


def _serve(payload: bytes, fail_after: int | None = None):
    """An opener that returns ``payload``, optionally breaking off after ``fail_after`` bytes."""

    class Response:
        def __init__(self):
            self.buf = io.BytesIO(payload)
            self.sent = 0

        def read(self, n):
            if fail_after is not None and self.sent >= fail_after:
                raise ConnectionResetError("connection reset by peer (simulated)")
            chunk = self.buf.read(n if fail_after is None else min(n, fail_after - self.sent or n))
            self.sent += len(chunk)
            return chunk

        def close(self):
            pass

    return lambda url, timeout=None: Response()


@needs_real
def test_data_dir_copy_is_used(isolated, monkeypatch):
    folder = isolated / "data"
    folder.mkdir()
    (folder / "tinyshakespeare.txt").write_bytes(REAL)
    monkeypatch.setenv("COURSE_DATA_DIR", str(folder))
    corpus = tinyshakespeare()
    assert corpus.name == "tinyshakespeare" and not corpus.is_fallback
    assert len(corpus.text) == 1_115_394 and corpus.text.startswith("First Citizen:")
    assert corpus.source == str(folder / "tinyshakespeare.txt")


@needs_real
def test_cache_hit_needs_no_download(isolated):
    cached = data.cache_dir() / "tinyshakespeare.txt"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(REAL)
    corpus = tinyshakespeare()  # downloads raise in this fixture: a cache hit must not try
    assert corpus.source == str(cached) and not corpus.is_fallback


@needs_real
def test_download_into_cache_then_cache_hit(isolated, monkeypatch):
    monkeypatch.setattr(data, "download", _download_with(_serve(REAL)))
    first = tinyshakespeare()
    cached = data.cache_dir() / "tinyshakespeare.txt"
    assert first.source == str(cached) and cached.read_bytes() == REAL
    monkeypatch.setattr(data, "download", _download_with(_serve(b"")))  # would fail if called
    assert tinyshakespeare().source == str(cached)


@needs_real
def test_corrupted_copy_is_reported_and_never_used(isolated, monkeypatch):
    folder = isolated / "data"
    folder.mkdir()
    corrupted = bytearray(REAL)
    corrupted[1000] ^= 0x20  # one flipped bit, same size
    (folder / "tinyshakespeare.txt").write_bytes(bytes(corrupted))
    monkeypatch.setenv("COURSE_DATA_DIR", str(folder))
    with pytest.warns(UserWarning, match="corrupted"):
        corpus = tinyshakespeare(download_ok=False)
    assert corpus.is_fallback  # the bad copy was not used
    with pytest.raises(CorpusError, match="not available"), pytest.warns(UserWarning):
        tinyshakespeare(download_ok=False, fallback=False)


@needs_real
def test_truncated_copy_is_reported(isolated):
    path = isolated / "short.txt"
    path.write_bytes(REAL[:500_000])
    with pytest.raises(CorpusError, match="truncated: 500,000 bytes, expected 1,115,394"):
        verify_file(path, data.TINYSHAKESPEARE_SHA256, data.TINYSHAKESPEARE_BYTES)


def test_checksum_mismatch_in_download_leaves_nothing(isolated):
    dest = isolated / "out" / "file.txt"
    payload = b"not the real corpus\n" * 100
    with pytest.raises(CorpusError, match="corrupted"):
        download("http://example.invalid/x", dest, "0" * 64, None, opener=_serve(payload))
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == [], "a temporary file was left behind"


def test_interrupted_download_keeps_the_old_file(isolated):
    dest = isolated / "file.txt"
    dest.write_bytes(b"previous good copy")
    payload = b"x" * 300_000
    sha = hashlib.sha256(payload).hexdigest()
    with pytest.raises(ConnectionResetError):
        download("http://example.invalid/x", dest, sha, len(payload), opener=_serve(payload, fail_after=100_000))
    assert dest.read_bytes() == b"previous good copy"
    assert [p.name for p in isolated.iterdir()] == ["file.txt"], "a half-written file was left behind"
    download("http://example.invalid/x", dest, sha, len(payload), opener=_serve(payload))
    assert dest.read_bytes() == payload


def test_offline_without_copy_falls_back_with_notice(isolated, capsys):
    corpus = tinyshakespeare()
    assert corpus.is_fallback and corpus.name == "pydoc-topics"
    assert len(corpus.text) > 300_000
    err = capsys.readouterr().err
    assert "NOTICE: Tiny Shakespeare is not available" in err and "download" in err
    assert corpus.text == tinyshakespeare().text, "the fallback must be deterministic"


def test_offline_env_var_skips_download(isolated, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    monkeypatch.setattr(data, "download", lambda *a, **k: pytest.fail("download attempted while offline"))
    assert tinyshakespeare().is_fallback
    assert "downloads are off" in capsys.readouterr().err


def test_strict_mode_raises_instead_of_falling_back(isolated, monkeypatch):
    monkeypatch.setenv("COURSE_STRICT_DATA", "1")
    with pytest.raises(CorpusError, match="Tiny Shakespeare is not available.*download"):
        tinyshakespeare()


@pytest.mark.parametrize("seq", ["abcdefghij", list(range(10)), np.arange(10), torch.arange(10)], ids=["str", "list", "numpy", "torch"])
def test_train_val_split_is_contiguous_and_complete(seq):
    train, val = train_val_split(seq, 0.1)
    assert len(train) == 9 and len(val) == 1
    joined = list(train) + list(val)
    assert [int(x) if not isinstance(x, str) else x for x in joined] == [
        int(x) if not isinstance(x, str) else x for x in seq
    ]


def test_train_val_split_bad_input():
    with pytest.raises(ValueError, match="between 0 and 1"):
        train_val_split("abc", 1.5)
    with pytest.raises(ValueError, match="at least 2"):
        train_val_split("a", 0.1)


def test_configured_corpus_copy_is_valid():
    """The copy the test run uses (COURSE_DATA_DIR) must pass its checksum, or every chapter's numbers drift."""
    import os

    folder = os.environ.get("COURSE_DATA_DIR")
    if not folder:
        pytest.skip("COURSE_DATA_DIR is not set")
    verify_file(Path(folder) / "tinyshakespeare.txt", data.TINYSHAKESPEARE_SHA256, data.TINYSHAKESPEARE_BYTES)
