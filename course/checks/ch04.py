"""Checks for the exercises of chapter 04 (attention in PyTorch and the GPT model).

* `check_block_forward`: one pre-norm Transformer block, x + attn(norm1(x)) then + mlp(norm2(x)).
* `check_future_leak`: a test that measures whether a model's earlier outputs see a later token.
* `check_count_parameters`: the parameter count of a `GPTConfig`, by formula, without building the model.

Each check builds its own inputs and names the classic mistake it recognises.
"""

from __future__ import annotations

import numbers
from dataclasses import replace
from typing import Callable

import torch
from torch import Tensor, nn

from . import ExerciseFailed, call, exercise_check, expect, expect_close


# --------------------------------------------------------------------------- 1. one block


def _block_parts(seed: int = 0, d: int = 16, n_head: int = 2):
    from course.model import MLP, GPTConfig, make_norm
    from course.attention import CausalSelfAttention

    torch.manual_seed(seed)
    config = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=n_head, n_embd=d)
    norm1, norm2 = make_norm(config), make_norm(config)
    with torch.no_grad():  # non-trivial norms, so that using the wrong one shows
        for norm in (norm1, norm2):
            norm.weight.normal_(1.0, 0.3)
            norm.bias.normal_(0.0, 0.3)
    layer = CausalSelfAttention(d, n_head).eval()
    mlp = MLP(config).eval()

    def attn(h: Tensor) -> Tensor:
        return layer(h)[0]

    return norm1, attn, norm2, mlp


@exercise_check("block_forward")
def check_block_forward(block_forward: Callable[..., Tensor]) -> None:
    """Compare with the pre-norm block, and recognise post-norm, missing residuals and mixed-up norms."""
    norm1, attn, norm2, mlp = _block_parts()
    x = torch.randn(2, 7, 16, generator=torch.Generator().manual_seed(1))
    before = x.clone()
    with torch.no_grad():
        out = call(block_forward, x, norm1, attn, norm2, mlp)
        expect(isinstance(out, Tensor), f"block_forward must return a tensor; it returned {type(out).__name__}.")
        expect(torch.equal(x, before), "block_forward changed its input x in place: write x = x + ..., not x += ....")
        expect(tuple(out.shape) == tuple(x.shape),
               f"the block must keep the shape (batch, time, d_model) = {tuple(x.shape)}; got {tuple(out.shape)}.")

        h = x + attn(norm1(x))
        reference = h + mlp(norm2(h))
        mistakes = {
            "post-norm: you normalised after the residual sum, norm(x + f(x)). This exercise is the pre-norm "
            "block: x + f(norm(x)), the residual stream itself is never normalised.":
                norm2((a := norm1(x + attn(x))) + mlp(a)),
            "no residual connection around the attention: add x back, h = x + attn(norm1(x)).":
                (a := attn(norm1(x))) + mlp(norm2(a)),
            "no residual connection around the MLP: return h + mlp(norm2(h)), not mlp(norm2(h)).": mlp(norm2(h)),
            "you added the *normalised* x back: the residual must carry x itself, x + attn(norm1(x)).":
                (a := norm1(x) + attn(norm1(x))) + mlp(norm2(a)),
            "the MLP saw the block's input x instead of h = x + attn(norm1(x)): the two sub-layers run one "
            "after the other, the MLP reads the stream after the attention's residual.":
                h + mlp(norm2(x)),
            "the two norms are swapped: norm1 goes before the attention, norm2 before the MLP.":
                (a := x + attn(norm2(x))) + mlp(norm1(a)),
            "you used norm1 for both sub-layers: the MLP reads norm2(h); each sub-layer has its own norm.":
                h + mlp(norm1(h)),
            "the MLP ran before the attention: first h = x + attn(norm1(x)), then h + mlp(norm2(h)).":
                (a := x + mlp(norm2(x))) + attn(norm1(a)),
            "you normalised the sub-layers' outputs, x + norm(f(x)): in a pre-norm block the norm is applied to "
            "the sub-layer's input, x + f(norm(x)).":
                (a := x + norm1(attn(x))) + norm2(mlp(a)),
            "you normalised the block's output: a pre-norm block returns h + mlp(norm2(h)) as it is (the model "
            "applies one final norm after the last block).":
                norm2(reference),
        }
        if not torch.allclose(out, reference, atol=1e-5):
            for message, wrong in mistakes.items():
                if torch.allclose(out, wrong, atol=1e-5):
                    raise ExerciseFailed(message)
        expect_close(out, reference, "the block's output", rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- 2. the leak test


class _CausalModel(nn.Module):
    """A small GPT: no position ever sees a later token."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        from course.model import GPT, GPTConfig

        torch.manual_seed(0)
        self.gpt = GPT(GPTConfig(vocab_size=vocab, block_size=16, n_layer=2, n_head=2, n_embd=16)).eval()

    def forward(self, idx: Tensor) -> Tensor:
        return self.gpt(idx)[0]


class _BidirectionalModel(nn.Module):
    """Self-attention without a mask: every position sees every other."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(vocab, 16)
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)
        self.head = nn.Linear(16, vocab)
        self.eval()

    def forward(self, idx: Tensor) -> Tensor:
        x = self.emb(idx)
        return self.head(x + self.attn(x, x, x, need_weights=False)[0])


