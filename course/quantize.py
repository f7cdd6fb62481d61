"""Weight-only quantization, written from scratch (chapter 08).

**int8, per-channel, symmetric.** Each output row ``w`` of a weight matrix gets
its own scale ``s = max|w| / 127``; the stored weight is ``q = round(w / s)``,
an int8 in [-127, 127], and ``q · s`` brings it back. Rounding moves every
weight by at most half a step, so ``|w - q·s| <= s / 2`` (`quantize_int8`,
`dequantize_int8`). Zero maps to exactly zero (symmetric: no zero point).

**int4, group-wise.** Four bits leave only 15 levels (-7..7), too coarse for a
whole row; each row is cut into groups of ``group_size`` weights, each group with
its own scale ``max|w| / 7`` (`quantize_int4`). Two 4-bit values are packed into
one byte.

`Int8Linear` and `Int4Linear` replace `nn.Linear`: they store the integers and
the scales and compute ``x @ (q·s)ᵀ + b`` (for int8 the scale is applied to the
output, ``(x @ qᵀ) · s``, which is the same number). Activations stay in floating
point ("weight-only" quantization): the saving is memory and download size;
speed needs integer kernels, which plain PyTorch on a CPU does not use here.

`quantize_model` swaps every linear layer of a model (except one that shares its
weight with an embedding, such as GPT-2's tied head) and returns a new model;
`serialized_bytes` measures the size of a saved state dict.

*Dynamic* quantization goes one step further than this module: it also rounds each
layer's input to int8 on the fly, per batch, and multiplies in integers. PyTorch's
old API for it is deprecated (its successor lives in the separate ``torchao``
package), so the course does not use it; `benchmarks/bench_quantize.py` compares
`Int8Linear` with float32 and with a fused weight-only int8 kernel instead.
"""

from __future__ import annotations

import copy
import io

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .model import untied_linear_layers

INT8_MAX = 127
INT4_MAX = 7


def _check_matrix(w: Tensor, name: str = "w") -> None:
    if not isinstance(w, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(w).__name__}.")
    if w.dim() != 2:
        raise ValueError(f"{name} must be a 2-D weight matrix (out_features, in_features), got shape {tuple(w.shape)}.")
    if not w.is_floating_point():
        raise TypeError(f"{name} must be floating point to be quantized, got dtype {w.dtype}.")


def _scales(absmax: Tensor, levels: int) -> Tensor:
    """absmax / levels, with all-zero rows (or groups) given scale 1 so that 0 / scale stays 0."""
    scale = absmax.float() / levels
    return torch.where(scale > 0, scale, torch.ones_like(scale))


def quantize_int8(w: Tensor) -> tuple[Tensor, Tensor]:
    """Per-output-channel symmetric int8: ``q`` (int8, shape of ``w``) and ``scale`` (float32, (out, 1))."""
    _check_matrix(w)
    scale = _scales(w.detach().abs().amax(dim=1, keepdim=True), INT8_MAX)
    q = torch.round(w.detach().float() / scale).clamp_(-INT8_MAX, INT8_MAX).to(torch.int8)
    return q, scale


def dequantize_int8(q: Tensor, scale: Tensor) -> Tensor:
    """``q · scale`` in float32: the weights the int8 layer effectively uses."""
    if q.dtype != torch.int8:
        raise TypeError(f"q must be int8 (from quantize_int8), got {q.dtype}.")
    if scale.shape != (q.shape[0], 1):
        raise ValueError(f"scale must have shape ({q.shape[0]}, 1), one per output row, got {tuple(scale.shape)}.")
    return q.float() * scale


