"""A synthetic language pair for machine translation (chapter 10).

Real translation data (WMT, Europarl) is large and needs a download; the idea of
an encoder-decoder fits in a toy. The source language is a tiny English; the
target language is invented, with its own words and two word-order rules that
English does not have:

* adjectives follow their noun ("the big dog" -> "lo kano grafo");
* the verb goes to the end of the sentence, after its object (subject-object-verb,
  as in Japanese, Turkish or Latin; English is subject-verb-object).

So a word-by-word substitution fails and the model has to *reorder*: the
cross-attention of a trained model should show which source word each target
word was made from. Because every pair is generated, the true **alignment** is
known (`Pair.alignment[i]` is the source position of target word i), and chapter
10 measures how often the cross-attention's strongest link is the right one.

`make_pairs(n, seed)` draws sentences; `split_pairs` keeps train, validation and
test sentences distinct; `WordVocab` maps words to ids with PAD, BOS and EOS;
`encode_pairs` makes padded tensors for `course.families.Seq2Seq`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from .validate import non_negative_int, positive_int

# English word -> target word (invented). Determiners, adjectives, nouns, verbs, adverbs.
DETERMINERS = {"the": "lo", "a": "un"}
ADJECTIVES = {"big": "grafo", "small": "pim", "red": "rusa", "old": "vek", "happy": "jolo", "quiet": "tisi"}
NOUNS = {"dog": "kano", "cat": "mitu", "bird": "pajo", "child": "nino", "king": "rega", "horse": "kavo",
         "teacher": "dosen", "farmer": "agri"}
VERBS = {"sees": "vidas", "likes": "amas", "follows": "sekvas", "finds": "trovas", "helps": "helpas", "calls": "vokas"}
ADVERBS = {"today": "hodie", "again": "denove", "quickly": "rapide"}
LEXICON = {**DETERMINERS, **ADJECTIVES, **NOUNS, **VERBS, **ADVERBS}
PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"


@dataclass(frozen=True)
class Pair:
    """A source sentence, its translation, and for each target word the position of its source word."""

    source: tuple[str, ...]
    target: tuple[str, ...]
    alignment: tuple[int, ...]


def _noun_phrase(rng: random.Random, start: int) -> tuple[list[str], list[str], list[int]]:
    """English "det (adj) noun"; target "det noun (adj)", with the source positions of the target words."""
    det, noun = rng.choice(list(DETERMINERS)), rng.choice(list(NOUNS))
    if rng.random() < 0.5:
        adj = rng.choice(list(ADJECTIVES))
        return [det, adj, noun], [LEXICON[det], LEXICON[noun], LEXICON[adj]], [start, start + 2, start + 1]
    return [det, noun], [LEXICON[det], LEXICON[noun]], [start, start + 1]


def make_pair(rng: random.Random) -> Pair:
    """One sentence: subject, verb, object and sometimes an adverb; translated with the target's word order."""
    subj_src, subj_tgt, subj_align = _noun_phrase(rng, 0)
    verb_pos = len(subj_src)
    verb = rng.choice(list(VERBS))
    obj_src, obj_tgt, obj_align = _noun_phrase(rng, verb_pos + 1)
    source = subj_src + [verb] + obj_src
    target = subj_tgt + obj_tgt + [LEXICON[verb]]  # subject, object, verb
    alignment = subj_align + obj_align + [verb_pos]
    if rng.random() < 0.3:  # a sentence-final adverb stays final in both languages
        adv = rng.choice(list(ADVERBS))
        alignment.append(len(source))
        source.append(adv)
        target.append(LEXICON[adv])
    return Pair(tuple(source), tuple(target), tuple(alignment))


def make_pairs(n: int, seed: int = 0) -> list[Pair]:
    """``n`` distinct sentence pairs, drawn with a seeded generator (the same list for the same seed)."""
    positive_int(n, "n")
    non_negative_int(seed, "seed")
    rng, seen, pairs = random.Random(seed), set(), []
    for _ in range(100 * n):
        pair = make_pair(rng)
        if pair.source not in seen:
            seen.add(pair.source)
            pairs.append(pair)
            if len(pairs) == n:
                return pairs
    raise ValueError(f"could not draw {n} distinct sentences (the toy grammar has fewer); ask for fewer.")


