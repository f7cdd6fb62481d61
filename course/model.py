"""The GPT model (chapter 04; trained in 05, sampled in 06, fine-tuned in 07, shrunk in 08).

`GPTConfig` holds the architecture; its defaults are GPT-2 small's (124M
parameters), so `GPT.from_gpt2_state_dict` loads Hugging Face GPT-2 weights and
`GPT.to_gpt2_state_dict` exports back. The choices the chapters compare:

* ``positional``: ``"learned"`` (GPT-2), ``"sinusoidal"``, ``"rope"`` (chapter 02) or
  ``"alibi"`` (no embedding; a distance penalty on the scores, chapter 13);
* ``norm``: ``"layernorm"`` (GPT-2) or ``"rmsnorm"``; ``norm_position``: ``"pre"``
  (GPT-2 and every modern LLM) or ``"post"`` (the original Transformer);
* ``mlp``: ``"gelu"`` (GPT-2) or ``"swiglu"`` (Llama); ``gelu``: ``"tanh"`` (the
  approximation GPT-2 uses, the default) or ``"exact"`` (the erf form of many
  papers and courses; PyTorch's ``nn.GELU()`` default);
* ``rope_pairing`` (with ``positional="rope"``): ``"half"`` (coordinates i and
  i + d/2 rotate together, as in the Hugging Face port of Llama and GPT-NeoX; the
  default) or ``"interleaved"`` (coordinates 2i and 2i+1, as in Meta's reference
  Llama code and RoFormer);
* ``bias`` in linear layers and norms; ``tie_weights`` (the LM head reuses the
  token embedding matrix); ``dropout`` (residual stream) and ``attn_dropout``
  (attention weights).
* chapter 13's options: ``n_kv_head`` (grouped-query attention), ``attention_window``
  (sliding-window attention; the KV cache keeps that many positions), ``n_experts``,
  ``moe_top_k`` and ``moe_balance`` (a mixture-of-experts MLP, `course.moe`, whose
  load-balancing loss is added to the training loss with weight ``moe_balance``).

``model(idx, targets)`` returns ``(logits, loss)``: logits of shape
(batch, time, vocab_size) and the mean cross-entropy (or None without targets;
target positions equal to -100 are ignored, for fine-tuning masks).
``model.forward_with_attention(idx)`` also returns every layer's attention
weights (the slow, explicit path) for plotting. Passing a `KVCache` makes the
model process only the new tokens (chapter 06). ``position_ids`` (shape (time,)
or (batch, time)) give each token its position explicitly, so a cache or a packed
batch can start anywhere; by default they are 0..T-1, after the cached positions.
``model.hidden_states(idx)`` returns the final normed hidden states, before the
LM head (for a classifier head, or to look at what the model computes).

`untied_linear_layers(model)` lists the linear layers whose weight is not
shared with an embedding (a tied LM head): the layers quantization (chapter 08)
and pruning may rewrite.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import Tensor, nn

from .attention import CausalSelfAttention, KVCache, SlidingWindowKVCache
from .moe import MoE
from .positional import LearnedPositionalEmbedding, RoPE, SinusoidalPositionalEncoding
from .validate import dataclass_from_dict, fraction, one_of, positive_int

POSITIONALS = ("learned", "sinusoidal", "rope", "alibi")
NORMS = ("layernorm", "rmsnorm")
MLPS = ("gelu", "swiglu")
NORM_POSITIONS = ("pre", "post")
GELUS = ("tanh", "exact")
ROPE_PAIRINGS = ("half", "interleaved")
#: Fields added after configs were first saved: `GPTConfig`'s repr lists them only
#: when they differ from their default, so a printed GPT-2-style config reads as before.
_ADDED_FIELDS = ("gelu", "rope_pairing", "n_kv_head", "attention_window", "n_experts", "moe_top_k", "moe_balance")


@dataclass
class GPTConfig:
    vocab_size: int = 50257
    block_size: int = 1024  # the context length: the most tokens the model sees at once
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0  # on embeddings, and on the output of every attention and MLP layer
    attn_dropout: float = 0.0  # on the attention weights; costly on CPU (SDPA leaves its fused kernel)
    bias: bool = True
    positional: str = "learned"
    norm: str = "layernorm"
    norm_position: str = "pre"
    mlp: str = "gelu"
    mlp_hidden: int | None = None  # default: 4·n_embd for gelu; 8/3·n_embd rounded up to 64 for swiglu
    tie_weights: bool = True
    norm_eps: float = 1e-5
    rope_base: float = 10000.0
    activation_checkpointing: bool = False  # training only: recompute each block's activations in backward (chapter 08)
    gelu: str = "tanh"  # "tanh" (GPT-2's approximation) or "exact" (erf); used when mlp="gelu"
    rope_pairing: str = "half"  # "half" (i, i + d/2: Hugging Face) or "interleaved" (2i, 2i+1: Meta); positional="rope"
    n_kv_head: int | None = None  # key/value heads: None = n_head (multi-head); fewer = grouped-query (chapter 13)
    attention_window: int | None = None  # sliding-window attention: each query sees its last W positions (chapter 13)
    n_experts: int = 0  # 0: a dense MLP; more: a mixture of GELU experts (chapter 13, course.moe)
    moe_top_k: int = 2  # experts per token
    moe_balance: float = 0.01  # weight of the load-balancing loss added to the training loss (Switch: 0.01)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            positive_int(getattr(self, name), f"GPTConfig.{name}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}.")
        if self.n_kv_head is not None:
            positive_int(self.n_kv_head, "GPTConfig.n_kv_head")
            if self.n_head % self.n_kv_head:
                raise ValueError(f"n_kv_head={self.n_kv_head} must divide n_head={self.n_head}: each key/value head "
                                 "serves n_head / n_kv_head query heads.")
        for name, allowed in (("positional", POSITIONALS), ("norm", NORMS), ("mlp", MLPS), ("norm_position", NORM_POSITIONS),
                              ("gelu", GELUS), ("rope_pairing", ROPE_PAIRINGS)):
            one_of(getattr(self, name), allowed, f"GPTConfig.{name}")
        if self.positional == "rope" and (self.n_embd // self.n_head) % 2:
            raise ValueError(f"RoPE needs an even head dimension; n_embd / n_head = {self.n_embd // self.n_head}.")
        if self.positional == "sinusoidal" and self.n_embd % 2:
            raise ValueError(f"the sinusoidal encoding needs an even n_embd, got {self.n_embd}.")
        for name in ("dropout", "attn_dropout"):
            fraction(getattr(self, name), name)
        if self.attention_window is not None:
            positive_int(self.attention_window, "GPTConfig.attention_window")
        if self.n_experts:
            positive_int(self.n_experts, "GPTConfig.n_experts")
            positive_int(self.moe_top_k, "GPTConfig.moe_top_k")
            if self.moe_top_k > self.n_experts:
                raise ValueError(f"moe_top_k={self.moe_top_k} is more experts than n_experts={self.n_experts}.")
            if self.mlp != "gelu":
                raise ValueError("the mixture of experts (course.moe) is made of GELU MLPs: use mlp='gelu' with n_experts.")
        if not (isinstance(self.moe_balance, (int, float)) and self.moe_balance >= 0):
            raise ValueError(f"moe_balance must be a number >= 0, got {self.moe_balance!r}.")

    def __repr__(self) -> str:
        shown = (f for f in fields(self) if f.repr and not (f.name in _ADDED_FIELDS and getattr(self, f.name) == f.default))
        return f"{type(self).__name__}({', '.join(f'{f.name}={getattr(self, f.name)!r}' for f in shown)})"

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def hidden(self) -> int:
        if self.mlp_hidden is not None:
            return self.mlp_hidden
        if self.mlp == "gelu":
            return 4 * self.n_embd
        return 64 * math.ceil(8 * self.n_embd / 3 / 64)  # same parameter count as a 4x GELU MLP, roughly

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "GPTConfig":
        """The config saved by `to_dict`; fields it lacks (saved before they existed) take their defaults."""
        return dataclass_from_dict(cls, d)


class RMSNorm(nn.Module):
    """x / sqrt(mean(x²) + eps) · weight: LayerNorm without centring or bias."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.to(torch.promote_types(x.dtype, torch.float32))  # half precision computes in float32; float64 stays
        normed = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.to(x.dtype) * self.weight


