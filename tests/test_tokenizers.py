"""Tests of course.tokenizers (chapter 01): exact agreement with GPT-2's tokenizer (tiktoken),
round trips, streaming, training rules, files and bad input."""

from __future__ import annotations

import json
import os
import tracemalloc
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from course.data import tinyshakespeare
from course.tokenizers import (
    GPT2_PATTERN,
    BPETokenizer,
    CharTokenizer,
    TokenizerFileError,
    bytes_to_text,
    count_pairs,
    gpt2_file_paths,
    merge_pair,
    pretokenize,
    text_to_bytes,
    train_bpe,
    train_bpe_naive,
    word_counts,
)

EOT = "<|endoftext|>"
MIXED = (
    "大规模语言模型（LLM）是人工智能领域的最新发展之一。\n"
    "Emoji: 😀👍🏽🇫🇷 and a family 👨‍👩‍👧; café, naïve, Ångström, ﬁ ligature.\n"
    "Numbers 1234567 and 3.14159, code: def f(x):\n\treturn x**2  # tab\r\n"
    "  leading spaces,   runs   of spaces, trailing   \n\n\nI'll we've they're it's DON'T\n"
    "Ελληνικά, русский, العربية, हिन्दी, 한국어, 日本語のテキスト\u200b\u00a0end"
)


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def shakespeare() -> str:
    corpus = tinyshakespeare(download_ok=False)
    if corpus.is_fallback:
        pytest.skip("Tiny Shakespeare is not available (set COURSE_DATA_DIR)")
    return corpus.text


@pytest.fixture(scope="module")
def gpt2() -> BPETokenizer:
    return BPETokenizer.from_gpt2_files()


@pytest.fixture(scope="module")
def tiktoken_gpt2():
    """The reference: tiktoken built offline from the same two files, with tiktoken's own GPT-2 pattern."""
    tiktoken = pytest.importorskip("tiktoken")
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks

    encoder_json, vocab_bpe = gpt2_file_paths()
    old = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = ""  # read the local files, write no cache
    try:
        ranks = data_gym_to_mergeable_bpe_ranks(str(vocab_bpe), str(encoder_json))
    finally:
        if old is None:
            del os.environ["TIKTOKEN_CACHE_DIR"]
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = old
    from tiktoken_ext.openai_public import r50k_pat_str

    return tiktoken.Encoding("gpt2-local", pat_str=r50k_pat_str, mergeable_ranks=ranks, special_tokens={EOT: 50256})


@pytest.fixture(scope="module")
def small_trained(shakespeare) -> BPETokenizer:
    return BPETokenizer.train(shakespeare[:50_000], 400, special_tokens=[EOT])


# ------------------------------------------------------------------ characters
def test_char_tokenizer_round_trip(shakespeare):
    tok = CharTokenizer.from_text(shakespeare)
    assert tok.vocab_size == len(set(shakespeare))
    assert tok.chars == sorted(tok.chars)
    ids = tok.encode(shakespeare[:5000])
    assert tok.decode(ids) == shakespeare[:5000]
    assert min(ids) >= 0 and max(ids) < tok.vocab_size


def test_char_tokenizer_unknown_character_names_it_and_its_position():
    tok = CharTokenizer.from_text("hello world")
    with pytest.raises(ValueError, match=r"'é' \(U\+00E9\) at position 4"):
        tok.encode("hellé")
    with pytest.raises(ValueError, match=r"id 11 at position 1 is out of range"):
        tok.decode([0, 11])
    with pytest.raises(TypeError, match="decode bytes first"):
        tok.encode(b"hello")


def test_char_tokenizer_save_load(tmp_path):
    tok = CharTokenizer.from_text("ab\ncd 大😀")
    tok.save(tmp_path / "chars.json")
    again = CharTokenizer.load(tmp_path / "chars.json")
    assert again.chars == tok.chars
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="not a character tokenizer file"):
        CharTokenizer.load(tmp_path / "bad.json")


