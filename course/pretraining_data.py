"""A small pretraining-data pipeline for local text (chapter 10, "The LLM landscape").

Web-scale corpora are not used as they are crawled. They are cleaned first, and the
cleaning steps are simple enough to write by hand:

- `normalize` puts each document into one canonical form (Unicode, line endings,
  spaces), so that copies that differ only in layout compare equal;
- `exact_duplicates` drops documents whose normalized text was seen before (SHA-256);
- `near_duplicates` finds documents that share most of their word 5-grams
  ("shingles"). A `MinHasher` turns each shingle set into a short signature whose
  entries agree with the probability of the Jaccard similarity, and LSH banding
  (`candidate_pairs`) compares only documents that agree on a whole band, instead
  of all pairs. `near_duplicates_brute_force` is the exact reference it is checked against;
- the quality filters are small rules from the Gopher and C4 papers (word count,
  mean word length, symbols, repeated lines...), each returning (keep, reason);
- `ngram_overlap` measures how much of a test set appears in the training data.

`run_pipeline` runs normalize -> exact dedup -> near dedup -> quality filter and
reports what each stage removed, and why. Wrong types raise TypeError and wrong
values ValueError; each message says what to do instead.
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import unicodedata
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np
import regex

_WORD = regex.compile(r"\w+")
MERSENNE_P = 2**61 - 1  # the prime of the hash family h(x) = (a*x + b) mod p


def _check_docs(docs: Sequence[str], name: str = "docs") -> list[str]:
    if isinstance(docs, str):
        raise TypeError(f"{name} must be a sequence of strings, not one string; wrap it in a list: [text].")
    docs = list(docs)
    for i, doc in enumerate(docs):
        if not isinstance(doc, str):
            raise TypeError(f"{name}[{i}] must be a str; got {type(doc).__name__}. Decode bytes first.")
    return docs


def _check_count(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a whole number >= 1; got {value!r}.")


def _check_threshold(threshold: float, name: str = "threshold") -> None:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1]; got {threshold!r}.")


def words(text: str) -> list[str]:
    """The lower-cased words of ``text``: runs of letters, digits and underscores (``\\w+``)."""
    return _WORD.findall(text.lower())


# ---------------------------------------------------------------- normalization and exact duplicates

def normalize(text: str) -> str:
    """The canonical form of a document; ``normalize(normalize(t)) == normalize(t)``.

    Unicode NFC composes characters that have two encodings ("é" as one code point or
    as "e" + an accent) into one, without changing what the text says. We do not use
    NFKC: it also rewrites "compatibility" characters ("x²" -> "x2", "ﬁ" -> "fi",
    full-width letters), which loses meaning in mathematics and some scripts. Then:
    "\\r\\n" and "\\r" become "\\n", runs of spaces and tabs become one space, each line
    loses its trailing whitespace, 3 or more newlines become 2 (one blank line), and
    the ends are stripped.
    """
    if not isinstance(text, str):
        raise TypeError(f"normalize takes a str; got {type(text).__name__}.")
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = regex.sub(r"[ \t]+", " ", text)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return regex.sub(r"\n{3,}", "\n\n", text).strip()


def exact_duplicates(docs: Sequence[str]) -> list[int]:
    """Indices of documents whose normalized text equals an earlier one's (the first copy is kept).

    Documents are compared by the SHA-256 hash of their normalized UTF-8 text: one
    dictionary of 32-byte keys instead of every document held twice.
    """
    seen: set[bytes] = set()
    duplicates = []
    for i, doc in enumerate(_check_docs(docs)):
        digest = hashlib.sha256(normalize(doc).encode("utf-8")).digest()
        if digest in seen:
            duplicates.append(i)
        seen.add(digest)
    return duplicates


# ---------------------------------------------------------------- shingles, Jaccard and MinHash

def shingles(text: str, n: int = 5) -> set[str]:
    """The set of word n-grams of ``text`` (lower-cased ``\\w+`` words joined by one space).

    A text with fewer than ``n`` words (but at least one) is a single shingle: all its
    words. A text without words has no shingles: the empty set.
    """
    _check_count(n, "n")
    w = words(text)
    if len(w) < n:
        return {" ".join(w)} if w else set()
    return {" ".join(w[i:i + n]) for i in range(len(w) - n + 1)}


def jaccard(a: set, b: set) -> float:
    """|a ∩ b| / |a ∪ b|. Two empty sets are identical, so their Jaccard similarity is 1.0."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def _stable_hash(shingle: str) -> int:
    """A 64-bit hash that is the same in every process (Python's ``hash`` of a str is not), reduced mod p."""
    return int.from_bytes(hashlib.blake2b(shingle.encode("utf-8"), digest_size=8).digest(), "little") % MERSENNE_P