def make_norm(config: GPTConfig) -> nn.Module:
    if config.norm == "rmsnorm":
        return RMSNorm(config.n_embd, config.norm_eps)
    return nn.LayerNorm(config.n_embd, eps=config.norm_eps, bias=config.bias)


class MLP(nn.Module):
    """The position-wise feed-forward network: GELU (GPT-2) or SwiGLU (Llama)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.kind = config.mlp
        d, h = config.n_embd, config.hidden
        if self.kind == "gelu":
            self.fc = nn.Linear(d, h, bias=config.bias)
            # "tanh": GPT-2's "gelu_new", 0.5x(1 + tanh(√(2/π)(x + 0.044715x³))); "exact": x·Φ(x) with erf
            self.act = nn.GELU(approximate="tanh" if config.gelu == "tanh" else "none")
        else:
            self.gate = nn.Linear(d, h, bias=config.bias)
            self.fc = nn.Linear(d, h, bias=config.bias)
        self.proj = nn.Linear(h, d, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        if self.kind == "gelu":
            hidden = self.act(self.fc(x))
        else:
            hidden = F.silu(self.gate(x)) * self.fc(x)
        return self.dropout(self.proj(hidden))


class Block(nn.Module):
    """One Transformer block: attention then MLP, each wrapped in a residual connection and a norm."""

    def __init__(self, config: GPTConfig, layer_index: int, rope: RoPE | None = None) -> None:
        super().__init__()
        self.pre = config.norm_position == "pre"
        self.norm1 = make_norm(config)
        self.attn = CausalSelfAttention(
            config.n_embd, config.n_head, bias=config.bias, dropout=config.dropout, attn_dropout=config.attn_dropout,
            rope=rope, layer_index=layer_index, n_kv_head=config.n_kv_head,
            alibi=config.positional == "alibi", window=config.attention_window,
        )
        self.norm2 = make_norm(config)
        self.mlp: nn.Module = (MoE(config.n_embd, config.hidden, config.n_experts, config.moe_top_k)
                               if config.n_experts else MLP(config))

    def forward(
        self, x: Tensor, *, cache: KVCache | None = None, return_weights: bool = False, positions: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        if self.pre:  # x + f(norm(x)): the residual stream is never normalised
            a, w = self.attn(self.norm1(x), cache=cache, return_weights=return_weights, positions=positions)
            x = x + a
            x = x + self.mlp(self.norm2(x))
        else:  # norm(x + f(x)), as in "Attention Is All You Need"
            a, w = self.attn(x, cache=cache, return_weights=return_weights, positions=positions)
            x = self.norm1(x + a)
            x = self.norm2(x + self.mlp(x))
        return x, w


class GPT(nn.Module):
    """A decoder-only Transformer language model."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.tok_emb = nn.Embedding(c.vocab_size, c.n_embd)
        self.pos_emb: nn.Module | None = None
        rope = None
        if c.positional == "learned":
            self.pos_emb = LearnedPositionalEmbedding(c.block_size, c.n_embd)
        elif c.positional == "sinusoidal":
            self.pos_emb = SinusoidalPositionalEncoding(c.n_embd, c.block_size)
        elif c.positional == "rope":
            rope = RoPE(c.head_dim, c.block_size, base=c.rope_base, pairing=c.rope_pairing)  # type: ignore[arg-type]
        self.rope = rope
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(c, i, rope) for i in range(c.n_layer))
        self.norm_f = make_norm(c) if c.norm_position == "pre" else nn.Identity()
        self.head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.apply(self._init_weights)
        residual_std = 0.02 / math.sqrt(2 * c.n_layer)  # GPT-2: residual projections scaled by depth
        for block in self.blocks:
            nn.init.normal_(block.attn.proj.weight, mean=0.0, std=residual_std)
            if isinstance(block.mlp, MoE):
                nn.init.normal_(block.mlp.w_out, mean=0.0, std=residual_std)
            else:
                nn.init.normal_(block.mlp.proj.weight, mean=0.0, std=residual_std)
        if c.tie_weights:
            self.head.weight = self.tok_emb.weight

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    # ------------------------------------------------------------------ forward

    def _check_input(self, idx: Tensor, offset: int) -> None:
        if not isinstance(idx, Tensor):
            raise TypeError(f"idx must be a torch.Tensor of token ids, got {type(idx).__name__}.")
        if idx.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"idx must hold integer token ids (torch.long), got dtype {idx.dtype}.")
        if idx.dim() != 2:
            hint = " Add a batch dimension: idx[None]." if idx.dim() == 1 else ""
            raise ValueError(f"idx must have shape (batch, time), got {tuple(idx.shape)}.{hint}")
        t = idx.shape[1]
        if t == 0:
            raise ValueError("idx is empty: give at least one token.")
        if offset + t > self.config.block_size:
            where = f" after {offset} cached positions" if offset else ""
            raise ValueError(
                f"{t} tokens{where} exceed the model's context of block_size={self.config.block_size}. "
                f"Keep only the last {self.config.block_size - offset} tokens (idx[:, -{self.config.block_size - offset}:])."
            )
        if idx.device.type == "cpu":
            lo, hi = int(idx.min()), int(idx.max())
            if lo < 0 or hi >= self.config.vocab_size:
                bad = lo if lo < 0 else hi
                raise ValueError(f"token id {bad} is outside the vocabulary (0..{self.config.vocab_size - 1}).")

    def _check_positions(self, position_ids: object, idx: Tensor) -> Tensor:
        if not isinstance(position_ids, Tensor) or position_ids.dtype not in (torch.int64, torch.int32):
            what = f"dtype {position_ids.dtype}" if isinstance(position_ids, Tensor) else type(position_ids).__name__
            raise TypeError(f"position_ids must be an integer tensor (torch.long), got {what}.")
        b, t = idx.shape
        if tuple(position_ids.shape) not in ((t,), (1, t), (b, t)):
            raise ValueError(
                f"position_ids must give one position per token of idx {tuple(idx.shape)}: shape ({t},) for every "
                f"sequence or ({b}, {t}) for one row each, got {tuple(position_ids.shape)}."
            )
        lo, hi = int(position_ids.min()), int(position_ids.max())
        if lo < 0 or hi >= self.config.block_size:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"position {bad} is outside the model's positions 0..{self.config.block_size - 1} (block_size="
                f"{self.config.block_size}): position ids count from 0 and stay below block_size."
            )
        return position_ids.to(self.tok_emb.weight.device)

    def _trunk(
        self, idx: Tensor, cache: KVCache | None, return_weights: bool, position_ids: Tensor | None = None
    ) -> tuple[Tensor, list[Tensor]]:
        offset = cache.length if cache is not None else 0
        self._check_input(idx, offset)
        positions = None if position_ids is None else self._check_positions(position_ids, idx)
        x = self.tok_emb(idx)
        if isinstance(self.pos_emb, LearnedPositionalEmbedding):
            if positions is None:
                x = x + self.pos_emb(seq_len=idx.shape[1], offset=offset)
            else:
                x = x + self.pos_emb(positions)
        elif isinstance(self.pos_emb, SinusoidalPositionalEncoding):
            x = self.pos_emb(x, offset=offset) if positions is None else self.pos_emb(x, positions=positions)
        x = self.drop(x)
        weights: list[Tensor] = []
        recompute = self.config.activation_checkpointing and self.training and torch.is_grad_enabled() and cache is None
        extra = {} if positions is None else {"positions": positions}  # RoPE rotates queries and keys by these
        for block in self.blocks:
            if recompute and not return_weights:  # keep only each block's input; redo its forward during backward
                x, w = torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False, **extra)
            else:
                x, w = block(x, cache=cache, return_weights=return_weights, **extra)
            if w is not None:
                weights.append(w)
        return self.norm_f(x), weights

    def hidden_states(
        self, idx: Tensor, *, cache: KVCache | None = None, position_ids: Tensor | None = None
    ) -> Tensor:
        """The final hidden states, after the last norm and before the LM head: shape (batch, time, n_embd).

        ``logits = model.head(model.hidden_states(idx))`` is exactly ``model(idx)[0]``.
        A classifier reads them (chapter 07: the state of the last token).
        """
        return self._trunk(idx, cache, False, position_ids)[0]

    def forward(
        self,
        idx: Tensor,
        targets: Tensor | None = None,
        *,
        cache: KVCache | None = None,
        position_ids: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Logits (batch, time, vocab_size) and the mean cross-entropy against ``targets`` (or None).

        ``position_ids``: each token's position, shape (time,) or (batch, time); by
        default cache.length .. cache.length + time - 1 (0.. without a cache). With
        a cache, keep giving positions for every call: the cache holds keys, not positions.
        """
        x = self.hidden_states(idx, cache=cache, position_ids=position_ids)
        logits = self.head(x)
        loss = None
        if targets is not None:
            if targets.shape != idx.shape:
                raise ValueError(f"targets must have the shape of idx {tuple(idx.shape)}, got {tuple(targets.shape)}.")
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100)
            if self.config.n_experts and self.config.moe_balance > 0:  # chapter 13: keep the experts in use
                loss = loss + self.config.moe_balance * self.balance_loss()
        return logits, loss

    def balance_loss(self) -> Tensor:
        """The mean over layers of the mixture of experts' load-balancing loss of the last forward pass
        (1 when balanced; `course.moe.load_balancing_loss`). Zero for a dense model."""
        losses = [b.mlp.last["balance_loss"] for b in self.blocks if isinstance(b.mlp, MoE) and b.mlp.last]
        return torch.stack(losses).mean() if losses else torch.zeros(())

    def forward_with_attention(self, idx: Tensor, *, position_ids: Tensor | None = None) -> tuple[Tensor, list[Tensor]]:
        """Logits and every layer's attention weights, each (batch, heads, time, time). Slow: for plots."""
        x, weights = self._trunk(idx, None, True, position_ids)
        return self.head(x), weights

    def new_cache(self) -> KVCache:
        if self.config.attention_window is not None:
            return SlidingWindowKVCache(self.config.n_layer, self.config.attention_window)
        return KVCache(self.config.n_layer)

    # ------------------------------------------------------------------ counting

    def num_parameters(self, *, non_embedding: bool = False) -> int:
        """Trainable parameters, each shared tensor counted once.

        ``non_embedding=True`` leaves out the token and position embeddings (the
        count that scaling laws and FLOP estimates use); a tied head is then
        counted, since its matrix multiply does cost compute.
        """
        total = sum(p.numel() for p in self.parameters())
        if non_embedding:
            if not self.config.tie_weights:
                total -= self.tok_emb.weight.numel()
            if isinstance(self.pos_emb, LearnedPositionalEmbedding):
                total -= self.pos_emb.weight.numel()
        return total

    def active_parameters(self, *, non_embedding: bool = False) -> int:
        """The parameters one token uses: `num_parameters` less the experts a mixture of experts leaves out
        (each token runs moe_top_k of n_experts). Equal to `num_parameters` for a dense model."""
        unused = sum(b.mlp.total_parameters() - b.mlp.active_parameters() for b in self.blocks if isinstance(b.mlp, MoE))
        return self.num_parameters(non_embedding=non_embedding) - unused

    def parameter_breakdown(self) -> dict[str, int]:
        """Parameters per component; the values add up to `num_parameters()`."""
        parts: dict[str, int] = {}
        seen: set[int] = set()
        for name, p in self.named_parameters():  # named_parameters skips shared tensors after the first
            if id(p) in seen:
                continue
            seen.add(id(p))
            if name.startswith("tok_emb"):
                key = "token embedding" + (" (= tied LM head)" if self.config.tie_weights else "")
            elif name.startswith("pos_emb"):
                key = "position embedding"
            elif ".attn." in name:
                key = "attention (all layers)"
            elif ".mlp." in name:
                key = "MLP (all layers)"
            elif ".norm" in name or name.startswith("norm_f"):
                key = "norms"
            elif name.startswith("head"):
                key = "LM head"
            else:
                key = name
            parts[key] = parts.get(key, 0) + p.numel()
        return parts

    def flops_per_token(self, seq_len: int | None = None) -> int:
        """Training FLOPs per token: 6·N (forward 2N, backward 4N) plus attention's 12·L·T·d.

        N is the non-embedding parameter count (with the head), active parameters
        only for a mixture of experts; the attention term counts QKᵀ and the weighted
        sum of V, which have no parameters.
        """
        c = self.config
        t = c.block_size if seq_len is None else seq_len
        return 6 * self.active_parameters(non_embedding=True) + 12 * c.n_layer * t * c.n_embd

    # ------------------------------------------------------------------ GPT-2 weights

    _GPT2_TRANSPOSED = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
    _GPT2_NAMES = {
        "ln_1": "norm1", "ln_2": "norm2", "attn.c_attn": "attn.qkv", "attn.c_proj": "attn.proj",
        "mlp.c_fc": "mlp.fc", "mlp.c_proj": "mlp.proj",
    }

    @classmethod
    def from_gpt2_state_dict(cls, state: Mapping[str, Tensor], n_head: int | None = None, **overrides: Any) -> "GPT":
        """Build a GPT from a Hugging Face GPT-2 state dict (GPT2LMHeadModel or GPT2Model).

        Shapes give everything but the number of heads; GPT-2's heads are 64 wide,
        so ``n_head`` defaults to n_embd / 64. GPT-2 stores its linear layers as
        ``Conv1D`` with (in, out) weights: they are transposed here.
        """
        sd = {k.removeprefix("transformer."): v for k, v in state.items()}
        required = ("wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias")
        missing = [k for k in required if k not in sd]
        if missing:
            raise KeyError(f"not a GPT-2 state dict: missing {missing}. Keys start with: {sorted(sd)[:5]}")
        vocab_size, n_embd = sd["wte.weight"].shape
        block_size = sd["wpe.weight"].shape[0]
        layers = sorted({int(k.split(".")[1]) for k in sd if k.startswith("h.")})
        if layers != list(range(len(layers))):
            raise KeyError(f"GPT-2 layers must be numbered 0..L-1, found {layers}.")
        if n_head is None:
            if n_embd % 64:
                raise ValueError(f"cannot infer n_head for n_embd={n_embd}: pass n_head.")
            n_head = n_embd // 64
        config = GPTConfig(
            vocab_size=vocab_size, block_size=block_size, n_layer=len(layers), n_head=n_head, n_embd=n_embd,
            bias=True, positional="learned", norm="layernorm", mlp="gelu", tie_weights=True, **overrides,
        )
        model = cls(config)
        ours: dict[str, Tensor] = {
            "tok_emb.weight": sd["wte.weight"], "pos_emb.weight": sd["wpe.weight"],
            "norm_f.weight": sd["ln_f.weight"], "norm_f.bias": sd["ln_f.bias"],
        }
        for k, v in sd.items():
            if not k.startswith("h."):
                continue
            _, i, rest = k.split(".", 2)
            if rest in ("attn.bias", "attn.masked_bias"):
                continue  # GPT-2's causal-mask buffers, not weights
            name = rest
            for old, new in cls._GPT2_NAMES.items():
                if rest.startswith(old + "."):
                    name = new + rest[len(old):]
                    break
            ours[f"blocks.{i}.{name}"] = v.t() if rest in cls._GPT2_TRANSPOSED else v
        if "lm_head.weight" in state and not torch.equal(state["lm_head.weight"], sd["wte.weight"]):
            raise ValueError("this checkpoint's lm_head is not tied to wte: GPT-2 ties them.")
        result = model.load_state_dict(ours, strict=False)
        unexpected = [k for k in result.missing_keys if k != "head.weight"]
        if unexpected or result.unexpected_keys:
            raise KeyError(f"weights did not match: missing {unexpected}, unexpected {result.unexpected_keys}")
        return model

    def to_gpt2_state_dict(self) -> dict[str, Tensor]:
        """Export to Hugging Face GPT2LMHeadModel's names and layouts (a GPT-2-shaped config only)."""
        c = self.config
        shape = (c.positional, c.norm, c.mlp, c.gelu, c.norm_position, c.bias, c.tie_weights)
        if shape != ("learned", "layernorm", "gelu", "tanh", "pre", True, True):
            raise ValueError(
                "only a GPT-2-shaped model (learned positions, pre-LayerNorm, tanh GELU, bias, tied head) exports to GPT-2."
            )
        inverse = {v: k for k, v in self._GPT2_NAMES.items()}
        out: dict[str, Tensor] = {
            "transformer.wte.weight": self.tok_emb.weight.detach().clone(),
            "transformer.wpe.weight": self.pos_emb.weight.detach().clone(),  # type: ignore[union-attr]
            "transformer.ln_f.weight": self.norm_f.weight.detach().clone(),  # type: ignore[union-attr]
            "transformer.ln_f.bias": self.norm_f.bias.detach().clone(),  # type: ignore[union-attr]
        }
        for k, v in self.state_dict().items():
            if not k.startswith("blocks."):
                continue
            _, i, rest = k.split(".", 2)
            name = rest
            for ours, theirs in inverse.items():
                if rest.startswith(ours + "."):
                    name = theirs + rest[len(ours):]
                    break
            v = v.detach().clone()
            out[f"transformer.h.{i}.{name}"] = v.t().contiguous() if name in self._GPT2_TRANSPOSED else v
        out["lm_head.weight"] = out["transformer.wte.weight"]
        return out


def untied_linear_layers(model: nn.Module) -> dict[str, nn.Linear]:
    """Every `nn.Linear` of ``model`` by qualified name, except those whose weight is an embedding's (a tied head).

    Quantization and pruning (chapter 08) rewrite these layers; a tied LM head is
    left alone, because rewriting it would untie it and store the matrix twice.
    """
    embedding_ptrs = {m.weight.data_ptr() for m in model.modules() if isinstance(m, nn.Embedding)}
    return {
        name: m for name, m in model.named_modules()
        if isinstance(m, nn.Linear) and m.weight.data_ptr() not in embedding_ptrs
    }
