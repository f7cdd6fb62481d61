"""Checks for the exercises of chapter 01 (tokenization)."""

from __future__ import annotations

import random
from collections import Counter

from . import ExerciseFailed, call, exercise_check, expect


def _reference_pairs(ids: list[int]) -> dict[tuple[int, int], int]:
    return dict(Counter(zip(ids, ids[1:])))


def _as_dict(result: object, what: str) -> dict:
    expect(isinstance(result, dict), f"{what} returned a {type(result).__name__}; return a dict mapping (a, b) to a count.")
    for key in result:  # type: ignore[union-attr]
        expect(
            isinstance(key, tuple) and len(key) == 2,
            f"{what} has the key {key!r}; keys must be tuples (a, b) of two neighbouring ids.",
        )
    return dict(result)  # type: ignore[arg-type]


@exercise_check("count_pairs")
def check_count_pairs(count_pairs) -> None:
    """Counting adjacent pairs: a small case, overlaps, edge cases, no wrap-around, no side effects."""
    got = _as_dict(call(count_pairs, [3, 1, 4, 1, 5]), "count_pairs([3, 1, 4, 1, 5])")
    if got == _reference_pairs([3, 1, 4, 1]):
        raise ExerciseFailed(
            f"count_pairs([3, 1, 4, 1, 5]) returned {got}: the last pair (1, 5) is missing. A list of n ids has "
            "n - 1 pairs: loop over range(len(ids) - 1), or use zip(ids, ids[1:])."
        )
    ids = [1, 2, 3, 1, 2]
    got = _as_dict(call(count_pairs, list(ids)), "count_pairs([1, 2, 3, 1, 2])")
    expected = _reference_pairs(ids)
    if (2, 1) in got:
        raise ExerciseFailed("count_pairs([1, 2, 3, 1, 2]) counted the pair (2, 1): the last id has no right neighbour, pairs do not wrap around.")
    if got == dict(Counter(zip(ids[::2], ids[1::2]))):
        raise ExerciseFailed(
            f"count_pairs([1, 2, 3, 1, 2]) returned {got}: you stepped by 2, so (2, 3) and (3, 1) were skipped. "
            "Pairs overlap: every position i (but the last) starts a pair (ids[i], ids[i + 1])."
        )
    flipped = [key for key in got if key not in expected and key[::-1] in expected]
    if flipped:
        raise ExerciseFailed(
            f"count_pairs([1, 2, 3, 1, 2]) has the key {flipped[0]}, but the ids appear as {flipped[0][::-1]}: "
            "keep each pair in the order of the list, (ids[i], ids[i + 1]); do not sort it."
        )
    if got.get((1, 2)) == 1:
        raise ExerciseFailed("count_pairs([1, 2, 3, 1, 2]) counted (1, 2) once, but it occurs twice: add 1 each time you see it.")
    expect(got == expected, f"count_pairs([1, 2, 3, 1, 2]) returned {got}, expected {expected}.")

    got = _as_dict(call(count_pairs, [7, 7, 7]), "count_pairs([7, 7, 7])")
    expect(
        got == {(7, 7): 2},
        f"count_pairs([7, 7, 7]) returned {got}, expected {{(7, 7): 2}}: both neighbouring pairs count, even though they overlap "
        "(step through the list one position at a time, not two).",
    )
    for short in ([], [5]):
        got = _as_dict(call(count_pairs, list(short)), f"count_pairs({short})")
        expect(got == {}, f"count_pairs({short}) returned {got}; a list shorter than 2 has no pairs, so return {{}}.")

    rng = random.Random(0)
    ids = [rng.randrange(6) for _ in range(200)]
    before = list(ids)
    got = _as_dict(call(count_pairs, ids), "count_pairs of 200 random ids")
    expect(ids == before, "count_pairs changed the list it was given: only read it.")
    expect(sum(got.values()) == len(ids) - 1, f"the counts add up to {sum(got.values())}; a list of 200 ids has 199 neighbouring pairs.")
    expect(got == _reference_pairs(ids), "count_pairs of 200 random ids differs from the reference counts.")