def _fold(v: np.ndarray) -> np.ndarray:
    """A uint64 v ≡ (v mod 2**61) + (v // 2**61) (mod p), because 2**61 = p + 1. The result is < 2**61 + 8."""
    return (v & np.uint64(MERSENNE_P)) + (v >> np.uint64(61))


def _mod_p(v: np.ndarray) -> np.ndarray:
    """v mod p, exactly, for any uint64 v: one fold, then subtract p where the result is still >= p."""
    v = _fold(v)
    return np.where(v >= MERSENNE_P, v - np.uint64(MERSENNE_P), v)


def _mul_mod_p(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """a * x mod p exactly, for uint64 a, x < p, although a * x needs up to 122 bits.

    Split both into 32-bit halves, a = ah * 2**32 + al with ah < 2**29. Each partial
    product then fits in 64 bits, and 2**61 ≡ 1 (mod p) brings it below 2**61:
    ah*xh * 2**64 ≡ ah*xh * 8, and mid * 2**32, with mid = mh * 2**29 + ml, ≡ mh + ml * 2**32.
    """
    low32, low29 = np.uint64(2**32 - 1), np.uint64(2**29 - 1)
    ah, al, xh, xl = a >> np.uint64(32), a & low32, x >> np.uint64(32), x & low32
    mid = ah * xl + al * xh  # < 2**62
    total = ((ah * xh) << np.uint64(3)) + (mid >> np.uint64(29)) + ((mid & low29) << np.uint64(32)) + _fold(al * xl)
    return _mod_p(total)  # total < 2**63: nothing overflowed


def estimate(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """The MinHash estimate of the Jaccard similarity: the fraction of equal entries of two signatures.

    Both must come from the same `MinHasher` (same num_perm and seed). Each entry
    agrees with probability J, so the estimate has standard error sqrt(J(1-J)/num_perm).
    """
    sig_a, sig_b = np.asarray(sig_a), np.asarray(sig_b)
    if sig_a.ndim != 1 or sig_a.shape != sig_b.shape:
        raise ValueError(f"signatures must be 1-D and of one length; got shapes {sig_a.shape} and {sig_b.shape}.")
    return float(np.mean(sig_a == sig_b))


class MinHasher:
    """``num_perm`` hash functions h_k(x) = (a_k * x + b_k) mod p, p = 2**61 - 1, a_k and b_k drawn from ``seed``.

    x is a stable 64-bit hash (BLAKE2b) of a shingle, reduced mod p. The signature
    of a set keeps, for each h_k, the smallest value over the set; two sets have the
    same minimum with probability about their Jaccard similarity. The arithmetic is
    exact (see `_mul_mod_p`): letting a * x wrap around mod 2**64 before taking mod p,
    a common shortcut, would no longer be this hash family.
    """

    estimate = staticmethod(estimate)

    def __init__(self, num_perm: int = 128, seed: int = 0) -> None:
        _check_count(num_perm, "num_perm")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a whole number >= 0; got {seed!r}.")
        self.num_perm, self.seed = num_perm, seed
        rng = np.random.default_rng(seed)
        self.a = rng.integers(1, MERSENNE_P, size=num_perm, dtype=np.uint64)
        self.b = rng.integers(0, MERSENNE_P, size=num_perm, dtype=np.uint64)

    def signature(self, shingle_set: Iterable[str]) -> np.ndarray:
        """The MinHash signature of a set of shingles: a uint64 array of length ``num_perm``."""
        if isinstance(shingle_set, str):
            raise TypeError("signature takes a set of shingles, not a text: pass shingles(text).")
        items = set(shingle_set)
        if not items:
            raise ValueError("an empty set of shingles has no MinHash signature: leave out documents "
                             "without words (near_duplicates does), or give them a placeholder shingle.")
        x = np.array([_stable_hash(s) for s in items], dtype=np.uint64)
        sig = np.full(self.num_perm, MERSENNE_P, dtype=np.uint64)
        for start in range(0, len(x), 2048):  # chunks of shingles bound the memory a long document needs
            h = _mod_p(_mul_mod_p(self.a[:, None], x[None, start:start + 2048]) + self.b[:, None])
            sig = np.minimum(sig, h.min(axis=1))  # h has shape (num_perm, chunk)
        return sig


# ---------------------------------------------------------------- LSH banding and near duplicates

def lsh_probability(s: float | np.ndarray, bands: int, rows: int) -> float | np.ndarray:
    """P(two documents with Jaccard s become a candidate pair) = 1 - (1 - s**rows)**bands: the S-curve.

    One band matches with probability s**rows; a pair is a candidate when at least one
    of the bands matches. The curve is steepest near s = (1/bands)**(1/rows).
    """
    _check_count(bands, "bands")
    _check_count(rows, "rows")
    s_arr = np.asarray(s, dtype=np.float64)
    if not np.all((s_arr >= 0) & (s_arr <= 1)):
        raise ValueError(f"s is a Jaccard similarity and must lie in [0, 1]; got {s!r}.")
    p = 1.0 - (1.0 - s_arr**rows) ** bands
    return float(p) if p.ndim == 0 else p


def choose_bands(num_perm: int, threshold: float, recall: float = 0.9) -> tuple[int, int]:
    """(bands, rows) with bands * rows = num_perm: the most rows (the fewest spurious candidates)
    for which a pair exactly at ``threshold`` is still a candidate with probability >= ``recall``.

    For num_perm = 128 and threshold = 0.8 this is (16, 8): P = 0.95 at J = 0.8.
    """
    _check_count(num_perm, "num_perm")
    _check_threshold(threshold)
    _check_threshold(recall, "recall")
    for rows in sorted((r for r in range(1, num_perm + 1) if num_perm % r == 0), reverse=True):
        if lsh_probability(threshold, num_perm // rows, rows) >= recall:
            return num_perm // rows, rows
    return num_perm, 1


def candidate_pairs(signatures: Sequence[np.ndarray], bands: int, rows: int) -> set[tuple[int, int]]:
    """Pairs (i, j), i < j, of signatures that agree on all ``rows`` entries of at least one of ``bands`` bands."""
    _check_count(bands, "bands")
    _check_count(rows, "rows")
    sigs = [np.asarray(s) for s in signatures]
    for i, s in enumerate(sigs):
        if s.ndim != 1 or len(s) != bands * rows:
            raise ValueError(f"bands * rows = {bands} * {rows} = {bands * rows} must equal the signature length; "
                             f"signature {i} has shape {s.shape}. Choose a factorisation of num_perm (choose_bands).")
    pairs: set[tuple[int, int]] = set()
    for band in range(bands):
        buckets: dict[bytes, list[int]] = {}
        for i, s in enumerate(sigs):
            buckets.setdefault(s[band * rows:(band + 1) * rows].tobytes(), []).append(i)
        for members in buckets.values():
            pairs.update(itertools.combinations(members, 2))
    return pairs


def _bands_rows(num_perm: int, threshold: float, bands: int | None, rows: int | None) -> tuple[int, int]:
    if bands is None and rows is None:
        return choose_bands(num_perm, threshold)
    if bands is None or rows is None or bands * rows != num_perm:
        raise ValueError(f"bands * rows must equal num_perm = {num_perm}; got bands={bands!r}, rows={rows!r}. "
                         "Give both, or neither and choose_bands picks them for the threshold.")
    return bands, rows


def near_duplicates(docs: Sequence[str], threshold: float = 0.8, num_perm: int = 128, bands: int | None = None,
                    rows: int | None = None, seed: int = 0, n: int = 5) -> list[tuple[int, int, float]]:
    """Pairs (i, j, estimated Jaccard), i < j, of documents whose n-gram shingle sets are similar.

    LSH banding proposes candidates; each is kept when its MinHash estimate is >= threshold.
    Without ``bands`` and ``rows``, `choose_bands` picks them for the threshold: for 128
    permutations and 0.8, 16 bands of 8 rows, which make a pair a candidate with
    probability 0.95 at J = 0.8, 0.9999 at J = 0.9 and 0.06 at J = 0.5. Documents
    without words have no shingles and take no part (exact dedup and the filters handle them).
    """
    docs = _check_docs(docs)
    _check_threshold(threshold)
    bands, rows = _bands_rows(num_perm, threshold, bands, rows)
    hasher = MinHasher(num_perm, seed)
    sets = [shingles(doc, n) for doc in docs]
    index = [i for i, s in enumerate(sets) if s]
    sigs = [hasher.signature(sets[i]) for i in index]
    found = []
    for a, b in candidate_pairs(sigs, bands, rows):
        similarity = estimate(sigs[a], sigs[b])
        if similarity >= threshold:
            found.append((index[a], index[b], similarity))
    return sorted(found)


def near_duplicates_brute_force(docs: Sequence[str], threshold: float = 0.8,
                                n: int = 5) -> list[tuple[int, int, float]]:
    """The exact reference: Jaccard similarity of every pair (N² / 2 pairs; fine for a few thousand documents)."""
    docs = _check_docs(docs)
    _check_threshold(threshold)
    sets = [shingles(doc, n) for doc in docs]
    index = [i for i, s in enumerate(sets) if s]  # as in near_duplicates
    pairs = ((i, j, jaccard(sets[i], sets[j])) for i, j in itertools.combinations(index, 2))
    return [p for p in pairs if p[2] >= threshold]


# ---------------------------------------------------------------- quality filters

def word_count_filter(doc: str, min_words: int = 50, max_words: int = 100_000) -> tuple[bool, str]:
    """Gopher: keep documents with 50 to 100,000 words."""
    count = len(words(doc))
    return min_words <= count <= max_words, f"{count} words (allowed {min_words} to {max_words})"


def mean_word_length_filter(doc: str, min_mean_word_length: float = 3.0,
                            max_mean_word_length: float = 10.0) -> tuple[bool, str]:
    """Gopher: keep documents whose mean word length is between 3 and 10 characters."""
    w = words(doc)
    mean = sum(map(len, w)) / len(w) if w else 0.0
    ok = min_mean_word_length <= mean <= max_mean_word_length
    return ok, f"mean word length {mean:.2f} (allowed {min_mean_word_length} to {max_mean_word_length})"


def alphabetic_filter(doc: str, min_alpha_fraction: float = 0.8) -> tuple[bool, str]:
    """Gopher: keep documents where at least 80% of words contain an alphabetic character.

    Here words are whitespace-separated tokens, so "1,234", "|" and "---" count as words without letters.
    """
    tokens = doc.split()
    fraction = sum(any(c.isalpha() for c in t) for t in tokens) / len(tokens) if tokens else 0.0
    return fraction >= min_alpha_fraction, f"{fraction:.0%} of words have a letter (needs {min_alpha_fraction:.0%})"


def _lines(doc: str) -> list[str]:
    return [line.strip() for line in doc.split("\n") if line.strip()]


def terminal_punctuation_filter(doc: str, min_punctuation_fraction: float = 0.12) -> tuple[bool, str]:
    """C4 keeps only lines ending in terminal punctuation (. ! ? or a closing quote); as a
    document-level rule (FineWeb's): keep documents where more than 12% of lines do."""
    lines = _lines(doc)
    ending = sum(line.endswith((".", "!", "?", '"', "'", "”", "’", "…")) for line in lines)
    fraction = ending / len(lines) if lines else 0.0
    ok = fraction > min_punctuation_fraction
    return ok, f"{fraction:.0%} of lines end in punctuation (needs more than {min_punctuation_fraction:.0%})"


def duplicate_lines_filter(doc: str, max_duplicate_line_fraction: float = 0.3) -> tuple[bool, str]:
    """Gopher: remove documents where more than 30% of the (non-empty) lines repeat an earlier line."""
    lines = _lines(doc)
    fraction = (len(lines) - len(set(lines))) / len(lines) if lines else 0.0
    ok = fraction <= max_duplicate_line_fraction
    return ok, f"{fraction:.0%} of lines are repeats (allowed {max_duplicate_line_fraction:.0%})"


def symbol_ratio_filter(doc: str, max_symbol_ratio: float = 0.1) -> tuple[bool, str]:
    """Gopher: remove documents with more than 0.1 hash symbols or ellipses ("..." or "…") per word."""
    count = max(len(words(doc)), 1)
    ratio = max(doc.count("#"), doc.count("...") + doc.count("…")) / count
    return ratio <= max_symbol_ratio, f"{ratio:.2f} '#' or '...' per word (allowed {max_symbol_ratio})"


QUALITY_FILTERS: tuple[Callable[..., tuple[bool, str]], ...] = (
    word_count_filter, mean_word_length_filter, alphabetic_filter,
    terminal_punctuation_filter, duplicate_lines_filter, symbol_ratio_filter)


def _check_thresholds(thresholds: dict[str, float]) -> None:
    names = {p for f in QUALITY_FILTERS for p in list(inspect.signature(f).parameters)[1:]}
    unknown = set(thresholds) - names
    if unknown:
        raise ValueError(f"unknown thresholds {sorted(unknown)}; the filters take {sorted(names)}.")


def quality_filter(doc: str, **thresholds: float) -> tuple[bool, list[str]]:
    """Apply every filter of `QUALITY_FILTERS`: (kept, the reasons of the filters that failed).

    Thresholds are the filters' keyword arguments, e.g. ``quality_filter(doc, min_words=20)``.
    """
    if not isinstance(doc, str):
        raise TypeError(f"quality_filter takes a str; got {type(doc).__name__}.")
    _check_thresholds(thresholds)
    reasons = []
    for f in QUALITY_FILTERS:
        keep, reason = f(doc, **{k: v for k, v in thresholds.items() if k in inspect.signature(f).parameters})
        if not keep:
            reasons.append(reason)
    return not reasons, reasons


# ---------------------------------------------------------------- contamination

def ngram_overlap(train_docs: Sequence[str], test_docs: Sequence[str], n: int = 13) -> list[float]:
    """For each test document, the fraction of its word n-grams (at every position) found in the training docs.

    The GPT-3 paper (Brown et al., 2020) measured contamination with 13-grams. Words are
    lower-cased ``\\w+``, so case and punctuation are ignored. A test document with fewer
    than ``n`` words has no n-grams and gets 0.0: short texts need a smaller n.
    """
    _check_count(n, "n")
    train = set()
    for doc in _check_docs(train_docs, "train_docs"):
        w = words(doc)
        train.update(" ".join(w[i:i + n]) for i in range(len(w) - n + 1))
    overlap = []
    for doc in _check_docs(test_docs, "test_docs"):
        w = words(doc)
        grams = [" ".join(w[i:i + n]) for i in range(len(w) - n + 1)]
        overlap.append(sum(g in train for g in grams) / len(grams) if grams else 0.0)
    return overlap


# ---------------------------------------------------------------- the pipeline

@dataclass(frozen=True)
class StageCount:
    stage: str
    documents: int
    words: int


@dataclass
class PipelineReport:
    """What `run_pipeline` kept, and what it removed at which stage and why (indices into its input)."""

    stages: list[StageCount]
    removed: dict[int, tuple[str, str]] = field(default_factory=dict)  # index -> (stage, reason)
    kept: list[int] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)  # the kept documents, normalized

    def describe(self) -> str:
        lines = [f"{'stage':<12} {'documents':>9} {'words':>9} {'removed':>8}"]
        previous = None
        for s in self.stages:
            removed = "" if previous is None else str(previous.documents - s.documents)
            lines.append(f"{s.stage:<12} {s.documents:>9,} {s.words:>9,} {removed:>8}")
            previous = s
        return "\n".join(lines)


def run_pipeline(docs: Sequence[str], threshold: float = 0.8, num_perm: int = 128, bands: int | None = None,
                 rows: int | None = None, seed: int = 0, n: int = 5, **quality_thresholds: float) -> PipelineReport:
    """normalize -> exact dedup -> near dedup -> quality filter, counting documents and words after each stage.

    Of each group of near duplicates the earliest document is kept; a document is removed
    when it is a near duplicate of one that was kept.
    """
    _check_thresholds(quality_thresholds)
    docs = [normalize(d) for d in _check_docs(docs)]
    removed: dict[int, tuple[str, str]] = {}
    alive = list(range(len(docs)))
    report = PipelineReport(stages=[])

    def count(stage: str) -> None:
        report.stages.append(StageCount(stage, len(alive), sum(len(words(docs[i])) for i in alive)))

    count("normalize")
    first: dict[str, int] = {}
    for i, doc in enumerate(docs):
        first.setdefault(doc, i)  # the documents are normalized already
    for i in exact_duplicates(docs):
        removed[i] = ("exact dedup", f"exact duplicate of document {first[docs[i]]}")
    alive = [i for i in alive if i not in removed]
    count("exact dedup")
    for a, b, similarity in near_duplicates([docs[i] for i in alive], threshold, num_perm, bands, rows, seed, n):
        if alive[a] not in removed and alive[b] not in removed:
            removed[alive[b]] = ("near dedup", f"near duplicate of document {alive[a]} (Jaccard ~ {similarity:.2f})")
    alive = [i for i in alive if i not in removed]
    count("near dedup")
    for i in alive:
        keep, reasons = quality_filter(docs[i], **quality_thresholds)
        if not keep:
            removed[i] = ("quality", "; ".join(reasons))
    alive = [i for i in alive if i not in removed]
    count("quality")
    report.removed, report.kept, report.documents = removed, alive, [docs[i] for i in alive]
    return report


__all__ = [
    "MERSENNE_P", "MinHasher", "PipelineReport", "QUALITY_FILTERS", "StageCount", "alphabetic_filter",
    "candidate_pairs", "choose_bands", "duplicate_lines_filter", "estimate", "exact_duplicates", "jaccard",
    "lsh_probability", "mean_word_length_filter", "ngram_overlap", "near_duplicates", "near_duplicates_brute_force",
    "normalize", "quality_filter", "run_pipeline", "shingles", "symbol_ratio_filter", "terminal_punctuation_filter",
    "word_count_filter", "words",
]
