"""Memory math of training (chapter 08): what a model costs in bytes, and what sharding saves.

Training a model of N parameters with AdamW holds, per parameter:

* the weight itself (4 bytes in float32),
* its gradient (4 bytes),
* AdamW's two running averages, ``exp_avg`` and ``exp_avg_sq`` (4 + 4 bytes),

so 16·N bytes before a single activation is stored (`training_state_bytes`).
Mixed precision keeps a float32 master copy too, and the 16-bit weights and
gradients come on top (`training_state_bytes(n, mixed=True)`: 2 + 2 + 4 + 8 = 16
bytes, or 18 with a separate 16-bit gradient buffer, depending on the engine).

Activations (the tensors autograd saves for the backward pass) grow with batch x
context x depth; `model_activation_bytes` measures them exactly by hooking every
tensor autograd saves.

Data parallelism (DDP) copies all of that on every GPU. ZeRO / FSDP shard it
across ``world_size`` GPUs (`sharded_state_bytes`): stage 1 shards the optimizer
states, stage 2 also the gradients, stage 3 (= FSDP's full sharding) also the weights.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

from .validate import non_negative_int, positive_int

GPT2_SIZES: dict[str, dict[str, int]] = {  # the published GPT-2 family (vocab 50257, context 1024)
    "gpt2 (small)": dict(n_layer=12, n_head=12, n_embd=768),
    "gpt2-medium": dict(n_layer=24, n_head=16, n_embd=1024),
    "gpt2-large": dict(n_layer=36, n_head=20, n_embd=1280),
    "gpt2-xl": dict(n_layer=48, n_head=25, n_embd=1600),
}


def gpt2_parameter_count(n_layer: int, n_embd: int, vocab_size: int = 50257, block_size: int = 1024) -> int:
    """Parameters of a GPT-2-shaped model (biases, LayerNorms, tied head), counted from its shapes.

    Per block: attention qkv (d x 3d + 3d) and projection (d x d + d), MLP (d x 4d + 4d,
    4d x d + d), two LayerNorms (2 x 2d): 12·d² + 13·d. Plus token and position
    embeddings and the final LayerNorm.
    """
    for name, value in (("n_layer", n_layer), ("n_embd", n_embd), ("vocab_size", vocab_size), ("block_size", block_size)):
        positive_int(value, name)
    d = n_embd
    return n_layer * (12 * d * d + 13 * d) + vocab_size * d + block_size * d + 2 * d


def training_state_bytes(n_params: int, *, mixed: bool = False) -> dict[str, int]:
    """Bytes of weights, gradients and AdamW states for ``n_params`` parameters.

    float32 training: 4 + 4 + 8 = 16 bytes per parameter. ``mixed=True``: 16-bit
    weights and gradients (2 + 2) plus a float32 master copy (4) and the two
    float32 AdamW states (8): also 16 bytes per parameter. Mixed precision saves
    activation memory and time, not state memory.
    """
    n_params = non_negative_int(n_params, "n_params")
    if mixed:
        parts = {"weights (16-bit)": 2 * n_params, "gradients (16-bit)": 2 * n_params,
                 "master weights (fp32)": 4 * n_params, "AdamW states (fp32)": 8 * n_params}
    else:
        parts = {"weights": 4 * n_params, "gradients": 4 * n_params, "AdamW states": 8 * n_params}
    parts["total"] = sum(parts.values())
    return parts


def sharded_state_bytes(n_params: int, world_size: int, stage: int) -> int:
    """Per-GPU bytes of float32 weights + gradients + AdamW states under ZeRO ``stage`` (0 = plain DDP).

    stage 0: 16·N on every GPU; stage 1: 4N + 4N + 8N/W; stage 2: 4N + 12N/W;
    stage 3 (FSDP full sharding): 16N/W.
    """
    if stage not in (0, 1, 2, 3):
        raise ValueError(f"stage must be 0 (DDP), 1, 2 or 3 (ZeRO stages), got {stage!r}.")
    world_size = positive_int(world_size, "world_size")
    w, g, o = 4 * n_params, 4 * n_params, 8 * n_params
    if stage >= 1:
        o /= world_size
    if stage >= 2:
        g /= world_size
    if stage >= 3:
        w /= world_size
    return int(round(w + g + o))


def tensor_bytes(tensors) -> int:
    """Bytes of distinct tensors (shared storage counted once)."""
    seen: dict[int, int] = {}
    for t in tensors:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes held in an optimizer's per-parameter state (AdamW: exp_avg and exp_avg_sq; scalar step counters left out)."""
    return tensor_bytes(v for state in optimizer.state.values() for v in state.values() if isinstance(v, Tensor) and v.dim() > 0)


