"""Three families of Transformer from the same blocks (chapter 10).

The GPT of chapter 04 is one way to use Transformer blocks. Two more, built here
from the same parts (`course.model.MLP`, `make_norm`, learned positions) and the
same `GPTConfig`:

* **decoder-only** (GPT): causal self-attention; every position predicts the next
  token. That is `course.model.GPT` itself.
* **encoder-only** (BERT): *bidirectional* self-attention, every position sees
  every other one; pretrained by **masked language modelling** (`mask_tokens`:
  hide 15% of the tokens and predict them from both sides), then used to
  *understand* text: `MaskedLM`, `EncoderClassifier`.
* **encoder-decoder** (the original Transformer, T5): an encoder reads the source
  bidirectionally; a decoder writes the target causally and, in every block,
  **cross-attends** to the encoder's output (queries from the decoder, keys and
  values from the encoder). Translation is its classic task: `Seq2Seq`.

`attention_pattern(kind, ...)` gives the three patterns as boolean masks (True:
may attend), for pictures. `MultiHeadAttention` covers all three: causal or not,
self or cross, with a padding mask over the keys; with ``return_weights=True`` it
computes the weights explicitly (for alignment plots), otherwise it calls
PyTorch's fused ``scaled_dot_product_attention``. Tests check it against
``torch.nn.MultiheadAttention``.

Padding: batches of unequal lengths are padded; ``pad_mask`` (batch, time) is
True at real tokens. Keys at padded positions get no attention weight, so a
padded sequence gives the same outputs at its real positions as the unpadded one.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import causal_mask
from .evaluate import eval_mode
from .model import GPT, MLP, GPTConfig, make_norm
from .positional import LearnedPositionalEmbedding
from .validate import fraction, one_of, positive_int

KINDS = ("causal", "bidirectional", "cross", "prefix")


def attention_pattern(kind: str, t_q: int, t_k: int | None = None, prefix: int = 0) -> Tensor:
    """Boolean (t_q, t_k) mask, True where query i may attend to key j.

    ``"causal"`` (decoder self-attention: j <= i), ``"bidirectional"`` (encoder:
    all), ``"cross"`` (decoder queries over t_k encoder positions: all), or
    ``"prefix"`` (a prefix LM: the first ``prefix`` positions see each other, the
    rest is causal).
    """
    one_of(kind, KINDS, "kind")
    positive_int(t_q, "t_q")
    t_k = t_q if t_k is None or kind != "cross" else positive_int(t_k, "t_k")
    if kind == "causal":
        return causal_mask(t_q)
    if kind == "prefix":
        if not 0 <= prefix <= t_q:
            raise ValueError(f"prefix must be between 0 and t_q={t_q}, got {prefix}.")
        mask = causal_mask(t_q)
        mask[:prefix, :prefix] = True
        return mask
    return torch.ones(t_q, t_k, dtype=torch.bool)


class MultiHeadAttention(nn.Module):
    """Multi-head attention: self (``memory=None``) or cross (keys and values from ``memory``)."""

    def __init__(self, d_model: int, n_head: int, *, bias: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % n_head:
            raise ValueError(f"d_model={d_model} must be divisible by n_head={n_head}.")
        self.d_model, self.n_head, self.head_dim = d_model, n_head, d_model // n_head
        self.q = nn.Linear(d_model, d_model, bias=bias)
        self.kv = nn.Linear(d_model, 2 * d_model, bias=bias)  # keys and values in one matmul
        self.proj = nn.Linear(d_model, d_model, bias=bias)
        self.resid_dropout = nn.Dropout(dropout)

    def _split(self, x: Tensor) -> Tensor:  # (B, T, D) -> (B, H, T, hd)
        b, t, _ = x.shape
        return x.view(b, t, self.n_head, self.head_dim).transpose(1, 2)

    def forward(self, x: Tensor, memory: Tensor | None = None, *, causal: bool = False,
                pad_mask: Tensor | None = None, return_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """Attend from ``x`` (batch, t_q, d) over ``memory`` (batch, t_k, d; default: ``x`` itself).

        ``pad_mask`` (batch, t_k), True at real keys. Returns (output, weights or None);
        weights are (batch, heads, t_q, t_k).
        """
        source = x if memory is None else memory
        if x.dim() != 3 or x.shape[-1] != self.d_model or source.dim() != 3 or source.shape[-1] != self.d_model \
                or source.shape[0] != x.shape[0]:
            raise ValueError(f"expected x and memory of shape (batch, time, {self.d_model}) with the same batch; got "
                             f"{tuple(x.shape)} and {tuple(source.shape)}.")
        b, t_q, _ = x.shape
        t_k = source.shape[1]
        if causal and t_q != t_k:
            raise ValueError("causal attention is self-attention: queries and keys must be the same positions.")
        q = self._split(self.q(x))
        k, v = (self._split(z) for z in self.kv(source).split(self.d_model, dim=2))
        allowed = torch.ones(b, 1, t_q, t_k, dtype=torch.bool, device=x.device)
        if causal:
            allowed = allowed & attention_pattern("causal", t_q).to(x.device)
        if pad_mask is not None:
            if pad_mask.shape != (b, t_k) or pad_mask.dtype != torch.bool:
                raise ValueError(f"pad_mask must be a bool tensor of shape (batch, keys) = ({b}, {t_k}), True at real "
                                 f"tokens; got {pad_mask.dtype} {tuple(pad_mask.shape)}.")
            if not bool(pad_mask.any(dim=1).all()):
                raise ValueError("a sequence in the batch has no real token (pad_mask all False): drop it.")
            allowed = allowed & pad_mask[:, None, None, :]
        weights = None
        if return_weights:
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)
            weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
            y = weights @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        y = y.transpose(1, 2).contiguous().view(b, t_q, self.d_model)
        return self.resid_dropout(self.proj(y)), weights


class EncoderBlock(nn.Module):
    """Pre-norm block with bidirectional self-attention: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.norm1, self.norm2 = make_norm(config), make_norm(config)
        self.attn = MultiHeadAttention(config.n_embd, config.n_head, bias=config.bias, dropout=config.dropout)
        self.mlp = MLP(config)

    def forward(self, x: Tensor, pad_mask: Tensor | None = None, return_weights: bool = False):
        a, w = self.attn(self.norm1(x), pad_mask=pad_mask, return_weights=return_weights)
        x = x + a
        return x + self.mlp(self.norm2(x)), w