def _merge_advancing_by_one(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """The classic slip: after writing new_id the scan moves on by 1, so the pair's second id is visited again."""
    out = []
    for i, current in enumerate(ids):
        out.append(new_id if i + 1 < len(ids) and (current, ids[i + 1]) == pair else current)
    return out


def _advanced_by_one(got: object, ids: list[int], pair: tuple[int, int], new_id: int) -> None:
    slip = _merge_advancing_by_one(ids, pair, new_id)
    if got == slip:
        raise ExerciseFailed(
            f"merge({ids}, {pair}, {new_id}) returned {got}: after writing the new id you moved on by 1, so the "
            f"second id of the pair was visited again (kept, or merged once more when occurrences overlap, as in "
            f"[7, 7, 7]). A merged pair uses up both of its ids: advance by 2 after a merge, by 1 otherwise."
        )


@exercise_check("merge")
def check_merge(merge) -> None:
    """Replacing a pair: several occurrences, overlaps, the last position, no match, no side effects."""
    ids = [1, 2, 3, 1, 2]
    got = call(merge, list(ids), (1, 2), 9)
    expect(isinstance(got, list), f"merge returned a {type(got).__name__}; return a new list of ids.")
    _advanced_by_one(got, ids, (1, 2), 9)
    if got == ids:
        raise ExerciseFailed(
            "merge([1, 2, 3, 1, 2], (1, 2), 9) merged nothing. Compare a tuple with the tuple pair: "
            "(ids[i], ids[i + 1]) == pair (a list [a, b] never equals a tuple (a, b))."
        )
    if got == [9, 3, 1, 2]:
        raise ExerciseFailed("merge([1, 2, 3, 1, 2], (1, 2), 9) returned [9, 3, 1, 2]: only the first occurrence was "
                             "replaced. Keep scanning to the end of the list: every occurrence becomes 9.")
    expect(got == [9, 3, 9], f"merge([1, 2, 3, 1, 2], (1, 2), 9) returned {got}, expected [9, 3, 9].")

    got = call(merge, [3, 1, 2], (1, 2), 9)
    if got == [3]:
        raise ExerciseFailed("merge([3, 1, 2], (1, 2), 9) returned [3]: the pair at the very end was dropped. Check the loop bound.")
    if got == [3, 9, 2]:
        raise ExerciseFailed("merge([3, 1, 2], (1, 2), 9) returned [3, 9, 2]: after writing the new id, skip both halves of the pair (advance by 2).")
    expect(got == [3, 9], f"merge([3, 1, 2], (1, 2), 9) returned {got}, expected [3, 9].")

    got = call(merge, [7, 7, 7], (7, 7), 9)
    _advanced_by_one(got, [7, 7, 7], (7, 7), 9)
    if got == [7, 9]:
        raise ExerciseFailed("merge([7, 7, 7], (7, 7), 9) returned [7, 9]: you scanned from the right. When occurrences "
                             "overlap the left one wins: scan left to right, giving [9, 7].")
    if got == [9]:
        raise ExerciseFailed("merge([7, 7, 7], (7, 7), 9) returned [9]: the last 7 is not part of a pair but must still be copied. "
                             "Check the loop bound: visit every position, and look at ids[i + 1] only when it exists.")
    if got == [9, 9]:
        raise ExerciseFailed("merge([7, 7, 7], (7, 7), 9) returned [9, 9]: occurrences overlap here and the middle 7 was used twice. "
                             "Scan left to right and skip both ids of a merged pair: the answer is [9, 7].")
    expect(got == [9, 7], f"merge([7, 7, 7], (7, 7), 9) returned {got}, expected [9, 7].")

    got = call(merge, [4, 5, 6], (1, 2), 9)
    expect(got == [4, 5, 6], f"merge([4, 5, 6], (1, 2), 9) returned {got}; when the pair does not occur the ids stay as they are.")
    got = call(merge, [2, 1], (1, 2), 9)
    expect(got == [2, 1], f"merge([2, 1], (1, 2), 9) returned {got}; (2, 1) is not (1, 2): order matters.")
    expect(call(merge, [], (1, 2), 9) == [], "merge of an empty list must return an empty list.")

    ids = [1, 2, 1, 2, 2]
    before = list(ids)
    got = call(merge, ids, (1, 2), 9)
    expect(ids == before, "merge changed the list it was given: build and return a new list instead.")
    expect(got == [9, 9, 2], f"merge([1, 2, 1, 2, 2], (1, 2), 9) returned {got}, expected [9, 9, 2].")


def _training_merges(text: str, n_merges: int) -> dict[tuple[int, int], int]:
    from course.tokenizers import train_bpe, word_counts

    result = train_bpe(word_counts([text]), 256 + n_merges)
    merged = {b: i for i, b in result.vocab.items()}
    return {(a, b): merged[result.vocab[a] + result.vocab[b]] for a, b in result.merges}


@exercise_check("bpe_encode")
def check_bpe_encode(bpe_encode) -> None:
    """Encoding with learned merges: ranks, repeated application, UTF-8, agreement with the reference."""
    from course.tokenizers import BPETokenizer

    # A hand-made case where the order matters: (b, c) was learned before (a, b).
    merges = {(98, 99): 256, (97, 98): 257, (97, 256): 258}
    got = call(bpe_encode, "abc", dict(merges))
    expect(isinstance(got, list), f"bpe_encode returned a {type(got).__name__}; return a list of ids.")
    if got == [257, 99]:
        raise ExerciseFailed(
            "bpe_encode('abc', ...) returned [257, 99]: it merged (a, b) first, but (b, c) was learned earlier (a lower rank). "
            "Always apply the pair with the lowest rank (the earliest learned merge) among those present."
        )
    if got == [97, 256]:
        raise ExerciseFailed(
            "bpe_encode('abc', ...) returned [97, 256] and stopped: after a merge, new pairs appear ((97, 256) here). "
            "Keep merging until no pair of the sequence is in merges."
        )
    expect(got == [258], f"bpe_encode('abc', {{(98, 99): 256, (97, 98): 257, (97, 256): 258}}) returned {got}, expected [258].")

    got = call(bpe_encode, "", dict(merges))
    expect(got == [], f"bpe_encode('', ...) returned {got}; the empty text has no ids.")

    text = "the cat sat on the mat; the hat is flat. " * 5
    merges = _training_merges(text, 25)
    reference = BPETokenizer.train(text, 256 + 25, pattern=None)
    sample = "that cat is on the flat mat"
    got = call(bpe_encode, sample, dict(merges))
    want = reference.encode(sample)
    expect(got == want, f"bpe_encode({sample!r}) with 25 merges learned from a toy text returned {got}, expected {want}.")

    sample = "café 大模型 🙂 the cat"
    got = call(bpe_encode, sample, dict(merges))
    if any(i > 255 and i not in merges.values() for i in got):
        raise ExerciseFailed(
            f"bpe_encode({sample!r}) returned ids such as {max(got)} that are neither bytes nor merges: "
            "start from text.encode('utf-8') (values 0..255), not from ord(c) of each character."
        )
    want = reference.encode(sample)
    expect(got == want, f"bpe_encode({sample!r}) returned {got}, expected {want}: non-ASCII characters are several UTF-8 bytes each.")