# ------------------------------------------------------------------ training steps
def test_count_pairs_and_merge_pair_by_hand():
    assert count_pairs([1, 2, 3, 1, 2]) == {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    assert count_pairs([7, 7, 7]) == {(7, 7): 2}  # overlapping occurrences are all counted
    assert merge_pair([7, 7, 7], (7, 7), 9) == [9, 7]  # ... but merged left to right without overlap
    assert merge_pair([1, 2, 3, 1, 2], (1, 2), 9) == [9, 3, 9]
    assert merge_pair([1], (1, 2), 9) == [1]
    assert merge_pair([], (1, 2), 9) == []


@given(st.lists(st.integers(0, 3), max_size=30), st.integers(0, 3), st.integers(0, 3))
@settings(max_examples=200, deadline=None)
def test_merge_pair_keeps_the_content(ids, a, b):
    expand = {i: [i] for i in range(4)} | {99: [a, b]}
    merged = merge_pair(ids, (a, b), 99)
    assert [x for i in merged for x in expand[i]] == ids
    assert (a, b) not in count_pairs(merged) or (a == b and merged.count(99) >= 1)


@given(st.text(alphabet="abc d", max_size=60), st.integers(256, 300))
@settings(max_examples=60, deadline=None)
def test_incremental_trainer_equals_naive_trainer(text, n_tokens):
    words = word_counts(pretokenize(text))
    fast, slow = train_bpe(words, n_tokens), train_bpe_naive(words, n_tokens)
    assert fast.merges == slow.merges
    assert fast.vocab == slow.vocab


def test_incremental_trainer_equals_naive_trainer_on_shakespeare(shakespeare):
    words = word_counts(pretokenize(shakespeare[:30_000]))
    fast, slow = train_bpe(words, 420), train_bpe_naive(words, 420)
    assert fast.merges == slow.merges and len(fast.vocab) == 420


def test_ties_break_by_byte_order_not_by_input_order():
    # Three equally frequent pairs: the one whose bytes sort first wins, whatever the insertion order.
    for words in (Counter({b"xy": 3, b"ab": 3, b"ba": 3}), Counter({b"ba": 3, b"xy": 3, b"ab": 3})):
        result = train_bpe(words, 259)
        assert [result.vocab[a] + result.vocab[b] for a, b in result.merges] == [b"ab", b"ba", b"xy"]
        assert train_bpe_naive(words, 259).merges == result.merges
    # Left bytes first, then right bytes: (" ", "a") < ("a", "b") < ("c", "d").
    tok = BPETokenizer.train("cd ab", 259)
    assert [tok.vocab[i] for i in (256, 257, 258)] == [b" a", b" ab", b"cd"]


def test_merge_counts_are_the_most_frequent_pair():
    words = Counter({b"hello": 5, b"help": 3, b"yellow": 2})
    result = train_bpe(words, 257)
    pairs = {}
    for w, f in words.items():
        count_pairs(list(w), pairs, f)
    best = max(pairs.values())
    assert pairs[result.merges[0]] == best


def test_trainer_reuses_ids_for_repeated_bytes():
    # "abc" can be built as a+bc and as ab+c; the vocabulary must hold it once.
    tok = BPETokenizer.train("abc " * 3 + "bc " * 5 + "ab " * 4 + "abcabc", 270, pattern=None)
    values = list(tok.vocab.values())
    assert len(values) == len(set(values))


def test_training_stops_when_nothing_is_left_to_merge():
    tok = BPETokenizer.train("aaaa", 1000)
    assert tok.vocab[256] == b"aa" and tok.vocab[257] == b"aaaa" and len(tok.merges) == 2
    assert tok.encode("aaaa") == [257]


def test_trained_tokenizer_round_trips_and_compresses(small_trained, shakespeare):
    sample = shakespeare[50_000:60_000]
    ids = small_trained.encode(sample)
    assert small_trained.decode(ids) == sample
    assert len(ids) < len(sample.encode()) * 0.7  # 144 merges already save over 30%
    assert small_trained.vocab_size == 400


def test_truncated_equals_training_to_a_smaller_vocabulary(shakespeare):
    big = BPETokenizer.train(shakespeare[:20_000], 320)
    small = BPETokenizer.train(shakespeare[:20_000], 290)
    cut = big.truncated(len(small.merges))
    assert cut.merges == small.merges and cut.vocab == small.vocab
    assert cut.encode(shakespeare[:3000]) == small.encode(shakespeare[:3000])


def test_special_tokens_are_never_part_of_a_merge():
    text = EOT.join(["the cat sat on the mat", "a dog ate the hat", "the rat sat"] * 30)
    tok = BPETokenizer.train(text, 320, special_tokens=[EOT])
    special_bytes = set(b"<|>")  # bytes that occur in the special token and nowhere else
    for a, b in tok.merges:
        assert not (set(tok.vocab[a] + tok.vocab[b]) & special_bytes), (tok.vocab[a], tok.vocab[b])
    assert tok.special_tokens == {EOT: len(tok.vocab)}  # the special gets the last id
    ids = tok.encode(text)
    assert ids.count(tok.special_tokens[EOT]) == text.count(EOT)
    assert tok.decode(ids) == text


def test_vocab_size_too_small_is_a_clear_error():
    with pytest.raises(ValueError, match=r"at least 256"):
        BPETokenizer.train("hello", 255)
    with pytest.raises(ValueError, match=r"plus 2 special token\(s\), so at least 258"):
        BPETokenizer.train("hello", 257, special_tokens=["<a>", "<b>"])
    BPETokenizer.train("hello", 258, special_tokens=["<a>", "<b>"])  # the minimum works
    with pytest.raises(ValueError, match="method must be"):
        BPETokenizer.train("hello", 300, method="fast")


# ------------------------------------------------------------------ exactness against GPT-2 (tiktoken)
def test_gpt2_vocabulary_loads(gpt2):
    assert gpt2.vocab_size == 50257 and len(gpt2.merges) == 50000
    assert gpt2.special_tokens == {EOT: 50256} and gpt2.pattern == GPT2_PATTERN
    assert gpt2.token_bytes(gpt2.encode(" the")[0]) == b" the"


def test_same_ids_as_tiktoken_on_tiny_shakespeare(gpt2, tiktoken_gpt2, shakespeare):
    ours = gpt2.encode(shakespeare)
    assert ours == tiktoken_gpt2.encode_ordinary(shakespeare)
    assert gpt2.decode(ours) == shakespeare


def test_same_ids_as_tiktoken_on_mixed_unicode(gpt2, tiktoken_gpt2):
    assert gpt2.encode(MIXED) == tiktoken_gpt2.encode_ordinary(MIXED)
    assert gpt2.decode(gpt2.encode(MIXED)) == MIXED


def test_same_ids_as_tiktoken_with_special_tokens(gpt2, tiktoken_gpt2):
    text = f"{EOT}Hello{EOT} world{EOT}{EOT}\n{MIXED}{EOT}x <|endoftext| <|endoftext|>>"
    ours = gpt2.encode(text)
    assert ours == tiktoken_gpt2.encode(text, allowed_special="all")
    assert ours.count(50256) == text.count(EOT)
    # As ordinary text the special string is split into pieces, like tiktoken's encode_ordinary.
    assert gpt2.encode(text, allowed_special="none") == tiktoken_gpt2.encode_ordinary(text)
    assert gpt2.encode(text, allowed_special=set()) == tiktoken_gpt2.encode_ordinary(text)


texts = st.text(max_size=200)
texts_with_specials = st.lists(st.one_of(st.text(max_size=30), st.just(EOT), st.just("<|endoftext"), st.just("|>")), max_size=8).map("".join)
# Text built from the pieces that matter to pre-tokenization: spaces, newlines, contractions, digits, specials.
PIECES = ["a", "b", "Z", " ", "  ", "\n", "\t", "'", "s", "ll", "1", "23", "!", ".", "é", "语", "😀", EOT, "<|endoftext", "|>"]
structured_texts = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)


