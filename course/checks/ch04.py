"""Checks for the exercises of chapter 04 (attention in PyTorch and the GPT model).

* `check_block_forward`: one pre-norm Transformer block, x + attn(norm1(x)) then + mlp(norm2(x)).
* `check_future_leak`: a test that measures whether a model's earlier outputs see a later token.
* `check_count_parameters`: the parameter count of a `GPTConfig`, by formula, without building the model.

Each check builds its own inputs and names the classic mistake it recognises.
"""

from __future__ import annotations

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


@exercise_check("future_leak")
def check_future_leak(future_leak: Callable[..., float]) -> None:
    """Causal models must score 0, leaky ones more; token t must really change; only positions < t count."""
    vocab = 13
    idx = torch.randint(0, vocab, (2, 10), generator=torch.Generator().manual_seed(3))
    before = idx.clone()
    causal, bidirectional, peek = _CausalModel(vocab), _BidirectionalModel(vocab), _PeekOneAhead(vocab)
    with torch.no_grad():
        leak = call(future_leak, causal, idx, 5, vocab)
        expect(torch.equal(idx, before), "future_leak changed the caller's idx in place: change a copy (idx.clone()).")
        try:
            leak = float(leak)
        except (TypeError, ValueError):
            raise ExerciseFailed(f"future_leak must return a number (the largest change); it returned {leak!r}.") from None
        expect(leak == leak, "future_leak returned nan.")
        if leak > 1e-5:
            raise ExerciseFailed(
                f"a causal GPT got a leak of {leak:.3g}, expected 0. Compare only the outputs at positions "
                "before t (logits[:, :t]): the output at t itself is allowed to change, it sees token t."
            )
        leak_bi = float(call(future_leak, bidirectional, idx, 5, vocab))
        if leak_bi <= 1e-6:
            raise ExerciseFailed(
                "a model without a causal mask got a leak of 0: did you change the token at position t to a "
                "different id (for example (idx[:, t] + 1) % vocab_size) and run the model on both versions?"
            )
        for t in (3, 9):
            leak_peek = float(call(future_leak, peek, idx, t, vocab))
            if leak_peek <= 1e-6:
                raise ExerciseFailed(
                    f"a model whose position {t - 1} reads token {t} got a leak of 0 (t={t}): compare every "
                    "position before t, including t - 1 (logits[:, :t], not logits[:, :t - 1])."
                )
        expect(float(call(future_leak, peek, idx, 0, vocab)) == 0.0,
               "with t = 0 there is no earlier position to leak into: the leak must be 0.")
        changed = idx.clone()
        changed[:, 5] = (changed[:, 5] + 1) % vocab
        expected = (bidirectional(changed)[:, :5] - bidirectional(idx)[:, :5]).abs().max().item()
        expect(abs(leak_bi - expected) <= 1e-5 + 1e-3 * expected,
               f"for the unmasked model you report {leak_bi:.4g}; changing token 5 to (id + 1) % vocab_size "
               f"moves the earlier logits by at most {expected:.4g}. Return the largest absolute change.")


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
        expect(isinstance(got, int) and not isinstance(got, bool),
               f"count_parameters must return an int; it returned {type(got).__name__} for {name}.")
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
        if c.mlp == "swiglu":
            hints[-c.n_layer * (d * h + (h if c.bias else 0))] = "SwiGLU has three matrices (gate, up, down), not two."
        hint = hints.get(diff, "count each layer's weights and biases: attention (qkv and proj), MLP, two norms per "
                               "block, then the embeddings, the final norm and (if untied) the head.")
        raise ExerciseFailed(f"for {name} you count {got:,} parameters, the model has {want:,} "
                             f"(difference {diff:+,}): {hint}")


__all__ = ["check_block_forward", "check_count_parameters", "check_future_leak"]