class DecoderBlock(nn.Module):
    """Causal self-attention, then cross-attention over the encoder's output, then the MLP (each pre-norm)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.norm1, self.norm2, self.norm3 = make_norm(config), make_norm(config), make_norm(config)
        self.self_attn = MultiHeadAttention(config.n_embd, config.n_head, bias=config.bias, dropout=config.dropout)
        self.cross_attn = MultiHeadAttention(config.n_embd, config.n_head, bias=config.bias, dropout=config.dropout)
        self.mlp = MLP(config)

    def forward(self, x: Tensor, memory: Tensor, memory_pad_mask: Tensor | None = None,
                return_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        x = x + self.self_attn(self.norm1(x), causal=True)[0]
        a, w = self.cross_attn(self.norm2(x), memory, pad_mask=memory_pad_mask, return_weights=return_weights)
        x = x + a
        return x + self.mlp(self.norm3(x)), w


_init = GPT._init_weights  # GPT-2's initialisation, the GPT's own


class _Embed(nn.Module):
    """Token embedding plus learned positions, with the checks every family needs."""

    def __init__(self, vocab_size: int, config: GPTConfig) -> None:
        super().__init__()
        self.vocab_size, self.block_size = vocab_size, config.block_size
        self.tok = nn.Embedding(vocab_size, config.n_embd)
        self.pos = LearnedPositionalEmbedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, idx: Tensor) -> Tensor:
        if not isinstance(idx, Tensor) or idx.dtype not in (torch.int64, torch.int32) or idx.dim() != 2:
            raise ValueError(f"expected token ids of shape (batch, time) and an integer dtype, got "
                             f"{getattr(idx, 'dtype', type(idx).__name__)} {tuple(getattr(idx, 'shape', ()))}.")
        if idx.shape[1] > self.block_size:
            raise ValueError(f"{idx.shape[1]} tokens exceed the context of block_size={self.block_size}: shorten "
                             "the sequences or make a model with a larger block_size.")
        if int(idx.min()) < 0 or int(idx.max()) >= self.vocab_size:
            raise ValueError(f"token ids must lie in 0..{self.vocab_size - 1}; got {int(idx.min())}..{int(idx.max())}.")
        return self.drop(self.tok(idx) + self.pos(seq_len=idx.shape[1]))


class Encoder(nn.Module):
    """Embeddings, encoder blocks and a final norm: one contextual vector per token, seeing both sides."""

    def __init__(self, config: GPTConfig, vocab_size: int | None = None) -> None:
        super().__init__()
        self.config = config
        self.embed = _Embed(vocab_size or config.vocab_size, config)
        self.blocks = nn.ModuleList(EncoderBlock(config) for _ in range(config.n_layer))
        self.norm_f = make_norm(config)

    def forward(self, idx: Tensor, pad_mask: Tensor | None = None,
                return_weights: bool = False) -> tuple[Tensor, list[Tensor]]:
        x, weights = self.embed(idx), []
        for block in self.blocks:
            x, w = block(x, pad_mask, return_weights)
            if w is not None:
                weights.append(w)
        return self.norm_f(x), weights


def mask_tokens(ids: Tensor, mask_id: int, vocab_size: int, *, p: float = 0.15, generator: torch.Generator | None = None,
                special: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """BERT's masking: choose each token with probability ``p`` (at least one per sequence); of the chosen, 80% become ``mask_id``,
    10% a random token and 10% stay as they are. Returns (inputs, targets) with targets -100 (ignored)
    at the tokens not chosen. ``special`` (bool, like ``ids``) marks tokens never chosen (padding).

    The 10% kept and 10% random keep the model from learning that only [MASK]
    positions matter: it must produce a good vector for every token.
    """
    fraction(p, "p")
    positive_int(vocab_size, "vocab_size")
    if not 0 <= mask_id < vocab_size:
        raise ValueError(f"mask_id must be a token id below vocab_size={vocab_size}, got {mask_id}.")
    u = torch.rand(ids.shape, generator=generator)
    eligible = torch.ones_like(ids, dtype=torch.bool) if special is None else ~special
    chosen = (u < p) & eligible
    # At least one token per sequence (that has any): with none chosen, the loss would average over nothing (NaN).
    # The eligible token with the smallest draw joins; no extra random numbers, so other rows are unchanged.
    empty = ~chosen.any(dim=-1, keepdim=True) & eligible.any(dim=-1, keepdim=True)
    if bool(empty.any()):
        first = torch.where(eligible, u, torch.full_like(u, 2.0)).argmin(dim=-1, keepdim=True)
        chosen |= empty & torch.zeros_like(chosen).scatter(-1, first, True)
    kind = torch.rand(ids.shape, generator=generator)
    inputs = ids.clone()
    inputs[chosen & (kind < 0.8)] = mask_id
    random_tokens = torch.randint(0, vocab_size, ids.shape, generator=generator)
    swap = chosen & (kind >= 0.8) & (kind < 0.9)
    inputs[swap] = random_tokens[swap]
    targets = torch.where(chosen, ids, torch.full_like(ids, -100))
    return inputs, targets


class MaskedLM(nn.Module):
    """An encoder with a language-model head tied to its embedding: predicts hidden tokens from both sides."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.apply(_init)
        self.head.weight = self.encoder.embed.tok.weight

    def forward(self, idx: Tensor, targets: Tensor | None = None,
                pad_mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        logits = self.head(self.encoder(idx, pad_mask)[0])
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100)
        return logits, loss


