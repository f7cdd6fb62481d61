"""Tests of course/pretraining_data.py (chapter 10): normalization, exact and near deduplication
(MinHash and LSH checked against exact Jaccard), quality filters, contamination and the pipeline report."""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course.pretraining_data import (
    MERSENNE_P, QUALITY_FILTERS, MinHasher, alphabetic_filter, candidate_pairs, choose_bands,
    duplicate_lines_filter, estimate, exact_duplicates, jaccard, lsh_probability, mean_word_length_filter,
    near_duplicates, near_duplicates_brute_force, ngram_overlap, normalize, quality_filter, run_pipeline,
    shingles, symbol_ratio_filter, terminal_punctuation_filter, word_count_filter, words,
)

ROOT = Path(__file__).resolve().parents[1]

PARAGRAPH = (
    "A river starts as rain on the hills. The water runs down small streams, which join into larger ones, "
    "and after many miles the river reaches the sea. Along the way it carries sand and stones, cuts valleys "
    "into the rock and leaves rich soil on its banks, which is why so many towns were built beside rivers. "
    "People used them for drinking water, for fishing and for moving goods long before there were roads."
)


def random_corpus(seed: int, count: int, length: int) -> tuple[list[str], list[str]]:
    """(vocabulary, documents): each document is ``length`` random lower-case words and a full stop."""
    rng = np.random.default_rng(seed)
    letters = list("abcdefghijklmnopqrstuvwxyz")
    vocab = sorted({"".join(rng.choice(letters, size=int(rng.integers(3, 9)))) for _ in range(3000)})
    return vocab, [" ".join(rng.choice(vocab, size=length)) + "." for _ in range(count)]


def change_words(doc: str, k: int, seed: int) -> str:
    """``doc`` with k of its words (at random positions) replaced by words it cannot contain."""
    w = doc.rstrip(".").split()
    rng = np.random.default_rng(seed)
    for j, pos in enumerate(rng.choice(len(w), size=k, replace=False)):
        w[pos] = f"changed{j}x"
    return " ".join(w) + "."


def sets_with_jaccard(target: float, size: int, tag: str) -> tuple[set[str], set[str], float]:
    """Two sets of ``size`` shingles whose overlap k gives J = k / (2 size - k) close to ``target``."""
    k = round(2 * size * target / (1 + target))
    a = {f"{tag}-{i}" for i in range(size)}
    b = {f"{tag}-{i}" for i in range(size - k, 2 * size - k)}
    return a, b, jaccard(a, b)


# ---------------------------------------------------------------- normalize and exact duplicates

def test_normalize_unifies_line_endings_spaces_and_blank_lines():
    text = "  Hello,\t\t world!  \r\nSecond   line.\t\rThird\n\n\n\n\nFourth  \n\n"
    assert normalize(text) == "Hello, world!\nSecond line.\nThird\n\nFourth"
    assert "\r" not in normalize("a\r\nb\rc")


def test_normalize_composes_accents_but_keeps_compatibility_characters():
    assert normalize("cafe\u0301") == "caf\u00e9" == normalize("caf\u00e9")  # NFC: one code point
    assert normalize("x\u00b2 \ufb01le") == "x\u00b2 \ufb01le"  # NFKC would give "x2 file"


@settings(max_examples=300, deadline=None, database=None)
@given(st.text(st.one_of(st.sampled_from(list(" \t\r\n\u00a0\u2028\u0301\ufb01e.")), st.characters()), max_size=60))
def test_normalize_is_idempotent(text):
    once = normalize(text)
    assert normalize(once) == once


def test_normalize_rejects_bytes():
    with pytest.raises(TypeError, match="str"):
        normalize(b"bytes")


def test_exact_duplicates_ignore_layout_and_keep_the_first_copy():
    a, b, c = "The first document.\nIt has two lines.", "Another text, caf\u00e9.", "A third one."
    docs = [a, b, "The first  document.  \r\nIt has two lines.\n\n", c, "Another text, cafe\u0301.\t",
            a, "The first document.\nIt has 2 lines."]
    assert exact_duplicates(docs) == [2, 4, 5]
    assert exact_duplicates([]) == [] and exact_duplicates([a, b, c]) == []


