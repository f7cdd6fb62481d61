"""The synthetic language pair of chapter 10 (course.toy_translation): its grammar, its alignments, its splits."""

from __future__ import annotations

import pytest
import torch

from course.toy_translation import (ADJECTIVES, ADVERBS, LEXICON, NOUNS, VERBS, encode_pairs, make_pairs, split_pairs,
                                    vocabularies, word_for_word)

REVERSE = {v: k for k, v in LEXICON.items()}


def test_the_lexicon_translates_one_to_one():
    assert len(set(LEXICON.values())) == len(LEXICON)


def test_every_target_word_translates_the_source_word_it_is_aligned_to():
    for p in make_pairs(2000, seed=1):
        assert sorted(p.alignment) == list(range(len(p.source)))  # a permutation: every word used once
        assert all(p.target[i] == LEXICON[p.source[j]] for i, j in enumerate(p.alignment))


def test_the_target_word_order():
    for p in make_pairs(2000, seed=2):
        english = [REVERSE[w] for w in p.target]
        core = english[:-1] if english[-1] in ADVERBS else english
        assert core[-1] in VERBS  # the verb is last (before a final adverb)
        for i, w in enumerate(english):
            if w in ADJECTIVES:
                assert english[i - 1] in NOUNS  # adjectives follow their noun
        assert word_for_word(p) != p.target  # a word-for-word substitution is always wrong: the verb moves


def test_pairs_are_distinct_deterministic_and_split_without_overlap():
    pairs = make_pairs(3000, seed=0)
    assert len({p.source for p in pairs}) == 3000
    assert pairs == make_pairs(3000, seed=0) and pairs != make_pairs(3000, seed=1)
    train, val, test = split_pairs(pairs)
    assert (len(train), len(val), len(test)) == (2400, 300, 300)
    sources = [{p.source for p in part} for part in (train, val, test)]
    assert not (sources[0] & sources[1] or sources[0] & sources[2] or sources[1] & sources[2])
    with pytest.raises(ValueError, match="empty split"):
        split_pairs(pairs[:5])


def test_encoding_pads_and_round_trips():
    src_vocab, tgt_vocab = vocabularies()
    pairs = make_pairs(50, seed=3)
    batch = encode_pairs(pairs, src_vocab, tgt_vocab)
    n = len(pairs)
    assert batch["src"].shape == (n, max(len(p.source) for p in pairs))
    assert batch["tgt_in"].shape == batch["tgt_out"].shape == (n, max(len(p.target) for p in pairs) + 1)
    assert bool((batch["tgt_in"][:, 0] == tgt_vocab.bos).all())
    for i, p in enumerate(pairs):
        assert src_vocab.decode(batch["src"][i].tolist()) == list(p.source)
        assert tgt_vocab.decode(batch["tgt_in"][i].tolist()) == list(p.target)
        out = batch["tgt_out"][i]
        assert tgt_vocab.decode(out[out != -100].tolist()) == list(p.target)
        assert int(batch["src_pad_mask"][i].sum()) == len(p.source)
        # teacher forcing: the decoder's input is its output shifted right by one
        assert torch.equal(batch["tgt_in"][i, 1:len(p.target) + 1], out[:len(p.target)])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        src_vocab.encode(["the", "unicorn"])