class EncoderClassifier(nn.Module):
    """An encoder and a linear head on the mean of its token vectors (padding excluded)."""

    def __init__(self, encoder: Encoder, n_classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.config.n_embd, positive_int(n_classes, "n_classes"))
        _init(self.head)

    def forward(self, idx: Tensor, labels: Tensor | None = None,
                pad_mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        h = self.encoder(idx, pad_mask)[0]
        keep = torch.ones(idx.shape, dtype=h.dtype, device=h.device) if pad_mask is None else pad_mask.to(h.dtype)
        pooled = (h * keep[..., None]).sum(1) / keep.sum(1, keepdim=True)
        logits = self.head(pooled)
        return logits, None if labels is None else F.cross_entropy(logits, labels)


class Seq2Seq(nn.Module):
    """Encoder-decoder: the encoder reads the source, the decoder writes the target and cross-attends to it.

    ``config.vocab_size`` is the source vocabulary; ``tgt_vocab_size`` the target's
    (default: the same). ``forward(src, tgt_in, tgt_out)``: teacher forcing, the
    decoder reads the target shifted right (starting with a BOS token) and predicts it.
    """

    def __init__(self, config: GPTConfig, tgt_vocab_size: int | None = None) -> None:
        super().__init__()
        self.config = config
        self.tgt_vocab_size = positive_int(tgt_vocab_size or config.vocab_size, "tgt_vocab_size")
        self.encoder = Encoder(config)
        self.embed = _Embed(self.tgt_vocab_size, config)
        self.blocks = nn.ModuleList(DecoderBlock(config) for _ in range(config.n_layer))
        self.norm_f = make_norm(config)
        self.head = nn.Linear(config.n_embd, self.tgt_vocab_size, bias=False)
        self.apply(_init)
        self.head.weight = self.embed.tok.weight

    def decode(self, memory: Tensor, tgt_in: Tensor, src_pad_mask: Tensor | None = None,
               return_weights: bool = False) -> tuple[Tensor, list[Tensor]]:
        x, weights = self.embed(tgt_in), []
        for block in self.blocks:
            x, w = block(x, memory, src_pad_mask, return_weights)
            if w is not None:
                weights.append(w)
        return self.head(self.norm_f(x)), weights

    def forward(self, src: Tensor, tgt_in: Tensor, tgt_out: Tensor | None = None,
                src_pad_mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        memory = self.encoder(src, src_pad_mask)[0]
        logits = self.decode(memory, tgt_in, src_pad_mask)[0]
        loss = None
        if tgt_out is not None:
            if tgt_out.shape != tgt_in.shape:
                raise ValueError(f"tgt_out must have the shape of tgt_in {tuple(tgt_in.shape)}, got {tuple(tgt_out.shape)}.")
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), tgt_out.reshape(-1), ignore_index=-100)
        return logits, loss

    def cross_attention(self, src: Tensor, tgt_in: Tensor, src_pad_mask: Tensor | None = None) -> list[Tensor]:
        """Every decoder layer's cross-attention weights, (batch, heads, target positions, source positions)."""
        memory = self.encoder(src, src_pad_mask)[0]
        return self.decode(memory, tgt_in, src_pad_mask, return_weights=True)[1]

    @torch.no_grad()
    def generate(self, src: Tensor, bos: int, eos: int, max_len: int, src_pad_mask: Tensor | None = None) -> Tensor:
        """Greedy decoding: (batch, up to max_len) target ids after BOS; a row stops at its EOS (kept)."""
        positive_int(max_len, "max_len")
        if max_len + 1 > self.config.block_size:
            raise ValueError(f"max_len={max_len} plus BOS exceeds block_size={self.config.block_size}.")
        out = torch.full((src.shape[0], 1), bos, dtype=torch.long, device=src.device)
        done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
        with eval_mode(self), torch.no_grad():  # dropout off: greedy decoding is deterministic
            memory = self.encoder(src, src_pad_mask)[0]
            for _ in range(max_len):
                nxt = self.decode(memory, out, src_pad_mask)[0][:, -1].argmax(-1)
                nxt = torch.where(done, torch.full_like(nxt, eos), nxt)
                out = torch.cat([out, nxt[:, None]], dim=1)
                done |= nxt == eos
                if bool(done.all()):
                    break
        return out[:, 1:]


__all__ = ["Encoder", "EncoderBlock", "EncoderClassifier", "DecoderBlock", "KINDS", "MaskedLM", "MultiHeadAttention",
           "Seq2Seq", "attention_pattern", "mask_tokens"]
