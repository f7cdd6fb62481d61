"""Helpers of the chapter 11 chat tests: a tiny GPT in the chat vocabulary, and replies scripted through the logits."""

from __future__ import annotations

import torch
from torch import Tensor

from course.chat_format import SPECIAL_TOKENS, ChatTokenizer
from course.model import GPT, GPTConfig

TOK = ChatTokenizer.for_shipped_model()


def tiny_model(block_size: int = 128, seed: int = 0, **overrides) -> GPT:
    """A randomly initialised 1-layer GPT over the chat vocabulary (float32, eval mode)."""
    torch.manual_seed(seed)
    config = dict(vocab_size=TOK.vocab_size, block_size=block_size, n_layer=1, n_head=2, n_embd=16, dropout=0.0)
    config.update(overrides)
    return GPT(GPTConfig(**config)).eval()


def encode_script(text: str, tokenizer: ChatTokenizer = TOK) -> list[int]:
    """Ids of ``text`` in which the special tokens' text stands for the special ids."""
    ids: list[int] = []
    i = 0
    while i < len(text):
        special = next((s for s in SPECIAL_TOKENS if text.startswith(s, i)), None)
        if special is not None:
            ids.append(tokenizer.special_ids[special])
            i += len(special)
        else:
            ids.extend(tokenizer.encode(text[i]))
            i += 1
    return ids


class ScriptedReplies:
    """A logits processor that makes the model write ``segments``: +``bonus`` to the next scripted token.

    Segment k is what the model writes after the k-th ``<|assistant|>`` of the
    reply (the prompt's last one is segment 0; the one the engine forces after a
    calculator result starts segment 1...). When a segment is done, or its next
    token is masked out by the engine (logit -inf), the bonus goes to ``<|end|>``.
    """

    def __init__(self, segments: list[str], tokenizer: ChatTokenizer = TOK, bonus: float = 100.0) -> None:
        self.segments = [encode_script(s, tokenizer) for s in segments]
        self.tok = tokenizer
        self.bonus = bonus
        self.base: int | None = None

    def __call__(self, logits: Tensor, ids: Tensor) -> Tensor:
        row = ids[0].tolist()
        starts = [i for i, t in enumerate(row) if t == self.tok.assistant_id]
        if not starts:  # a sliding window lost the start of the reply: no script any more
            return logits
        if self.base is None:
            self.base = len(starts)
        k = len(starts) - self.base
        written = row[starts[-1] + 1:]
        script = self.segments[k] if k < len(self.segments) else []
        want = self.tok.end_id
        if written == script[: len(written)] and len(written) < len(script):
            want = script[len(written)]
        if torch.isinf(logits[0, want]):
            want = self.tok.end_id
        out = logits.clone()
        out[0, want] += self.bonus
        return out