class _PeekOneAhead(nn.Module):
    """Position i sees token i + 1 and nothing else later: only the output right before t leaks."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(vocab, vocab)

    def forward(self, idx: Tensor) -> Tensor:
        nxt = torch.cat((idx[:, 1:], idx[:, -1:]), dim=1)
        return self.emb(idx) + self.emb(nxt)


class _Recorder(nn.Module):
    """Wraps a test model: refuses token ids outside the vocabulary, records every call (input, output)."""

    def __init__(self, model: nn.Module, vocab: int) -> None:
        super().__init__()
        self.model, self.vocab = model, vocab
        self.calls: list[tuple[Tensor, Tensor]] = []

    def forward(self, idx: Tensor) -> Tensor:
        if not isinstance(idx, Tensor):
            raise ExerciseFailed(f"the model was called with a {type(idx).__name__}; pass it a tensor of token ids.")
        if idx.is_floating_point() or idx.is_complex():
            raise ExerciseFailed(f"the model was given token ids of dtype {idx.dtype}: ids are integers "
                                 "(keep the copy's dtype: idx.clone(), then assign integer ids).")
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.vocab):
            bad = int(idx.max()) if int(idx.max()) >= self.vocab else int(idx.min())
            raise ExerciseFailed(
                f"the model was given the token id {bad}, outside 0 .. {self.vocab - 1} (vocab_size = {self.vocab}): "
                "keep the changed id valid, for example (idx[:, t] + 1) % vocab_size."
            )
        out = self.model(idx)
        self.calls.append((idx.detach().clone(), out.detach().clone()))
        return out


def _recorded_runs(calls: list[tuple[Tensor, Tensor]], idx: Tensor, t: int):
    """Sort the recorded rows into runs on sequence b of idx (or its first L tokens): original or changed at t.

    Returns ``(original, changed, other)``: dicts ``(b, L) -> list of output rows`` for the first two, and
    the number of rows that are neither (changed somewhere else than at t).
    """
    original: dict[tuple[int, int], list[Tensor]] = {}
    changed: dict[tuple[int, int], list[Tensor]] = {}
    other = 0
    for inp, out in calls:
        inp = inp.long()
        if inp.dim() == 1 and out.dim() == 2:
            inp, out = inp[None], out[None]
        if inp.dim() != 2 or out.dim() != 3 or out.shape[:2] != inp.shape or inp.shape[1] <= t:
            continue
        length = inp.shape[1]
        for row, logits in zip(inp, out):
            for b in range(idx.shape[0]):
                ref = idx[b, :length]
                if torch.equal(row, ref):
                    original.setdefault((b, length), []).append(logits)
                    break
                if torch.equal(row[:t], ref[:t]) and torch.equal(row[t + 1 :], ref[t + 1 :]):
                    changed.setdefault((b, length), []).append(logits)
                    break
            else:
                other += 1
    return original, changed, other


def _largest_change(original, changed, positions: slice, reduce: str = "max") -> float | None:
    """The largest (or mean) absolute change of the logits at ``positions`` over the recorded pairs."""
    values = [
        (c[positions] - o[positions]).abs()
        for key in original.keys() & changed.keys()
        for o in original[key]
        for c in changed[key]
    ]
    values = [v for v in values if v.numel()]
    if not values:
        return None
    if reduce == "mean":  # over every sequence, position and logit, as .abs().mean() on the batch does
        return float(torch.cat([v.flatten() for v in values]).mean())
    return max(float(v.max()) for v in values)


def _leak_of(future_leak: Callable[..., float], model: nn.Module, idx: Tensor, t: int, vocab: int):
    """Run the learner's function on a recording wrapper of ``model``: (the number returned, recorder)."""
    recorder = _Recorder(model, vocab)
    before = idx.clone()
    leak = call(future_leak, recorder, idx, t, vocab)
    expect(torch.equal(idx, before), "future_leak changed the caller's idx in place: change a copy (idx.clone()).")
    if isinstance(leak, Tensor):
        expect(leak.numel() == 1, f"future_leak returned a tensor of shape {tuple(leak.shape)}: reduce it to one number "
                                  "(.max()) and return it as a float (.item()).")
    try:
        value = float(leak)
    except (TypeError, ValueError):
        raise ExerciseFailed(f"future_leak must return a number (the largest change); it returned {leak!r}.") from None
    expect(value == value, "future_leak returned nan.")
    return value, recorder


def _explain_runs(recorder: _Recorder, idx: Tensor, t: int) -> str:
    """Say what was wrong with the model runs when no (original, changed) pair was recorded."""
    original, changed, other = _recorded_runs(recorder.calls, idx, t)
    if not recorder.calls:
        return "future_leak never called the model: run it on idx and on the changed copy."
    if other and not changed:
        return ("the model saw a sequence changed at other positions than t: change only the token at position t "
                "(changed[:, t] = ...), and keep the rest of the copy equal to idx.")
    if not changed:
        return (f"the model never saw a copy of idx whose token at position t = {t} differs from the original: "
                "give position t a different, valid id, for example (idx[:, t] + 1) % vocab_size, then run the "
                "model on idx and on the copy.")
    if not original:
        return "the model never saw the original idx: run it on idx as well as on the changed copy, and compare."
    missing = sorted({b for b, _ in original} - {b for b, _ in changed})
    if missing:
        return (f"in sequence {missing[0]} of the batch the token at position t kept its id: every sequence needs "
                "a different id there, for example (idx[:, t] + 1) % vocab_size.")
    return "run the model on idx and on the changed copy, with the same length, and compare the two outputs."


def _check_reported_value(leak: float, recorder: _Recorder, idx: Tensor, t: int, what: str) -> None:
    """The number returned must be the largest absolute change at positions < t of the learner's own two runs."""
    original, changed, _ = _recorded_runs(recorder.calls, idx, t)
    expected = _largest_change(original, changed, slice(None, t))
    if expected is None or {b for b, _ in original} - {b for b, _ in changed}:
        raise ExerciseFailed(f"for {what}: " + _explain_runs(recorder, idx, t))
    if abs(leak - expected) <= 1e-6 + 1e-4 * expected:
        return
    slips = [
        (slice(None, t - 1), "max", "compare every position before t, including t - 1 (logits[:, :t], "
                                    "not logits[:, :t - 1])."),
        (slice(None, t + 1), "max", "you included position t itself: compare only the outputs at positions "
                                    "before t (logits[:, :t]); the output at t is allowed to change, it sees token t."),
        (slice(None), "max", "you compared every position: compare only the outputs at positions before t "
                             "(logits[:, :t])."),
        (slice(None, t), "mean", "you returned the mean absolute change: return the largest one (.abs().max())."),
    ]
    for positions, reduce, message in slips:
        alternative = _largest_change(original, changed, positions, reduce)
        if alternative is not None and abs(leak - alternative) <= 1e-6 + 1e-4 * abs(alternative):
            raise ExerciseFailed(f"for {what} you return {leak:.4g}: {message}")
    raise ExerciseFailed(
        f"for {what} you return {leak:.4g}, but your two runs of the model differ by at most {expected:.4g} at the "
        "positions before t: return the largest absolute change, (after[:, :t] - before[:, :t]).abs().max().item()."
    )


@exercise_check("future_leak")
def check_future_leak(future_leak: Callable[..., float]) -> None:
    """Causal models must score 0, leaky ones more; token t must really change; only positions < t count.

    The test models are wrapped: the check sees which sequences the learner ran, and recomputes the
    largest change from those very runs, so any different valid id at position t is accepted.
    """
    vocab = 13
    idx = torch.randint(0, vocab, (2, 10), generator=torch.Generator().manual_seed(3))
    causal, bidirectional, peek = _CausalModel(vocab), _BidirectionalModel(vocab), _PeekOneAhead(vocab)
    with torch.no_grad():
        leak, _ = _leak_of(future_leak, causal, idx, 5, vocab)
        if leak > 1e-5:
            raise ExerciseFailed(
                f"a causal GPT got a leak of {leak:.3g}, expected 0. Compare only the outputs at positions "
                "before t (logits[:, :t]): the output at t itself is allowed to change, it sees token t."
            )
        leak_bi, recorder = _leak_of(future_leak, bidirectional, idx, 5, vocab)
        if leak_bi <= 1e-6:
            original, changed, _ = _recorded_runs(recorder.calls, idx, 5)
            if _largest_change(original, changed, slice(None, 5)) is None:
                raise ExerciseFailed("a model without a causal mask got a leak of 0: " + _explain_runs(recorder, idx, 5))
        _check_reported_value(leak_bi, recorder, idx, 5, "a model without a causal mask (t = 5)")
        for t in (3, 9):
            leak_peek, recorder = _leak_of(future_leak, peek, idx, t, vocab)
            if leak_peek <= 1e-6:
                original, changed, _ = _recorded_runs(recorder.calls, idx, t)
                if _largest_change(original, changed, slice(None, t)) is not None:
                    raise ExerciseFailed(
                        f"a model whose position {t - 1} reads token {t} got a leak of 0 (t={t}): compare every "
                        "position before t, including t - 1 (logits[:, :t], not logits[:, :t - 1])."
                    )
            _check_reported_value(leak_peek, recorder, idx, t, f"a model whose position {t - 1} reads token {t} (t = {t})")