@given(texts)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_round_trip_and_tiktoken_agreement_on_arbitrary_unicode(gpt2, tiktoken_gpt2, text):
    ids = gpt2.encode(text)
    assert gpt2.decode(ids) == text
    assert ids == tiktoken_gpt2.encode(text, allowed_special="all")
    assert gpt2.encode_ordinary(text) == tiktoken_gpt2.encode_ordinary(text)


@given(st.one_of(texts_with_specials, structured_texts))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_tiktoken_agreement_with_specials(gpt2, tiktoken_gpt2, text):
    ids = gpt2.encode(text)
    assert ids == tiktoken_gpt2.encode(text, allowed_special="all")
    assert gpt2.decode(ids) == text


@given(st.text(max_size=100))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_trained_tokenizer_round_trips_arbitrary_unicode(small_trained, text):
    assert small_trained.decode(small_trained.encode(text)) == text


def test_decode_never_raises_on_invalid_utf8(gpt2):
    ids = gpt2.encode("语")  # one Chinese character: 3 UTF-8 bytes, more than one token
    assert len(ids) > 1
    assert gpt2.decode_bytes(ids[:1]) == "语".encode()[: len(gpt2.token_bytes(ids[0]))]
    assert gpt2.decode(ids[:1]) == "\ufffd"
    broken_then_whole = gpt2.decode(ids[1:] + ids)  # stray continuation bytes, then the character
    assert broken_then_whole.startswith("\ufffd") and broken_then_whole.endswith("语")