def quantize_int4(w: Tensor, group_size: int = 32) -> tuple[Tensor, Tensor]:
    """Group-wise symmetric int4: packed ``q`` (uint8, (out, in/2)) and ``scale`` (float32, (out, in/group_size))."""
    _check_matrix(w)
    out_f, in_f = w.shape
    if not isinstance(group_size, int) or group_size < 2 or group_size % 2:
        raise ValueError(f"group_size must be an even int >= 2, got {group_size!r}.")
    if in_f % group_size:
        raise ValueError(f"in_features={in_f} is not a multiple of group_size={group_size}: pick a group size that divides it.")
    groups = w.detach().float().reshape(out_f, in_f // group_size, group_size)
    scale = _scales(groups.abs().amax(dim=2), INT4_MAX)
    q = torch.round(groups / scale[..., None]).clamp_(-INT4_MAX, INT4_MAX).to(torch.int8).reshape(out_f, in_f)
    return pack_int4(q), scale


def pack_int4(q: Tensor) -> Tensor:
    """Two signed 4-bit values (-8..7) per byte: even columns in the low nibble, odd in the high."""
    if q.shape[-1] % 2:
        raise ValueError(f"the last dimension must be even to pack pairs, got {q.shape[-1]}.")
    u = (q.to(torch.int16) & 0xF).to(torch.uint8)
    return u[..., 0::2] | (u[..., 1::2] << 4)


def unpack_int4(packed: Tensor) -> Tensor:
    """The inverse of `pack_int4`: int8 values in -8..7, twice as many columns."""
    if packed.dtype != torch.uint8:
        raise TypeError(f"packed must be uint8 (from pack_int4), got {packed.dtype}.")
    lo = (packed & 0xF).to(torch.int8)
    hi = (packed >> 4).to(torch.int8)
    both = torch.stack((lo, hi), dim=-1).reshape(*packed.shape[:-1], packed.shape[-1] * 2)
    return torch.where(both > 7, both - 16, both)


def dequantize_int4(packed: Tensor, scale: Tensor, group_size: int = 32) -> Tensor:
    """The float32 weights an `Int4Linear` uses: unpacked values times their group's scale."""
    q = unpack_int4(packed).float()
    out_f, in_f = q.shape
    if scale.shape != (out_f, in_f // group_size):
        raise ValueError(f"scale must have shape ({out_f}, {in_f // group_size}) for group_size={group_size}, got {tuple(scale.shape)}.")
    return (q.reshape(out_f, -1, group_size) * scale[..., None]).reshape(out_f, in_f)


class Int8Linear(nn.Module):
    """A linear layer whose weight is stored as int8 with one float scale per output feature."""

    def __init__(self, qweight: Tensor, scale: Tensor, bias: Tensor | None = None) -> None:
        super().__init__()
        dequantize_int8(qweight[:1], scale[:1])  # validates dtype and shapes
        if scale.shape[0] != qweight.shape[0]:
            raise ValueError(f"scale has {scale.shape[0]} rows but the weight has {qweight.shape[0]} output features.")
        self.in_features, self.out_features = qweight.shape[1], qweight.shape[0]
        self.register_buffer("qweight", qweight)
        self.register_buffer("scale", scale.reshape(-1).float())
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> "Int8Linear":
        q, scale = quantize_int8(linear.weight)
        return cls(q, scale, linear.bias)

    def forward(self, x: Tensor) -> Tensor:
        y = F.linear(x, self.qweight.to(x.dtype)) * self.scale.to(x.dtype)  # (x @ qᵀ) · s == x @ (q·s)ᵀ
        return y if self.bias is None else y + self.bias.to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, int8 per-channel"


class Int4Linear(nn.Module):
    """A linear layer whose weight is stored as packed int4 with one float scale per group of inputs."""

    def __init__(self, packed: Tensor, scale: Tensor, group_size: int, bias: Tensor | None = None) -> None:
        super().__init__()
        self.group_size = group_size
        self.in_features, self.out_features = packed.shape[1] * 2, packed.shape[0]
        self.register_buffer("packed", packed)
        self.register_buffer("scale", scale.float())
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())
        self.weight_float()  # validates shapes

    @classmethod
    def from_linear(cls, linear: nn.Linear, group_size: int = 32) -> "Int4Linear":
        packed, scale = quantize_int4(linear.weight, group_size)
        return cls(packed, scale, group_size, linear.bias)

    def weight_float(self) -> Tensor:
        return dequantize_int4(self.packed, self.scale, self.group_size)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_float().to(x.dtype), None if self.bias is None else self.bias.to(x.dtype))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, int4 group={self.group_size}"


def quantize_model(model: nn.Module, bits: int = 8, group_size: int = 32) -> nn.Module:
    """A copy of ``model`` with every `nn.Linear` replaced by `Int8Linear` (bits=8) or `Int4Linear` (bits=4).

    A linear layer whose weight is shared with an embedding (a tied LM head) is
    left in floating point: quantizing it would untie it and store the matrix twice.
    """
    if bits not in (8, 4):
        raise ValueError(f"bits must be 8 or 4, got {bits!r}.")
    model = copy.deepcopy(model).eval()
    rewrite = {id(m) for m in untied_linear_layers(model).values()}
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if id(child) in rewrite:
                new = Int8Linear.from_linear(child) if bits == 8 else Int4Linear.from_linear(child, group_size)
                setattr(parent, name, new)
    return model


def serialized_bytes(model: nn.Module) -> int:
    """Size of ``torch.save(model.state_dict())`` in bytes: what a checkpoint file would take."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes

