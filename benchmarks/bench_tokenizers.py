"""Benchmark for chapter 01 (tokenization): BPE training and encoding speed.

* Training on Tiny Shakespeare with GPT-2 pre-tokenization, to vocab 512 and 4,096:
  the course's incremental trainer vs the naive recount-every-pair loop vs the
  Hugging Face ``tokenizers`` library (Rust, multi-threaded). One run each.
* Encoding Tiny Shakespeare with GPT-2's files: the course's pure-Python
  encoder (first pass with an empty pre-token cache, and a warm pass) vs ``tiktoken``.

Writes benchmarks/results/tokenizers.json, which chapter 01 reads and quotes.
Run: ``python benchmarks/bench_tokenizers.py`` (a few minutes on 2 cores; the
naive trainer at 4,096 takes most of it).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

from course.data import tinyshakespeare
from course.tokenizers import (
    BPETokenizer,
    bytes_to_text,
    count_pairs,
    gpt2_file_paths,
    pretokenize,
    text_to_bytes,
    train_bpe,
    train_bpe_naive,
    word_counts,
)

RESULTS = Path(__file__).resolve().parent / "results" / "tokenizers.json"


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def train_hf(text: str, vocab_size: int):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator([text], trainer=trainer)
    return tok


def bench_training(text: str, vocab_size: int, log) -> dict:
    """End to end (pre-tokenize, count, merge) for all three; the merge loop alone for ours and naive."""
    ours, t_ours = timed(BPETokenizer.train, text, vocab_size)
    words, t_count = timed(lambda: word_counts(pretokenize(text)))
    fast, t_fast_loop = timed(train_bpe, words, vocab_size)
    naive, t_naive_loop = timed(train_bpe_naive, words, vocab_size)
    hf, t_hf = timed(train_hf, text, vocab_size)
    assert naive.merges == fast.merges == ours.merges, "the naive and incremental trainers disagree"
    t_naive = t_count + t_naive_loop  # the naive trainer end to end: the same counting, then its loop
    log(f"  vocab {vocab_size}: ours {t_ours:.2f} s (loop {t_fast_loop:.2f} s), naive {t_naive:.2f} s "
        f"(loop {t_naive_loop:.2f} s), tokenizers {t_hf:.2f} s")
    # How many of our merges the library also learned, and where the two first part ways.
    ours_list = [f"{bytes_to_text(ours.vocab[a])} {bytes_to_text(ours.vocab[b])}" for a, b in ours.merges]
    hf_list = [" ".join(m) if isinstance(m, (list, tuple)) else m for m in json.loads(hf.to_str())["model"]["merges"]]
    ours_merges, hf_merges = set(ours_list), set(hf_list)
    first = next((k for k, (x, y) in enumerate(zip(ours_list, hf_list)) if x != y), None)
    return {
        "vocab_size": vocab_size,
        "merges": len(ours.merges),
        "ours_s": round(t_ours, 3),
        "naive_s": round(t_naive, 3),
        "hf_tokenizers_s": round(t_hf, 3),
        "pretokenize_and_count_s": round(t_count, 3),
        "ours_merge_loop_s": round(t_fast_loop, 3),
        "naive_merge_loop_s": round(t_naive_loop, 3),
        "speedup_vs_naive": round(t_naive / t_ours, 1),
        "speedup_vs_naive_merge_loop": round(t_naive_loop / t_fast_loop, 1),
        "slowdown_vs_hf": round(t_ours / t_hf, 2),
        "merges_shared_with_hf": round(len(ours_merges & hf_merges) / len(ours_merges), 4),
        "first_difference_with_hf": None if first is None else pair_counts_at(words, ours, first, ours_list[first], hf_list[first]),
    }


def pair_counts_at(words, ours: BPETokenizer, k: int, ours_merge: str, hf_merge: str) -> dict:
    """After our first ``k`` merges, how often the pair we merge next and the pair HF merges next occur."""
    before = ours.truncated(k)
    counts: dict = {}
    for word, f in words.items():
        count_pairs(before._bpe(word), counts, f)

    def count(merge: str) -> int:
        left, right = (before._ids[text_to_bytes(t)] for t in merge.split(" "))
        return counts.get((left, right), 0)

    return {"merge_index": k, "ours": ours_merge, "ours_count": count(ours_merge), "hf": hf_merge, "hf_count": count(hf_merge)}


def bench_encoding(text: str, log) -> dict:
    import tiktoken
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    from tiktoken_ext.openai_public import r50k_pat_str

    encoder_json, vocab_bpe = gpt2_file_paths()
    os.environ["TIKTOKEN_CACHE_DIR"] = ""
    ranks = data_gym_to_mergeable_bpe_ranks(str(vocab_bpe), str(encoder_json))
    ref = tiktoken.Encoding("gpt2-local", pat_str=r50k_pat_str, mergeable_ranks=ranks, special_tokens={"<|endoftext|>": 50256})
    megabytes = len(text.encode("utf-8")) / 1e6

    ours = BPETokenizer.from_gpt2_files()
    ids, t_cold = timed(ours.encode, text)  # empty pre-token cache
    t_warm = min(timed(ours.encode, text)[1] for _ in range(3))
    expected = ref.encode(text, allowed_special="all")
    t_tik = min(timed(ref.encode, text, allowed_special="all")[1] for _ in range(3))
    assert ids == expected, "our ids differ from tiktoken's"
    log(f"  encoding: ours {megabytes / t_cold:.2f} MB/s cold, {megabytes / t_warm:.2f} MB/s warm; tiktoken {megabytes / t_tik:.2f} MB/s")
    return {
        "megabytes": round(megabytes, 3),
        "tokens": len(ids),
        "ours_cold_mb_s": round(megabytes / t_cold, 2),
        "ours_warm_mb_s": round(megabytes / t_warm, 2),
        "tiktoken_mb_s": round(megabytes / t_tik, 2),
        "tiktoken_over_ours_cold": round(t_cold / t_tik, 1),
        "tiktoken_over_ours_warm": round(t_warm / t_tik, 1),
        "same_ids_as_tiktoken": ids == expected,
    }


def main() -> None:
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    corpus = tinyshakespeare()
    if corpus.is_fallback:
        sys.exit("Tiny Shakespeare is not available: set COURSE_DATA_DIR.")
    text = corpus.text
    import tokenizers

    results = {
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "tokenizers": tokenizers.__version__,
        },
        "corpus": {"name": corpus.name, "characters": len(text)},
        "training": [],
    }
    log("encoding with GPT-2's files ...")
    results["encoding"] = bench_encoding(text, log)
    for vocab_size in (512, 4096):
        log(f"training to vocab {vocab_size} ...")
        results["training"].append(bench_training(text, vocab_size, log))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(RESULTS)
    log(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
