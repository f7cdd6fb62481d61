"""Byte-level BPE: counting pairs, merging, and training (chapter 01).

Training starts from the 256 single bytes and repeats: count every adjacent pair
of tokens in the corpus, make the most frequent pair a new token, replace it
everywhere. Two trainers do exactly that and return the same merges:

* `train_bpe_naive` recounts every pair of the whole corpus after each merge;
* `train_bpe` (incremental) keeps the counts and, after a merge, updates only
  the words that contained the merged pair. A heap finds the most frequent pair.

Both work on a table of distinct pre-tokens ("words") and how often each occurs,
so a word that appears 5,000 times is merged once, not 5,000 times.

**Tie rule.** When several pairs are equally frequent, the pair whose bytes come
first in byte order wins: compare the left tokens' bytes, then the right tokens'
bytes, as Python compares ``bytes`` (byte by byte; a prefix comes before its
extensions, so ``b"a" < b"ab"``). Concretely, with (a, x) and (ab, c) equally
frequent, (a, x) wins because its left token ``a`` sorts before ``ab``, although
the merged string ``abc`` would sort before ``ax``. `pair_priority` is this rule
as a sort key. It depends only on the text, never on the order in which Python
happens to visit a dictionary, so training is deterministic, and both trainers
apply it, so they return identical merges. (GPT-2's own trainer was never
published; its merges file fixes the order, and loading it needs no tie rule.)

**Overlaps.** Within a word, a merge replaces the occurrences of its pair from
left to right without overlap: merging (a, a) in ``a a a`` gives ``aa a``, never
``a aa`` (`merge_pair`); encoding applies merges the same way.

**Repeated bytes.** A merge can produce bytes that already have a token (``a`` +
``bc`` and ``ab`` + ``c`` both give ``abc``); it then reuses that token's id, so
every token's bytes are distinct, as in GPT-2's vocabulary.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

Pair = tuple[int, int]


def count_pairs(ids: Sequence[int], counts: dict[Pair, int] | None = None, weight: int = 1) -> dict[Pair, int]:
    """How often each adjacent pair occurs in ``ids`` (added, times ``weight``, to ``counts`` if given)."""
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + weight
    return counts


def merge_pair(ids: Sequence[int], pair: Pair, new_id: int) -> list[int]:
    """Replace every occurrence of ``pair`` in ``ids`` by ``new_id``, scanning left to right.

    Occurrences do not overlap: merging (a, a) in ``a a a`` gives ``new a``.
    """
    a, b = pair
    out: list[int] = []
    i, n = 0, len(ids)
    while i < n:
        if ids[i] == a and i + 1 < n and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


@dataclass
class BPETrainingResult:
    """What training learned: ``vocab`` maps id -> bytes, ``merges`` are in rank order."""

    vocab: dict[int, bytes]
    merges: list[Pair]


def word_counts(pieces: Iterable[str]) -> Counter[bytes]:
    """How often each distinct pre-token occurs, as UTF-8 bytes."""
    return Counter({p.encode("utf-8"): n for p, n in Counter(pieces).items()})


def check_vocab_size(vocab_size: int, n_special: int) -> None:
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool):
        raise TypeError(f"vocab_size must be an int, got {type(vocab_size).__name__}.")
    minimum = 256 + n_special
    if vocab_size < minimum:
        raise ValueError(
            f"vocab_size={vocab_size} is too small: a byte-level vocabulary needs 256 byte tokens"
            + (f" plus {n_special} special token(s)" if n_special else "")
            + f", so at least {minimum}."
        )


def pair_priority(vocab: dict[int, bytes], pair: Pair, count: int) -> tuple[int, bytes, bytes]:
    """The tie rule as a sort key: the pair with the smallest key is merged next.

    ``(-count, left token's bytes, right token's bytes)``: the most frequent pair
    first; among equally frequent pairs, the one whose left token's bytes sort
    first, then the one whose right token's bytes sort first. Keys never tie:
    every token's bytes are distinct.
    """
    return (-count, vocab[pair[0]], vocab[pair[1]])


class _Vocab:
    """The growing vocabulary shared by both trainers."""

    def __init__(self) -> None:
        self.vocab: dict[int, bytes] = {i: bytes([i]) for i in range(256)}
        self.ids: dict[bytes, int] = {b: i for i, b in self.vocab.items()}
        self.merges: list[Pair] = []

    def add_merge(self, pair: Pair) -> int:
        merged = self.vocab[pair[0]] + self.vocab[pair[1]]
        new_id = self.ids.get(merged)
        if new_id is None:
            new_id = len(self.vocab)
            self.vocab[new_id] = merged
            self.ids[merged] = new_id
        self.merges.append(pair)
        return new_id

    def key(self, pair: Pair, count: int) -> tuple[int, bytes, bytes]:
        """Sort key: the smallest key is the pair to merge (most frequent, then byte order)."""
        return pair_priority(self.vocab, pair, count)


def train_bpe_naive(words: Counter[bytes], n_tokens: int) -> BPETrainingResult:
    """Merge until the vocabulary has ``n_tokens`` tokens, recounting every pair after each merge."""
    v = _Vocab()
    seqs = [list(w) for w in words]
    freqs = list(words.values())
    while len(v.vocab) < n_tokens:
        counts: dict[Pair, int] = {}
        for seq, f in zip(seqs, freqs):
            count_pairs(seq, counts, f)
        if not counts:
            break  # every word is a single token: nothing left to merge
        best = min(counts, key=lambda p: v.key(p, counts[p]))
        new_id = v.add_merge(best)
        seqs = [merge_pair(s, best, new_id) if len(s) > 1 else s for s in seqs]
    return BPETrainingResult(v.vocab, v.merges)


def _occurrences(seq: list[int], a: int, b: int) -> list[int]:
    """Start indices of the non-overlapping occurrences of (a, b) in ``seq``, left to right."""
    found, i, last = [], 0, len(seq) - 1
    while i < last:
        if seq[i] == a and seq[i + 1] == b:
            found.append(i)
            i += 2
        else:
            i += 1
    return found


def train_bpe(words: Counter[bytes], n_tokens: int) -> BPETrainingResult:
    """Merge until the vocabulary has ``n_tokens`` tokens, updating only the counts a merge changes.

    A merge of (a, b) changes only the pairs that touch an occurrence: in
    ``x a b y`` the pairs (x, a), (a, b), (b, y) disappear and (x, ab), (ab, y)
    appear, in every word that contains it, times that word's frequency.
    """
    v = _Vocab()
    seqs = [list(w) for w in words]
    freqs = list(words.values())
    counts: dict[Pair, int] = {}
    where: dict[Pair, set[int]] = {}  # pair -> words that contain it (may also list words that no longer do)
    for wi, (seq, f) in enumerate(zip(seqs, freqs)):
        for pair in zip(seq, seq[1:]):
            counts[pair] = counts.get(pair, 0) + f
            where.setdefault(pair, set()).add(wi)
    # A max-heap (via negated counts) of candidate merges. Entries are never updated in
    # place: a count that grows gets a new entry; a count that shrinks leaves an entry
    # that overestimates it, which is corrected when it reaches the top.
    heap = [(*v.key(p, c), p) for p, c in counts.items()]
    heapq.heapify(heap)

    while len(v.vocab) < n_tokens:
        pair = None
        while heap:
            neg, _, _, top = heapq.heappop(heap)
            current = counts.get(top)
            if current == -neg:
                pair = top
                break
            if current:  # stale: put it back with its true count
                heapq.heappush(heap, (*v.key(top, current), top))
        if pair is None:
            break  # no pair left: every word is a single token
        new_id = v.add_merge(pair)
        a, b = pair
        grown: set[Pair] = set()

        def shift(p: Pair, delta: int, wi: int) -> None:
            if p == pair:
                return  # the merged pair disappears everywhere; dropped below
            c = counts.get(p, 0) + delta
            if c:
                counts[p] = c
            else:
                del counts[p]
            if delta > 0:
                where.setdefault(p, set()).add(wi)
                grown.add(p)

        for wi in where.pop(pair):
            seq = seqs[wi]
            occ = _occurrences(seq, a, b)
            if not occ:
                continue  # a stale entry: an earlier merge already consumed the pair here
            f = freqs[wi]
            if len(occ) == 1:  # the common case, written out: x a b y -> x N y
                i = occ[0]
                if i:
                    shift((seq[i - 1], a), -f, wi)
                    shift((seq[i - 1], new_id), f, wi)
                if i + 2 < len(seq):
                    shift((b, seq[i + 2]), -f, wi)
                    shift((new_id, seq[i + 2]), f, wi)
                seq[i : i + 2] = [new_id]
                continue
            last = len(seq) - 1
            for j in {j for i in occ for j in (i - 1, i + 1) if 0 <= j < last}:
                shift((seq[j], seq[j + 1]), -f, wi)
            new = seq[: occ[0]]
            for k, i in enumerate(occ):
                new.append(new_id)
                new.extend(seq[i + 2 : occ[k + 1] if k + 1 < len(occ) else None])
            seqs[wi] = new
            last = len(new) - 1
            for j in {j for k, i in enumerate(occ) for j in (i - k - 1, i - k) if 0 <= j < last}:
                shift((new[j], new[j + 1]), f, wi)
        counts.pop(pair, None)
        for p in grown:
            if p in counts:
                heapq.heappush(heap, (*v.key(p, counts[p]), p))
    return BPETrainingResult(v.vocab, v.merges)