@pytest.mark.parametrize("docs, match", [("one string", r"wrap it in a list"), (["ok", 3], r"docs\[1\]")])
def test_exact_duplicates_rejects_wrong_types(docs, match):
    with pytest.raises(TypeError, match=match):
        exact_duplicates(docs)


# ---------------------------------------------------------------- shingles and Jaccard

def test_shingles_are_lower_cased_word_n_grams():
    assert shingles("The cat sat on the MAT, today!") == {
        "the cat sat on the", "cat sat on the mat", "sat on the mat today"}
    assert shingles("Hello, World!") == {"hello world"}, "fewer than n words: the whole text is one shingle"
    assert shingles("... !!! ---") == set()
    assert len(shingles(PARAGRAPH, n=1)) == len(set(words(PARAGRAPH)))
    with pytest.raises(ValueError, match=">= 1"):
        shingles("text", n=0)


def test_jaccard():
    assert jaccard({1, 2, 3}, {2, 3, 4}) == pytest.approx(0.5)
    assert jaccard(set(), set()) == 1.0 and jaccard({1}, set()) == 0.0 and jaccard({1, 2}, {1, 2}) == 1.0


# ---------------------------------------------------------------- MinHash

@pytest.mark.parametrize("num_perm, items", [(64, shingles(PARAGRAPH)), (8, {f"s{i}" for i in range(5000)})])
def test_signature_is_the_minimum_of_the_exact_hash_family(num_perm, items):
    """The vectorised mod-p arithmetic (in chunks of shingles) equals Python's exact integers."""
    hasher = MinHasher(num_perm=num_perm, seed=3)
    xs = [int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little") % MERSENNE_P for s in items]
    expected = [min((int(a) * x + int(b)) % MERSENNE_P for x in xs) for a, b in zip(hasher.a, hasher.b)]
    sig = hasher.signature(items)
    assert sig.dtype == np.uint64 and sig.shape == (num_perm,)
    assert sig.tolist() == expected


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_minhash_estimates_agree_with_exact_jaccard_within_four_standard_errors(seed):
    num_perm = 256
    hasher = MinHasher(num_perm=num_perm, seed=seed)
    for target in (0.1, 0.3, 0.5, 0.7, 0.85, 0.95):
        a, b, j = sets_with_jaccard(target, 300, f"s{seed}t{target}")
        est = hasher.estimate(hasher.signature(a), hasher.signature(b))
        assert abs(est - j) <= 4 * math.sqrt(j * (1 - j) / num_perm), (target, j, est)


def test_minhash_estimate_is_unbiased_over_seeds():
    a, b, j = sets_with_jaccard(0.5, 200, "bias")
    estimates = [estimate(h.signature(a), h.signature(b)) for h in (MinHasher(128, seed) for seed in range(30))]
    assert abs(np.mean(estimates) - j) <= 4 * math.sqrt(j * (1 - j) / 128) / math.sqrt(30)


def test_signatures_are_deterministic_within_a_process():
    items = shingles(PARAGRAPH)
    first = MinHasher(32, seed=7).signature(items)
    np.testing.assert_array_equal(first, MinHasher(32, seed=7).signature(sorted(items, reverse=True)))
    assert not np.array_equal(first, MinHasher(32, seed=8).signature(items))
    assert MinHasher.estimate is estimate and estimate(first, first) == 1.0


_SUBPROCESS = """
import json, sys
from course.pretraining_data import MinHasher, shingles
h = MinHasher(num_perm=32, seed=7)
sigs = [h.signature(shingles(t)).tolist() for t in json.loads(sys.argv[1])]
print(json.dumps({"hash": hash("minhash"), "sigs": sigs}))
"""


def test_signatures_are_the_same_in_processes_with_other_string_hash_seeds():
    texts = [PARAGRAPH, "Hello world", "The cat sat on the mat today"]
    here = [MinHasher(num_perm=32, seed=7).signature(shingles(t)).tolist() for t in texts]
    runs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(ROOT)}
        out = subprocess.run([sys.executable, "-c", _SUBPROCESS, json.dumps(texts)], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=60, check=True)
        runs.append(json.loads(out.stdout))
    assert runs[0]["hash"] != runs[1]["hash"], "the two processes salt Python's hash() differently"
    assert runs[0]["sigs"] == runs[1]["sigs"] == here