@given(st.lists(st.integers(0, 50256), max_size=40))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_decode_accepts_any_valid_ids(gpt2, ids):
    raw = gpt2.decode_bytes(ids)
    text = gpt2.decode(ids)
    text.encode("utf-8")  # a valid string: no lone surrogates
    try:
        assert text == raw.decode("utf-8")
    except UnicodeDecodeError:
        assert "\ufffd" in text


def test_longest_special_token_wins():
    tok = BPETokenizer.train("some text", 260, special_tokens=["<s>", "<s><s>"])
    a, aa = tok.special_tokens["<s>"], tok.special_tokens["<s><s>"]
    assert tok.encode("<s><s><s>") == [aa, a]
    assert tok.encode("x<s>y")[1] == a
    assert tok.decode(tok.encode("<s><s><s>x")) == "<s><s><s>x"


def test_pretokenization_keeps_merges_inside_words(gpt2):
    assert pretokenize("Hello world's 2024!!") == ["Hello", " world", "'s", " 2024", "!!"]
    assert pretokenize("a   b") == ["a", "  ", " b"]  # the last space joins the word
    assert [gpt2.token_bytes(i) for i in gpt2.encode("dog. dog!")][:3] == [b"dog", b".", b" dog"]


# ------------------------------------------------------------------ streaming
def test_streaming_a_file_equals_encoding_the_whole_text(gpt2, shakespeare, tmp_path):
    path = tmp_path / "shakespeare.txt"
    path.write_text(shakespeare, encoding="utf-8")
    with open(path, encoding="utf-8", newline="") as f:
        streamed = list(gpt2.encode_iterable(f))
    assert streamed == gpt2.encode(shakespeare)


@given(st.one_of(texts_with_specials, structured_texts), st.lists(st.integers(0, 400), max_size=10))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_streaming_any_chunking_equals_whole_text(gpt2, text, cuts):
    cuts = sorted({c % (len(text) + 1) for c in cuts})
    chunks = [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)])]
    assert list(gpt2.encode_iterable(chunks)) == gpt2.encode(text)
    assert list(gpt2.encode_iterable(chunks, allowed_special="none")) == gpt2.encode(text, allowed_special="none")


@given(st.lists(st.sampled_from(["<s>", "<", "s", ">", "x", " ", "y", "x y", "a", "\n"]), max_size=30).map("".join),
       st.lists(st.integers(0, 100), max_size=8))
@settings(max_examples=300, deadline=None)
def test_streaming_with_nested_and_spaced_special_tokens(text, cuts):
    # "<s>" is a prefix of "<s><s>", and "x y" contains a space: a chunk may end inside either.
    tok = BPETokenizer.train("a b x y " * 20, 270, special_tokens=["<s>", "<s><s>", "x y"])
    cuts = sorted({c % (len(text) + 1) for c in cuts})
    chunks = [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)])]
    assert list(tok.encode_iterable(chunks)) == tok.encode(text)


def test_streaming_memory_does_not_grow_with_the_input(gpt2, shakespeare):
    lines = shakespeare.splitlines(keepends=True)

    def stream(n_lines):
        return (lines[i % len(lines)] for i in range(n_lines))

    def peak(n_lines):
        tracemalloc.start()
        count = sum(1 for _ in gpt2.encode_iterable(stream(n_lines)))
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return count, top

    sum(1 for _ in gpt2.encode_iterable(stream(len(lines))))  # fill the pre-token cache first
    n_small, peak_small = peak(5_000)
    n_large, peak_large = peak(20_000)
    assert n_large > 3.5 * n_small
    assert peak_large < 1.5 * peak_small + 64_000, (peak_small, peak_large)


