"""Corpora for the course (chapter 00, used by every later chapter).

`tinyshakespeare()` returns the Tiny Shakespeare corpus (about 1.1 MB of plays),
looked up in this order:

1. ``$COURSE_DATA_DIR/tinyshakespeare.txt`` (a folder you point at: CI does);
2. the user cache, ``$XDG_CACHE_HOME/llm-course`` or ``~/.cache/llm-course``;
3. a download from the canonical URL into the cache.

Every file is checked against its SHA-256 before it is used. A corrupted or
truncated file is reported (with what was expected and what was found) and never
used. A download goes to a temporary file in the target folder and is renamed
into place only once its checksum is right, so an interrupted download never
leaves a half file behind.

Offline, with no valid copy anywhere, the course still runs: `tinyshakespeare()`
prints a notice and returns a fallback corpus built from the English reference
text that ships inside Python itself (``pydoc_data.topics``). Numbers in the
chapters then differ from the book's. Set ``COURSE_STRICT_DATA=1`` (CI does) to
turn that fallback into an error.

No corpus is ever committed into the project: corpora are downloaded or come
from an installed package.

`corpus_text(tokenizer)` is the corpus in a model's alphabet (the fallback corpus
mapped onto the shipped character model's 65 characters), and
`validation_text(tokenizer)` its last ``VAL_FRACTION``: the text the shipped
models are measured on (`course.evaluate.validation_loss`).
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from .tokenizers import CharTokenizer

TINYSHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)
TINYSHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
TINYSHAKESPEARE_BYTES = 1_115_394
TINYSHAKESPEARE_FILENAME = "tinyshakespeare.txt"

ENV_DATA_DIR = "COURSE_DATA_DIR"
ENV_OFFLINE = "COURSE_OFFLINE"
ENV_STRICT = "COURSE_STRICT_DATA"


class CorpusError(RuntimeError):
    """A corpus file is missing, corrupted or truncated, or could not be downloaded."""


@dataclass(frozen=True)
class Corpus:
    """A text corpus and where it came from."""

    name: str
    text: str
    source: str  # a file path, or a description of where the text came from
    is_fallback: bool = False

    def __len__(self) -> int:
        return len(self.text)

    def __repr__(self) -> str:  # keep notebook output short
        kind = "fallback " if self.is_fallback else ""
        return f"Corpus({self.name!r}, {len(self.text):,} characters, {kind}source={self.source!r})"


def cache_dir() -> Path:
    """The user cache folder for course data (not created here)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "llm-course"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: Path, sha256: str, size: int | None = None) -> None:
    """Raise `CorpusError` unless ``path`` has the expected size and SHA-256."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path} does not exist.")
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        what = "truncated" if actual_size < size else "larger than expected"
        raise CorpusError(
            f"{path} is {what}: {actual_size:,} bytes, expected {size:,}. "
            "Delete it and let the course download it again."
        )
    actual = sha256_of(path)
    if actual != sha256:
        raise CorpusError(
            f"{path} is corrupted: its SHA-256 is {actual[:12]}..., expected {sha256[:12]}.... "
            "Delete it and let the course download it again."
        )


def download(
    url: str,
    dest: Path,
    sha256: str,
    size: int | None = None,
    *,
    timeout: float = 30.0,
    opener: Callable[..., object] = urllib.request.urlopen,
) -> Path:
    """Download ``url`` to ``dest`` atomically, verifying its SHA-256.

    The bytes go to a temporary file beside ``dest``; only a complete file with
    the right checksum is renamed to ``dest``. On any failure the temporary file
    is removed and ``dest`` is left as it was.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            response = opener(url, timeout=timeout)
            try:
                for chunk in iter(lambda: response.read(1 << 16), b""):  # type: ignore[attr-defined]
                    out.write(chunk)
            finally:
                close = getattr(response, "close", None)
                if close is not None:
                    close()
        verify_file(tmp, sha256, size)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def _read_verified(path: Path) -> str | None:
    """The text of ``path`` if it is a valid Tiny Shakespeare copy; else warn and return None."""
    if not path.is_file():
        return None
    try:
        verify_file(path, TINYSHAKESPEARE_SHA256, TINYSHAKESPEARE_BYTES)
    except CorpusError as err:
        warnings.warn(f"Not using {path}: {err}", stacklevel=3)
        return None
    return path.read_text(encoding="utf-8")


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


_FALLBACK_IN_USE = False


def fallback_in_use() -> bool:
    """True once `tinyshakespeare()` has handed out the fallback corpus in this process.

    Results measured on Tiny Shakespeare (the bands of `course.verify.within`) do not
    apply then, and chapters say so instead of failing.
    """
    return _FALLBACK_IN_USE