# --------------------------------------------------------------------------- 3. counting


def _configs():
    from course.model import GPTConfig

    small = dict(vocab_size=65, block_size=32, n_layer=3, n_head=4, n_embd=48)
    variants = [
        ("the default (learned positions, LayerNorm, GELU, bias, tied head)", {}),
        ("an untied head", dict(tie_weights=False)),
        ("no biases", dict(bias=False)),
        ("RoPE (no position table)", dict(positional="rope")),
        ("sinusoidal positions (a fixed table, no parameters)", dict(positional="sinusoidal")),
        ("RMSNorm", dict(norm="rmsnorm")),
        ("a SwiGLU MLP", dict(mlp="swiglu")),
        ("a Llama-like model (RoPE, RMSNorm, SwiGLU, no bias, untied)",
         dict(positional="rope", norm="rmsnorm", mlp="swiglu", bias=False, tie_weights=False)),
        ("GPT-2 small", dict(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768)),
    ]
    return [(name, GPTConfig(**{**small, **kw})) for name, kw in variants]


def _actual(config) -> int:
    from course.model import GPT

    with torch.device("meta"):  # shapes only: no memory, no time
        return GPT(config).num_parameters()


@exercise_check("count_parameters")
def check_count_parameters(count_parameters: Callable[..., int]) -> None:
    """Compare with the built model's count on configurations that each change one thing."""
    for name, config in _configs():
        got = call(count_parameters, config)
        expect(isinstance(got, numbers.Integral) and not isinstance(got, bool),
               f"count_parameters must return an int; it returned {type(got).__name__} for {name}.")
        got = int(got)
        want = _actual(config)
        if got == want:
            continue
        c, diff = config, got - want
        d, v, h = c.n_embd, c.vocab_size, c.hidden
        hints = {
            v * d: "the head is counted twice: with tie_weights=True it *is* the token embedding.",
            -v * d: "the LM head is missing: with tie_weights=False it is a separate (vocab_size x n_embd) matrix.",
            c.block_size * d: "a position table counted that has no parameters (RoPE and sinusoidal are computed).",
            -c.block_size * d: "the learned position table (block_size x n_embd) is missing.",
            -d: "a d-sized vector is missing: the final norm's weight?",
            -2 * d: "the final norm (weight and bias) is missing.",
            (2 * c.n_layer + 1) * d: "RMSNorm has a weight and no bias: count d per norm, not 2d.",
        }
        b = 1 if c.bias else 0
        norm = d if c.norm == "rmsnorm" else d + b * d
        hints.update({
            v: "the tied (or untied) head has no bias: it is a matrix of vocab_size x n_embd, nothing more.",
            -c.n_layer * (d * d + b * d): "the attention's output projection (n_embd x n_embd, plus its bias) is missing.",
            -c.n_layer * norm: "each block has two norms (one before the attention, one before the MLP); you count one.",
            -(want - _actual(replace(c, n_layer=c.n_layer - 1))): "one block too few: count n_layer blocks.",
        })
        if c.bias:
            hints[-3 * c.n_layer * d] = "the qkv projection's bias (3 x n_embd per block) is missing."
            hints[_actual(replace(c, bias=False)) - want] = ("no bias is counted: with bias=True every linear layer has "
                                                             "one (qkv, proj, the MLP's) and LayerNorm has one too.")
        if c.mlp == "swiglu":
            hints[-c.n_layer * (d * h + (h if c.bias else 0))] = "SwiGLU has three matrices (gate, up, down), not two."
        hint = hints.get(diff, "count each layer's weights and biases: attention (qkv and proj), MLP, two norms per "
                               "block, then the embeddings, the final norm and (if untied) the head.")
        raise ExerciseFailed(f"for {name} you count {got:,} parameters, the model has {want:,} "
                             f"(difference {diff:+,}): {hint}")


__all__ = ["check_block_forward", "check_count_parameters", "check_future_leak"]