def test_streaming_rejects_non_str_chunks_and_unknown_patterns(gpt2):
    with pytest.raises(TypeError, match="each chunk"):
        list(gpt2.encode_iterable([b"bytes"]))
    words_only = BPETokenizer.train("a b c", 260, pattern=r"\w+|\W")
    assert words_only.encode("a b") == [97, 32, 98]
    with pytest.raises(ValueError, match="only for GPT-2's pre-tokenization pattern"):
        list(words_only.encode_iterable(["a b"]))
    no_pattern = BPETokenizer.train("ab ab ab", 258, pattern=None)  # cuts only at special tokens
    assert list(no_pattern.encode_iterable(["ab", " a", "b ab"])) == no_pattern.encode("ab ab ab")


# ------------------------------------------------------------------ files
def test_save_load_round_trip(small_trained, tmp_path, shakespeare):
    path = tmp_path / "tok.json"
    small_trained.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["merges"][0].count(" ") == 1 and "Ġ" in "".join(data["vocab"])  # readable, GPT-2 style
    again = BPETokenizer.load(path)
    assert again.merges == small_trained.merges and again.vocab == small_trained.vocab
    assert again.special_tokens == small_trained.special_tokens
    sample = shakespeare[:2000] + EOT + MIXED
    assert again.encode(sample) == small_trained.encode(sample)


def test_gpt2_files_survive_a_save_load_round_trip(gpt2, tmp_path):
    gpt2.save(tmp_path / "gpt2.json")
    again = BPETokenizer.load(tmp_path / "gpt2.json")
    assert again.encode(MIXED + EOT) == gpt2.encode(MIXED + EOT)


def test_byte_text_mapping_round_trips():
    every = bytes(range(256))
    assert text_to_bytes(bytes_to_text(every)) == every
    assert bytes_to_text(b" the\n") == "ĠtheĊ"


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.update(format="other"), "not a course BPE file"),
        (lambda d: d.pop("merges"), "'merges' is missing"),
        (lambda d: d["merges"].append("Ġt"), "expected two tokens"),
        (lambda d: d["merges"].append("Ġzzzq x"), "not in the vocabulary"),
        (lambda d: d["vocab"].update({"Ġthe": "one"}), "ids must be non-negative integers"),
        (lambda d: d["vocab"].update({"Ġcopy": 0}), "share the id 0"),
        (lambda d: d["vocab"].pop("A"), "no token for the byte 0x41"),
        (lambda d: d["vocab"].update({"a b": 9999}), "stands for no byte"),
        (lambda d: d["special_tokens"].update({"<new>": 257}), "share the id 257"),
    ],
)
def test_malformed_files_give_clear_errors(small_trained, tmp_path, change, message):
    path = tmp_path / "tok.json"
    small_trained.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(TokenizerFileError, match=message):
        BPETokenizer.load(path)


def test_not_json_is_a_clear_error(tmp_path):
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(TokenizerFileError, match="not valid JSON"):
        BPETokenizer.load(tmp_path / "x.json")


def test_mismatched_gpt2_files_are_detected(tmp_path):
    encoder_json, vocab_bpe = gpt2_file_paths()
    vocab = json.loads(Path(encoder_json).read_text(encoding="utf-8"))
    del vocab["Ġthe"]  # used by merge 4 (Ġt + he)
    (tmp_path / "encoder.json").write_text(json.dumps(vocab), encoding="utf-8")
    with pytest.raises(TokenizerFileError, match=r"uses the token 'Ġthe'.*belong together"):
        BPETokenizer.from_gpt2_files(tmp_path / "encoder.json", vocab_bpe)
    lines = Path(vocab_bpe).read_text(encoding="utf-8").split("\n")
    (tmp_path / "vocab.bpe").write_text("\n".join(lines[:10] + ["Ġ t h"] + lines[10:]), encoding="utf-8")
    with pytest.raises(TokenizerFileError, match=r"line 11: expected two tokens"):
        BPETokenizer.from_gpt2_files(encoder_json, tmp_path / "vocab.bpe")
    with pytest.raises(TokenizerFileError, match="special token '<|nope|>' is not in the vocabulary"):
        BPETokenizer.from_gpt2_files(encoder_json, vocab_bpe, special_tokens=["<|nope|>"])


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("bad", [b"bytes", None, 42, ["a", "list"]])
def test_encoding_non_str_is_a_type_error(gpt2, bad):
    with pytest.raises(TypeError, match="expects a str, got"):
        gpt2.encode(bad)