def split_pairs(pairs: Sequence[Pair], fractions: tuple[float, float] = (0.1, 0.1)) -> tuple[list[Pair], list[Pair], list[Pair]]:
    """Train, validation and test lists (validation and test take the given fractions, from the end)."""
    n_val, n_test = (int(round(f * len(pairs))) for f in fractions)
    if n_val < 1 or n_test < 1 or n_val + n_test >= len(pairs):
        raise ValueError(f"fractions {fractions} of {len(pairs)} pairs leave an empty split; draw more pairs.")
    n_train = len(pairs) - n_val - n_test
    return list(pairs[:n_train]), list(pairs[n_train:n_train + n_val]), list(pairs[n_train + n_val:])


class WordVocab:
    """Words <-> ids, with PAD = 0, BOS = 1, EOS = 2 and then the words in sorted order."""

    def __init__(self, words: Sequence[str]) -> None:
        self.itos = [PAD, BOS, EOS] + sorted(set(words) - {PAD, BOS, EOS})
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        self.pad, self.bos, self.eos = 0, 1, 2

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, words: Sequence[str]) -> list[int]:
        unknown = [w for w in words if w not in self.stoi]
        if unknown:
            raise ValueError(f"words outside the vocabulary: {unknown[:5]}; build WordVocab from every language word.")
        return [self.stoi[w] for w in words]

    def decode(self, ids: Sequence[int]) -> list[str]:
        """Words up to the first EOS (PAD and BOS are dropped)."""
        words = []
        for i in ids:
            i = int(i)
            if i == self.eos:
                break
            if i not in (self.pad, self.bos):
                words.append(self.itos[i])
        return words


def vocabularies() -> tuple[WordVocab, WordVocab]:
    """The source (English) and target vocabularies: every word of the toy lexicon."""
    return WordVocab(list(LEXICON)), WordVocab(list(LEXICON.values()))


def encode_pairs(pairs: Sequence[Pair], src_vocab: WordVocab, tgt_vocab: WordVocab) -> dict[str, Tensor]:
    """Padded tensors for teacher forcing: ``src``, ``src_pad_mask`` (True at real words), ``tgt_in``
    (BOS + target) and ``tgt_out`` (target + EOS, -100 at padding, ignored by the loss)."""
    if not pairs:
        raise ValueError("no pairs to encode.")
    s_len = max(len(p.source) for p in pairs)
    t_len = max(len(p.target) for p in pairs) + 1
    src = torch.full((len(pairs), s_len), src_vocab.pad, dtype=torch.long)
    tgt_in = torch.full((len(pairs), t_len), tgt_vocab.pad, dtype=torch.long)
    tgt_out = torch.full((len(pairs), t_len), -100, dtype=torch.long)
    for i, p in enumerate(pairs):
        s, t = src_vocab.encode(p.source), tgt_vocab.encode(p.target)
        src[i, :len(s)] = torch.tensor(s)
        tgt_in[i, :len(t) + 1] = torch.tensor([tgt_vocab.bos] + t)
        tgt_out[i, :len(t) + 1] = torch.tensor(t + [tgt_vocab.eos])
    return {"src": src, "src_pad_mask": src != src_vocab.pad, "tgt_in": tgt_in, "tgt_out": tgt_out}


def word_for_word(pair: Pair) -> tuple[str, ...]:
    """The baseline that does not reorder: each English word replaced by its translation, in English order."""
    return tuple(LEXICON[w] for w in pair.source)


__all__ = ["ADJECTIVES", "ADVERBS", "BOS", "DETERMINERS", "EOS", "LEXICON", "NOUNS", "PAD", "Pair", "VERBS", "WordVocab",
           "encode_pairs", "make_pair", "make_pairs", "split_pairs", "vocabularies", "word_for_word"]