def saved_for_backward_bytes(fn: Callable[..., Any], *inputs: Tensor, leave_out: Iterable[Tensor] = ()) -> int:
    """Bytes of the tensors autograd keeps for the backward pass of ``fn(*inputs)``.

    Every tensor autograd keeps goes through a saved-tensors hook; the inputs and
    ``leave_out`` (parameters, say: they exist anyway) are not counted, and a storage
    saved twice counts once.
    """
    skip = {t.untyped_storage().data_ptr() for t in (*inputs, *leave_out)}
    storages: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        s = t.untyped_storage()
        if s.data_ptr() not in skip:
            storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(*inputs)
    del out
    return sum(storages.values())


def model_activation_bytes(model: nn.Module, x: Tensor, y: Tensor) -> int:
    """Bytes of the tensors autograd saves for the backward pass during ``model(x, y)`` (a GPT's loss).

    Every tensor autograd keeps goes through a saved-tensors hook; parameters
    (which exist anyway) are left out, and a storage saved twice counts once.
    """
    if x.shape != y.shape or x.dim() != 2:
        raise ValueError(f"x and y must both have shape (batch, time), got {tuple(x.shape)} and {tuple(y.shape)}.")
    return saved_for_backward_bytes(lambda: model(x, y)[1], leave_out=model.parameters())


def activation_estimate(config, batch: int, seq_len: int, probe_len: int = 32) -> dict[str, int]:
    """Activation bytes of a training forward pass of ``GPT(config)`` at (batch, seq_len), from two small probes.

    A GPT's saved activations are one part per block plus a part outside the
    blocks (embeddings, final norm, logits and the loss), each proportional to
    the number of tokens (attention here keeps O(T) memory: the fused kernel
    does not store the T x T weights; with ``attn_dropout`` it does, and the
    probes then run at the full batch and length). One model with two blocks is run on a
    single sequence of ``probe_len`` tokens, with both blocks and with one, so
    ``per block = m2 - m1`` and ``outside = m1 - per block``; both are scaled to
    ``batch · seq_len`` tokens. Cheap even at GPT-2 XL's width. Exact up to rounding for
    learned positions; with RoPE its shared sin/cos tables (not per token) add a few percent.
    """
    from .model import GPT, GPTConfig

    if probe_len > config.block_size or seq_len > config.block_size:
        raise ValueError(f"probe_len={probe_len} and seq_len={seq_len} must not exceed block_size={config.block_size}.")
    probe_batch = 1
    if config.attn_dropout > 0:  # dropout on the attention weights leaves the fused kernel: probe at full size
        probe_batch, probe_len = batch, seq_len
    probe_config = GPTConfig.from_dict({**config.to_dict(), "n_layer": 2, "activation_checkpointing": False})
    model = GPT(probe_config).train()
    x = torch.zeros(probe_batch, probe_len, dtype=torch.long)
    two = model_activation_bytes(model, x, x)
    model.blocks = model.blocks[:1]
    one = model_activation_bytes(model, x, x)
    per_block, outside = two - one, 2 * one - two
    scale = batch * seq_len / (probe_batch * probe_len)
    result = {"per block": int(per_block * scale), "outside the blocks": int(outside * scale)}
    result["total"] = result["outside the blocks"] + config.n_layer * result["per block"]
    return result