def test_bad_special_and_id_arguments(gpt2):
    with pytest.raises(ValueError, match="not special tokens of this tokenizer"):
        gpt2.encode("x", allowed_special={"<|nope|>"})
    with pytest.raises(ValueError, match="'all', 'none' or a set"):
        gpt2.encode("x", allowed_special="some")
    with pytest.raises(ValueError, match="id 50257 at position 1 is not in the vocabulary"):
        gpt2.decode([0, 50257])
    with pytest.raises(TypeError, match="position 0 holds 'a'"):
        gpt2.decode(["a"])
    import numpy as np

    assert gpt2.decode(np.array(gpt2.encode("numpy ids"))) == "numpy ids"


# ------------------------------------------------------------------ figures and exercise checks
def test_figures_draw_what_they_are_given():
    from matplotlib.figure import Figure

    from course.plots.tokens import compression_curve, token_length_histogram, token_rendering

    fig = compression_curve([256, 512], [1.0, 1.8], references={"GPT-2": (50257, 3.1)})
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) == 2
    fig = token_length_histogram({"vocab": [1, 2, 2, 3], "text": [1, 1, 2]})
    assert len(fig.axes[0].patches) == 2 * 3  # one bar per length 1..3, per series
    fig = token_rendering(["Hello", " world", "!"])
    assert [t.get_text() for t in fig.axes[0].texts] == ["Hello", "\u2423world", "!"]
    with pytest.raises(ValueError, match="equally long"):
        compression_curve([256, 512], [1.0])
    with pytest.raises(ValueError, match="at least one token"):
        token_rendering([])


def test_checks_diagnose_the_classic_mistakes():
    from course.checks import ExerciseFailed
    from course.checks.ch01 import check_bpe_encode, check_count_pairs, check_merge
    from solutions.ch01_tokenization import merge

    def count_once(ids):  # forgets to add up repeated pairs
        return {p: 1 for p in zip(ids, ids[1:])}

    with pytest.raises(ExerciseFailed, match="occurs twice"):
        check_count_pairs(count_once)

    def merge_overlapping(ids, pair, new_id):  # advances by one after a merge
        out, i = [], 0
        while i < len(ids):
            if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
                out.append(new_id)
            elif not (i > 0 and (ids[i - 1], ids[i]) == pair):
                out.append(ids[i])
            i += 1
        return out

    with pytest.raises(ExerciseFailed, match="used twice"):
        check_merge(merge_overlapping)

    def encode_by_frequency(text, merges):  # merges the most frequent pair, not the lowest rank
        ids = list(text.encode("utf-8"))
        while True:
            counts = count_pairs(ids)
            known = [p for p in counts if p in merges]
            if not known:
                return ids
            best = max(known, key=counts.get)
            ids = merge(ids, best, merges[best])

    with pytest.raises(ExerciseFailed, match="lowest rank"):
        check_bpe_encode(encode_by_frequency)

    def encode_code_points(text, merges):
        ids = [ord(c) for c in text]
        for pair, new_id in merges.items():
            ids = merge(ids, pair, new_id)
        return ids

    with pytest.raises(ExerciseFailed, match="text.encode"):
        check_bpe_encode(encode_code_points)


def test_tie_rule_compares_left_tokens_first_not_the_merged_bytes():
    # After (a, b), the pairs (ab, c) and (a, x) are both seen twice. The left token decides: b"a" < b"ab",
    # so (a, x) comes first, although the merged string "abc" would sort before "ax".
    from course.tokenizers.bpe import pair_priority

    words = Counter({b"ab": 5, b"abc": 2, b"ax": 2})
    for trainer in (train_bpe, train_bpe_naive):
        result = trainer(words, 259)
        assert [result.vocab[a] + result.vocab[b] for a, b in result.merges] == [b"ab", b"ax", b"abc"]
    vocab = {**{i: bytes([i]) for i in range(256)}, 256: b"ab"}
    a, b, c, x = (ord(ch) for ch in "abcx")
    assert pair_priority(vocab, (a, x), 2) < pair_priority(vocab, (256, c), 2) < pair_priority(vocab, (a, b), 1)


def test_overlapping_occurrences_merge_left_to_right():
    tok = BPETokenizer.train("aaa", 257, pattern=None)  # one merge: (a, a)
    assert tok.merges == [(97, 97)]
    assert tok.encode("aaa") == [256, 97] and tok.encode("aaaa") == [256, 256]