def test_minhash_rejects_bad_input():
    hasher = MinHasher(16)
    with pytest.raises(ValueError, match="empty set of shingles"):
        hasher.signature(set())
    with pytest.raises(TypeError, match=r"shingles\(text\)"):
        hasher.signature("a text")
    with pytest.raises(ValueError, match="num_perm must be a whole number >= 1"):
        MinHasher(num_perm=0)
    with pytest.raises(ValueError, match="seed"):
        MinHasher(seed=-1)
    with pytest.raises(ValueError, match="same length|one length"):
        estimate(np.zeros(4, np.uint64), np.zeros(5, np.uint64))


# ---------------------------------------------------------------- LSH

def test_lsh_probability_is_an_increasing_s_curve():
    s = np.linspace(0, 1, 101)
    p = lsh_probability(s, 16, 8)
    assert p[0] == 0.0 and p[-1] == 1.0 and np.all(np.diff(p) >= 0)
    assert lsh_probability(0.8, 16, 8) == pytest.approx(1 - (1 - 0.8**8) ** 16)
    assert lsh_probability(0.5, 16, 8) < 0.1 < 0.9 < lsh_probability(0.8, 16, 8)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        lsh_probability(1.2, 16, 8)


@pytest.mark.parametrize("num_perm, threshold", [(128, 0.8), (128, 0.5), (256, 0.9), (60, 0.7)])
def test_choose_bands_takes_the_most_rows_that_keep_recall_at_the_threshold(num_perm, threshold):
    bands, rows = choose_bands(num_perm, threshold)
    assert bands * rows == num_perm and lsh_probability(threshold, bands, rows) >= 0.9
    more_rows = [r for r in range(rows + 1, num_perm + 1) if num_perm % r == 0]
    assert all(lsh_probability(threshold, num_perm // r, r) < 0.9 for r in more_rows)
    assert choose_bands(128, 0.8) == (16, 8)


def test_candidate_rate_matches_the_s_curve():
    hasher, bands, rows, pairs = MinHasher(64, seed=5), 8, 8, 150
    for target in (0.5, 0.7, 0.85):
        sigs, js = [], []
        for k in range(pairs):
            a, b, j = sets_with_jaccard(target, 60, f"rate{target}-{k}")
            sigs += [hasher.signature(a), hasher.signature(b)]
            js.append(j)
        found = candidate_pairs(sigs, bands, rows)
        rate = np.mean([(2 * k, 2 * k + 1) in found for k in range(pairs)])
        p = lsh_probability(float(np.mean(js)), bands, rows)
        assert abs(rate - p) <= 4 * math.sqrt(p * (1 - p) / pairs) + 0.02, (target, rate, p)


def test_candidate_pairs_bands_and_errors():
    same, other = np.arange(12, dtype=np.uint64), np.arange(100, 112, dtype=np.uint64)
    half = np.concatenate([same[:6], other[6:]])
    assert candidate_pairs([same, other, same.copy()], 3, 4) == {(0, 2)}
    assert candidate_pairs([same, half], 2, 6) == {(0, 1)}, "agreeing on one whole band is enough"
    assert candidate_pairs([same, half], 1, 12) == set()
    with pytest.raises(ValueError, match=r"bands \* rows = 5 \* 2 = 10 must equal the signature length"):
        candidate_pairs([same, other], 5, 2)


# ---------------------------------------------------------------- near duplicates

def test_near_duplicates_find_planted_copies_and_agree_with_brute_force():
    _, docs = random_corpus(seed=11, count=120, length=200)
    planted = {}
    for k, source in enumerate(range(0, 40, 4)):  # 10 close copies: 2 of 200 words changed
        planted[(source, len(docs))] = "close"
        docs.append(change_words(docs[source], 2, seed=k))
    for k, source in enumerate(range(1, 40, 8)):  # 5 distant copies: 40 words changed
        planted[(source, len(docs))] = "far"
        docs.append(change_words(docs[source], 40, seed=100 + k))
    exact = {(i, j): s for i, j, s in near_duplicates_brute_force(docs, threshold=0.3)}
    assert all(exact[p] > 0.85 for p, kind in planted.items() if kind == "close")
    assert all(exact.get(p, 0.0) < 0.5 for p, kind in planted.items() if kind == "far")

    found = near_duplicates(docs, threshold=0.8)
    pairs = {(i, j) for i, j, _ in found}
    assert found == sorted(found) and all(i < j for i, j in pairs)
    assert {p for p, kind in planted.items() if kind == "close"} <= pairs
    assert {p for p, s in exact.items() if s >= 0.9} <= pairs, "every pair well above the threshold is found"
    assert all(exact.get(p, 0.0) >= 0.65 for p in pairs), "no pair well below the threshold is reported"
    assert all(abs(est - exact[(i, j)]) <= 4 * math.sqrt(exact[(i, j)] * (1 - exact[(i, j)]) / 128) + 1e-9
               for i, j, est in found)
    brute = {(i, j) for i, j, _ in near_duplicates_brute_force(docs, threshold=0.8)}
    assert pairs == brute


def test_documents_without_words_take_no_part():
    docs = ["", "...", "one two three four five six", "One two three four five six!"]
    assert near_duplicates_brute_force(docs, 0.8) == [(2, 3, 1.0)]
    assert near_duplicates(docs, 0.8) == [(2, 3, 1.0)]


@pytest.mark.parametrize("kwargs, match", [
    ({"threshold": 1.5}, r"must lie in \[0, 1\]"),
    ({"threshold": -0.1}, r"must lie in \[0, 1\]"),
    ({"bands": 10, "rows": 10}, r"bands \* rows must equal num_perm = 128"),
    ({"bands": 16}, "Give both, or neither"),
    ({"n": 0}, "n must be a whole number >= 1"),
    ({"num_perm": 0}, "num_perm must be a whole number >= 1"),
])
def test_near_duplicates_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        near_duplicates(["a b c d e f", "a b c d e g"], **kwargs)


# ---------------------------------------------------------------- quality filters

@pytest.mark.parametrize("check, bad", [
    (word_count_filter, "Click here to subscribe."),
    (mean_word_length_filter, " ".join("abcdefghij" * 6) + "."),
    (mean_word_length_filter, " ".join(["internationalization"] * 60) + "."),
    (alphabetic_filter, " ".join(["12.50", "|", "34", "---", "total"] * 15) + "."),
    (terminal_punctuation_filter, "Home\nAbout us\nProducts\nContact\nLog in\nSearch\nCart\nHelp"),
    (duplicate_lines_filter, "Buy now!\nBuy now!\nBuy now!\nBuy now!\nOur shop sells fresh bread."),
    (symbol_ratio_filter, "#news #today #ai #llm love this #photo"),
    (symbol_ratio_filter, "wait... what... no... really... fine..."),
])
def test_each_filter_keeps_a_paragraph_and_rejects_its_bad_document(check, bad):
    keep, reason = check(PARAGRAPH)
    assert keep, reason
    keep, reason = check(bad)
    assert not keep and isinstance(reason, str) and reason


def test_quality_filter_applies_every_filter_and_lists_the_failures():
    assert quality_filter(PARAGRAPH) == (True, [])
    keep, reasons = quality_filter("Home\nHome\nHome\n#menu #top")
    assert not keep and len(reasons) >= 3 and any("words" in r for r in reasons)
    short = "Short but perfectly fine text here."
    assert not quality_filter(short)[0]
    assert quality_filter(short, min_words=3) == (True, []), "thresholds reach their filter"
    assert len(QUALITY_FILTERS) == 6
    with pytest.raises(ValueError, match="unknown thresholds"):
        quality_filter(PARAGRAPH, min_word=3)


# ---------------------------------------------------------------- contamination

def test_ngram_overlap_of_copied_unrelated_and_partly_copied_test_documents():
    _, train = random_corpus(seed=3, count=20, length=100)
    copied = train[4].upper().replace(" ", ", ")  # case and punctuation do not hide a copy
    unrelated = " ".join(f"new{k}" for k in range(60))
    partial = " ".join(train[7].split()[:40] + [f"fresh{k}" for k in range(40)])  # 80 words, 68 13-grams
    overlap = ngram_overlap(train, [copied, unrelated, partial, "too short to have a 13-gram"])
    assert overlap[:2] == [1.0, 0.0] and overlap[3] == 0.0
    assert overlap[2] == pytest.approx(28 / 68), "the 28 13-grams inside the copied 40 words"
    assert ngram_overlap(train, ["too short"], n=2) == [0.0]
    with pytest.raises(ValueError, match=">= 1"):
        ngram_overlap(train, [copied], n=0)
    with pytest.raises(TypeError, match="test_docs"):
        ngram_overlap(train, copied)


# ---------------------------------------------------------------- the pipeline

def test_pipeline_report_counts_are_consistent():
    _, docs = random_corpus(seed=21, count=40, length=120)
    docs += [
        docs[3].replace(" ", "  ") + "\r\n\r\n",  # 40: exact duplicate of 3
        change_words(docs[5], 1, seed=0),  # 41: near duplicate of 5
        "Home\nAbout\nContact",  # 42: low quality
        "Home\nAbout\nContact  ",  # 43: exact duplicate of 42
    ]
    report = run_pipeline(docs)
    assert [s.stage for s in report.stages] == ["normalize", "exact dedup", "near dedup", "quality"]
    assert report.removed[40] == ("exact dedup", "exact duplicate of document 3")
    assert report.removed[43] == ("exact dedup", "exact duplicate of document 42")
    assert report.removed[41][0] == "near dedup" and "document 5" in report.removed[41][1]
    assert report.removed[42][0] == "quality" and "words" in report.removed[42][1]
    assert set(report.removed) == {40, 41, 42, 43}

    first = report.stages[0]
    assert first.documents == len(docs) and first.words == sum(len(words(d)) for d in docs)
    for before, after in zip(report.stages, report.stages[1:]):
        gone = [i for i, (stage, _) in report.removed.items() if stage == after.stage]
        assert after.documents == before.documents - len(gone)
        assert after.words == before.words - sum(len(words(docs[i])) for i in gone)
    assert report.kept == [i for i in range(len(docs)) if i not in report.removed]
    assert report.documents == [normalize(docs[i]) for i in report.kept]
    assert near_duplicates(report.documents) == [] and exact_duplicates(report.documents) == []

    table = report.describe().splitlines()
    assert len(table) == 5 and table[0].split() == ["stage", "documents", "words", "removed"]
    assert table[2].split()[-2:] == [f"{report.stages[1].words:,}", "2"]
    assert table[4].split()[:2] == ["quality", str(len(docs) - 4)]


def test_pipeline_passes_quality_thresholds_on():
    _, docs = random_corpus(seed=2, count=5, length=60)
    report = run_pipeline(docs, min_words=100)
    assert report.kept == [] and all(stage == "quality" for stage, _ in report.removed.values())
    with pytest.raises(ValueError, match="unknown thresholds"):
        run_pipeline(docs, min_wrods=10)