def fallback_corpus() -> Corpus:
    """English prose that ships inside Python: the help topics of ``pydoc_data``.

    About 465 KB, identical on every machine with the same Python version.
    """
    from pydoc_data.topics import topics

    text = "\n\n".join(topics[key].strip() for key in sorted(topics)) + "\n"
    return Corpus("pydoc-topics", text, "pydoc_data.topics (ships with Python)", is_fallback=True)


def tinyshakespeare(*, download_ok: bool | None = None, fallback: bool | None = None) -> Corpus:
    """Return Tiny Shakespeare, from the first valid copy found (see the module docstring).

    ``download_ok`` defaults to True unless ``COURSE_OFFLINE`` is set; ``fallback``
    defaults to True unless ``COURSE_STRICT_DATA`` is set.
    """
    if download_ok is None:
        download_ok = not _truthy(ENV_OFFLINE)
    if fallback is None:
        fallback = not _truthy(ENV_STRICT)

    candidates: list[Path] = []
    if os.environ.get(ENV_DATA_DIR):
        candidates.append(Path(os.environ[ENV_DATA_DIR]).expanduser() / TINYSHAKESPEARE_FILENAME)
    cached = cache_dir() / TINYSHAKESPEARE_FILENAME
    candidates.append(cached)

    for path in candidates:
        text = _read_verified(path)
        if text is not None:
            return Corpus("tinyshakespeare", text, str(path))

    problem = "no valid copy in " + " or ".join(str(p.parent) for p in candidates)
    if download_ok:
        try:
            download(TINYSHAKESPEARE_URL, cached, TINYSHAKESPEARE_SHA256, TINYSHAKESPEARE_BYTES)
            return Corpus("tinyshakespeare", cached.read_text(encoding="utf-8"), str(cached))
        except (OSError, CorpusError) as err:  # URLError is an OSError
            problem += f"; the download from {TINYSHAKESPEARE_URL} failed ({err})"
    else:
        problem += f"; downloads are off ({ENV_OFFLINE} is set)"

    advice = (
        f"To get the real corpus, download {TINYSHAKESPEARE_URL} and put it at {cached} "
        f"(or in a folder named by ${ENV_DATA_DIR})."
    )
    if not fallback:
        raise CorpusError(f"Tiny Shakespeare is not available: {problem}. {advice}")
    corpus = fallback_corpus()
    global _FALLBACK_IN_USE
    _FALLBACK_IN_USE = True
    print(
        f"NOTICE: Tiny Shakespeare is not available ({problem}).\n"
        f"Using the fallback corpus {corpus.name!r} ({len(corpus.text):,} characters) instead: "
        f"every chapter still runs, but its numbers will differ from the book's. {advice}",
        file=sys.stderr,
    )
    return corpus


Seq = TypeVar("Seq", bound=Sequence)


def train_val_split(data: Seq, val_fraction: float = 0.1) -> tuple[Seq, Seq]:
    """Split a sequence (text, list, array or tensor) into a head for training and a tail for validation.

    Deterministic and contiguous: the first ``1 - val_fraction`` of the data trains,
    the rest validates (as nanoGPT does), so no validation text leaks into training
    through overlapping windows.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}.")
    n = len(data)
    if n < 2:
        raise ValueError(f"Cannot split a sequence of length {n}: need at least 2 items.")
    cut = min(max(int(round(n * (1.0 - val_fraction))), 1), n - 1)
    return data[:cut], data[cut:]  # type: ignore[return-value]


# ============================================================================ the text the shipped models are measured on

VAL_FRACTION = 0.1  # chapter 05 trains on the first 90% of the corpus and validates on the rest


def corpus_text(tokenizer: Any, *, replacement: str = " ") -> str:
    """The training corpus (Tiny Shakespeare) in the character model's alphabet.

    With the real corpus this is the text itself. With the offline fallback corpus
    (`fallback_corpus`), characters outside the model's 65-character alphabet are
    replaced by ``replacement`` and a notice says how many, so every chapter that
    uses the model still runs (with other numbers than the book's). A byte-level
    BPE tokenizer can encode any text: it gets the corpus unchanged.
    """
    corpus = tinyshakespeare()
    text = corpus.text
    if corpus.is_fallback and isinstance(tokenizer, CharTokenizer):
        if replacement not in tokenizer.stoi:
            raise ValueError(f"the replacement {replacement!r} is itself not in the model's vocabulary.")
        missing = sum(c not in tokenizer.stoi for c in text)
        text = "".join(c if c in tokenizer.stoi else replacement for c in text)
        print(f"NOTICE: the fallback corpus is mapped to the model's alphabet: {missing:,} of its "
              f"{len(text):,} characters are outside it and became {replacement!r}.")
    return text


def validation_text(tokenizer: Any) -> str:
    """The validation split the model was measured on: the last 10% of `corpus_text`."""
    return train_val_split(corpus_text(tokenizer), VAL_FRACTION)[1]
