"""Position information for a Transformer (chapter 02: embeddings and positions).

Self-attention on its own does not know the order of its inputs: shuffle the
tokens and its outputs shuffle the same way. This module holds the three ways the
course gives a model a sense of position, finished and ready for chapter 04's GPT:

* `sinusoidal_table(num_positions, dim, base)`: the fixed encoding of "Attention
  Is All You Need", PE[pos, 2i] = sin(pos / base^(2i/dim)) and
  PE[pos, 2i+1] = cos(pos / base^(2i/dim)); `SinusoidalPositionalEncoding` adds it
  to token embeddings.
* `LearnedPositionalEmbedding`: one trained vector per position, as in GPT-2; it
  has nothing to say about positions beyond the length it was built for.
* `RoPE` / `apply_rope`: rotary position embedding. Each pair of coordinates of a
  query or key is rotated by an angle proportional to its position, so the score
  q(m)·k(n) depends on the positions only through m - n. Both pairings in use are
  supported: ``"interleaved"`` (coordinates 2i and 2i+1, as in the RoFormer paper,
  GPT-J and Meta's reference Llama code) and ``"half"`` (coordinates i and i + d/2,
  as in GPT-NeoX and the Hugging Face port of Llama). They are the same rotation
  up to a fixed permutation of the coordinates (`pairing_permutation`): Hugging
  Face's conversion of Meta's Llama weights permutes each head's query and key
  rows by it, and `GPTConfig(rope_pairing=...)` picks the layout for a model.
* `alibi_slopes` / `alibi_bias`: ALiBi, a distance penalty added to attention
  scores instead of any embedding.

Tables are computed in float64 and stored in float32; rotations are computed in
float32 (or float64 for float64 inputs) and returned in the input's dtype, so
bfloat16 inputs lose no more precision than their own rounding.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from .validate import even_int, finite_above, non_negative_int, one_of, positive_int

Pairing = Literal["interleaved", "half"]
PAIRINGS: tuple[str, ...] = ("interleaved", "half")


# --------------------------------------------------------------------------- frequencies


def inverse_frequencies(dim: int, base: float = 10000.0, *, dtype: torch.dtype = torch.float64) -> Tensor:
    """The angular frequencies ω_i = base^(-2i/dim) for i = 0 .. dim/2 - 1 (shape (dim/2,)).

    Pair i turns by ω_i radians per position: its wavelength is 2π / ω_i, from 2π
    for i = 0 up to 2π·base^((dim-2)/dim) (just under 2π·base) for the last pair.
    """
    dim = _check_even(dim, "dim")
    base = _check_base(base)
    exponents = torch.arange(0, dim, 2, dtype=torch.float64) / dim  # 2i/dim
    return (base ** -exponents).to(dtype)


def wavelengths(dim: int, base: float = 10000.0) -> Tensor:
    """Wavelength 2π / ω_i of every pair, in positions (float64, shape (dim/2,))."""
    return 2 * math.pi / inverse_frequencies(dim, base)


def position_angles(positions: Tensor | int, dim: int, base: float = 10000.0) -> Tensor:
    """Angles pos·ω_i in float64: shape (*positions.shape, dim/2); an int n means positions 0..n-1."""
    if isinstance(positions, int):
        positions = torch.arange(_check_positive_int(positions, "num_positions"))
    if positions.dtype.is_complex or positions.dtype == torch.bool:
        raise TypeError(f"positions must be a real tensor, got dtype {positions.dtype}.")
    return positions.to(torch.float64)[..., None] * inverse_frequencies(dim, base)


# --------------------------------------------------------------------------- sinusoidal


def sinusoidal_table(
    num_positions: int,
    dim: int,
    base: float = 10000.0,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """The sinusoidal position table of shape (num_positions, dim).

    PE[pos, 2i] = sin(pos / base^(2i/dim)) and PE[pos, 2i+1] = cos(pos / base^(2i/dim)):
    sine and cosine interleaved, one frequency per pair of columns. Computed in float64,
    returned in ``dtype``.
    """
    num_positions = _check_positive_int(num_positions, "num_positions")
    angles = position_angles(num_positions, dim, base)  # (P, dim/2)
    table = torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)  # sin, cos, sin, cos, ...
    return table.to(dtype=dtype, device=device)


def sinusoidal_shift_matrix(offset: int, dim: int, base: float = 10000.0) -> Tensor:
    """The (dim, dim) matrix M with PE[pos + offset] = M @ PE[pos] for every pos (float64).

    It is block diagonal: for the pair (sin a, cos a) with a = pos·ω_i, adding
    b = offset·ω_i is the rotation [[cos b, sin b], [-sin b, cos b]] (the angle-sum
    formulas). It does not depend on pos: a shift in position is a fixed linear map.
    """
    if isinstance(offset, bool) or not isinstance(offset, int):
        raise TypeError(f"offset must be an int, got {offset!r}.")
    b = offset * inverse_frequencies(dim, base)
    c, s = b.cos(), b.sin()
    blocks = torch.stack((torch.stack((c, s), -1), torch.stack((-s, c), -1)), -2)  # (dim/2, 2, 2)
    return torch.block_diag(*blocks)


class SinusoidalPositionalEncoding(nn.Module):
    """Adds the fixed sinusoidal table to token embeddings of shape (batch, time, dim).

    The correct version of the seed text's ``PositionalEncoding``: one sine or cosine
    per coordinate with a different frequency for every pair, broadcast over the
    batch. ``offset`` shifts the positions (for generation with a cache);
    ``positions`` (an integer tensor of shape (time,) or (batch, time)) gives them
    explicitly instead (a packed batch, or a cache that starts anywhere).
    """

    table: Tensor

    def __init__(self, dim: int, max_positions: int, base: float = 10000.0, dropout: float = 0.0) -> None:
        super().__init__()
        self.dim = _check_even(dim, "dim")
        self.max_positions = _check_positive_int(max_positions, "max_positions")
        self.register_buffer("table", sinusoidal_table(max_positions, dim, base), persistent=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, offset: int = 0, *, positions: Tensor | None = None) -> Tensor:
        if x.dim() < 2 or x.shape[-1] != self.dim:
            raise ValueError(
                f"expected embeddings of shape (batch, time, {self.dim}) or (time, {self.dim}), got {tuple(x.shape)}."
            )
        time = x.shape[-2]
        if positions is not None:
            _check_explicit_positions(positions, offset, x)
            _check_positions(positions, self.max_positions, f"table of {self.max_positions} positions")
            return self.dropout(x + self.table[positions.to(self.table.device)].to(x.dtype))
        if offset < 0 or offset + time > self.max_positions:
            raise ValueError(
                f"positions {offset}..{offset + time - 1} are beyond the table of {self.max_positions} positions "
                f"(0..{self.max_positions - 1}). Build it with max_positions >= {offset + time}."
            )
        pe = self.table[offset : offset + time].to(x.dtype)  # (time, dim): broadcasts over the batch
        return self.dropout(x + pe)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, max_positions={self.max_positions}"


# --------------------------------------------------------------------------- learned


class LearnedPositionalEmbedding(nn.Module):
    """One trained vector per position, as in GPT-2 (its ``wpe``): a table of shape (max_positions, dim).

    ``forward(positions)`` looks positions up; ``forward(seq_len=T, offset=k)`` returns
    positions k..k+T-1. Positions at or beyond ``max_positions`` have no vector: asking
    for one is an error (a learned table cannot extrapolate).
    """

    def __init__(self, max_positions: int, dim: int, *, init_std: float = 0.02) -> None:
        super().__init__()
        self.max_positions = _check_positive_int(max_positions, "max_positions")
        self.dim = _check_positive_int(dim, "dim")
        self.weight = nn.Parameter(torch.empty(max_positions, dim))
        nn.init.normal_(self.weight, mean=0.0, std=init_std)  # as nanoGPT initialises GPT-2

    def forward(self, positions: Tensor | None = None, *, seq_len: int | None = None, offset: int = 0) -> Tensor:
        if (positions is None) == (seq_len is None):
            raise ValueError("pass either positions (an integer tensor) or seq_len (an int), not both and not neither.")
        if positions is None:
            seq_len = _check_positive_int(seq_len, "seq_len")
            positions = torch.arange(offset, offset + seq_len, device=self.weight.device)
        _check_positions(positions, self.max_positions, f"learned table of {self.max_positions} positions")
        return self.weight[positions]

    def extra_repr(self) -> str:
        return f"max_positions={self.max_positions}, dim={self.dim}"


# --------------------------------------------------------------------------- RoPE


def rope_cos_sin(
    positions: Tensor | int, head_dim: int, base: float = 10000.0, *, dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor]:
    """cos and sin of the RoPE angles m·ω_i, each of shape (*positions.shape, head_dim/2)."""
    angles = position_angles(positions, head_dim, base)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def pairing_permutation(head_dim: int) -> Tensor:
    """The permutation from the interleaved layout to the split-halves layout.

    ``x[..., perm]`` lists the even coordinates, then the odd ones: the pair
    (2i, 2i+1) of the interleaved layout becomes the pair (i, i + head_dim/2).
    So ``apply_rope(x[..., perm], ..., "half") == apply_rope(x, ..., "interleaved")[..., perm]``.
    """
    head_dim = _check_even(head_dim, "head_dim")
    return torch.cat((torch.arange(0, head_dim, 2), torch.arange(1, head_dim, 2)))


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor, pairing: Pairing = "half") -> Tensor:
    """Rotate the coordinate pairs of ``x`` (shape (..., time, head_dim)) by the angles behind cos, sin.

    ``cos`` and ``sin`` have shape (..., time, head_dim/2) and broadcast against x
    without its last axis (e.g. (time, head_dim/2) for every batch and head).
    Pair i = (a, b) becomes (a·cos - b·sin, a·sin + b·cos): a counter-clockwise
    rotation. ``pairing`` says which coordinates form pair i: ``"interleaved"``
    (2i, 2i+1) or ``"half"`` (i, i + head_dim/2). The result has x's dtype; the
    arithmetic runs in float32 at least.
    """
    _check_pairing(pairing)
    if x.dim() < 2:
        raise ValueError(f"x must have shape (..., time, head_dim), got {tuple(x.shape)}.")
    head_dim = x.shape[-1]
    _check_even(head_dim, "head_dim (the last axis of x)")
    if cos.shape != sin.shape:
        raise ValueError(f"cos and sin must have the same shape, got {tuple(cos.shape)} and {tuple(sin.shape)}.")
    if cos.shape[-1] != head_dim // 2:
        raise ValueError(
            f"cos and sin must have head_dim/2 = {head_dim // 2} entries on their last axis "
            f"(one angle per pair), got shape {tuple(cos.shape)} for x of shape {tuple(x.shape)}."
        )
    compute = torch.promote_types(x.dtype, torch.float32)
    xc, cos, sin = x.to(compute), cos.to(compute), sin.to(compute)
    if pairing == "interleaved":
        a, b = xc[..., 0::2], xc[..., 1::2]
    else:
        a, b = xc[..., : head_dim // 2], xc[..., head_dim // 2 :]
    try:
        ra, rb = a * cos - b * sin, a * sin + b * cos
    except RuntimeError as err:
        raise ValueError(
            f"cos/sin of shape {tuple(cos.shape)} do not broadcast against x of shape {tuple(x.shape)} "
            f"(its pairs have shape {tuple(a.shape)}): {err}"
        ) from None
    if ra.shape != a.shape:
        raise ValueError(
            f"cos/sin of shape {tuple(cos.shape)} would change the shape of x {tuple(x.shape)}: "
            "they must broadcast against x, not the other way round."
        )
    if pairing == "interleaved":
        out = torch.stack((ra, rb), dim=-1).flatten(-2)
    else:
        out = torch.cat((ra, rb), dim=-1)
    return out.to(x.dtype)


class RoPE(nn.Module):
    """Rotary position embedding with cached cos/sin tables for positions 0 .. max_positions - 1.

    ``rope(x)`` rotates x of shape (batch, heads, time, head_dim) (or any (..., time,
    head_dim)) for positions offset .. offset + time - 1. ``rope(x, positions=p)`` uses
    explicit positions instead: p of shape (time,) for every sequence, or (batch, time)
    for one row of positions per sequence of a 4-D x. Apply it to queries and keys,
    never to values.

    The cached tables stay float32 even when the model is cast to bfloat16, so the
    result is accurate to float32 (about 1e-7 relative) whatever the input dtype; for
    float64 work, call `apply_rope` with ``rope_cos_sin(..., dtype=torch.float64)``.
    """

    cos: Tensor
    sin: Tensor

    def __init__(self, head_dim: int, max_positions: int, base: float = 10000.0, pairing: Pairing = "half") -> None:
        super().__init__()
        self.head_dim = _check_even(head_dim, "head_dim")
        self.max_positions = _check_positive_int(max_positions, "max_positions")
        self.base = _check_base(base)
        self.pairing = _check_pairing(pairing)
        cos, sin = rope_cos_sin(max_positions, head_dim, base)  # float32, (max_positions, head_dim/2)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def _apply(self, fn, recurse: bool = True):  # type: ignore[no-untyped-def]
        # model.to(torch.bfloat16) casts every floating buffer; the angle tables must stay
        # float32, or positions far from 0 get visibly wrong angles. Rebuild them if cast.
        super()._apply(fn, recurse)
        if self.cos.dtype != torch.float32:
            cos, sin = rope_cos_sin(self.max_positions, self.head_dim, self.base)
            self.cos, self.sin = cos.to(self.cos.device), sin.to(self.sin.device)
        return self

    def cos_sin(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        """Cached cos and sin for integer ``positions``: shape (*positions.shape, head_dim/2)."""
        _check_positions(positions, self.max_positions, f"RoPE table of {self.max_positions} positions")
        positions = positions.to(self.cos.device)
        return self.cos[positions], self.sin[positions]

    def forward(self, x: Tensor, positions: Tensor | None = None, offset: int = 0) -> Tensor:
        if x.dim() < 2 or x.shape[-1] != self.head_dim:
            raise ValueError(
                f"expected x of shape (batch, heads, time, {self.head_dim}), got {tuple(x.shape)}: "
                f"its last axis must be head_dim={self.head_dim}."
            )
        time = x.shape[-2]
        if positions is None:
            offset = non_negative_int(offset, "offset")
            positions = torch.arange(offset, offset + time, device=self.cos.device)
        else:
            _check_explicit_positions(positions, offset, x)
        cos, sin = self.cos_sin(positions)
        if positions.dim() == 2:  # (batch, time): one row per sequence, same for every head
            if x.dim() != 4 or positions.shape[0] not in (1, x.shape[0]):
                raise ValueError(
                    f"positions of shape (batch, time) = {tuple(positions.shape)} need x of shape "
                    f"({positions.shape[0]}, heads, {time}, {self.head_dim}), got {tuple(x.shape)}."
                )
            cos, sin = cos[:, None], sin[:, None]
        elif positions.dim() != 1:
            raise ValueError(f"positions must have shape (time,) or (batch, time), got {tuple(positions.shape)}.")
        return apply_rope(x, cos.to(x.device), sin.to(x.device), self.pairing)

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, max_positions={self.max_positions}, base={self.base:g}, pairing={self.pairing!r}"


# --------------------------------------------------------------------------- ALiBi


def alibi_slopes(num_heads: int) -> Tensor:
    """ALiBi's head slopes: the geometric sequence 2^(-8/n), 2^(-16/n), ..., 2^(-8) for n heads.

    When n is not a power of two, the slopes of the nearest smaller power of two are
    followed by every other slope of the next power of two, as in the ALiBi paper's code.
    """
    num_heads = _check_positive_int(num_heads, "num_heads")

    def power_of_two(n: int) -> list[float]:
        return [2.0 ** (-8.0 * (k + 1) / n) for k in range(n)]

    if num_heads & (num_heads - 1) == 0:
        slopes = power_of_two(num_heads)
    else:
        closest = 2 ** math.floor(math.log2(num_heads))
        slopes = power_of_two(closest) + power_of_two(2 * closest)[0::2][: num_heads - closest]
    return torch.tensor(slopes, dtype=torch.float32)


def alibi_bias(num_heads: int, seq_len: int) -> Tensor:
    """The ALiBi bias of shape (num_heads, seq_len, seq_len): -slope · (i - j) for key j <= query i.

    Added to the attention scores before the causal mask and softmax; entries above
    the diagonal (the future) are 0 here and are removed by the causal mask.
    """
    seq_len = _check_positive_int(seq_len, "seq_len")
    pos = torch.arange(seq_len)
    distance = (pos[:, None] - pos[None, :]).clamp(min=0).to(torch.float32)  # i - j for j <= i
    return 0.0 - alibi_slopes(num_heads)[:, None, None] * distance  # 0 - x: no negative zeros


# --------------------------------------------------------------------------- checks


_PAIRS = "positions are encoded in pairs of coordinates (a sine and a cosine, or the two coordinates RoPE rotates)"


def _check_positive_int(value: object, name: str) -> int:
    return positive_int(value, name)


def _check_even(dim: object, name: str) -> int:
    return even_int(dim, name, _PAIRS)


def _check_base(base: object) -> float:
    return finite_above(base, "base", 1.0, "10000 is the usual choice")


def _check_pairing(pairing: str) -> str:
    return one_of(pairing, PAIRINGS, "pairing")


def _check_explicit_positions(positions: Tensor, offset: int, x: Tensor) -> None:
    """Positions given explicitly: no offset besides them, and one per time step of ``x`` (time is axis -2)."""
    if offset != 0:
        raise ValueError("pass either positions or offset, not both: add the offset to the positions yourself.")
    if positions.shape[-1] != x.shape[-2]:
        raise ValueError(
            f"positions of shape {tuple(positions.shape)} must give one position per time step: "
            f"their last axis should be {x.shape[-2]}, the time axis of x {tuple(x.shape)}."
        )


def _check_positions(positions: Tensor, limit: int, what: str) -> None:
    if positions.dtype.is_floating_point or positions.dtype.is_complex or positions.dtype == torch.bool:
        raise TypeError(f"positions must be an integer tensor (torch.long), got dtype {positions.dtype}.")
    if positions.numel() == 0:
        return
    low, high = int(positions.min()), int(positions.max())
    if low < 0:
        raise ValueError(f"positions must be >= 0, got a smallest position of {low}.")
    if high >= limit:
        raise ValueError(
            f"position {high} is beyond the {what} (positions 0..{limit - 1}). "
            f"Build it with max_positions >= {high + 1}, or use shorter sequences."
        )


__all__ = [
    "PAIRINGS",
    "LearnedPositionalEmbedding",
    "RoPE",
    "SinusoidalPositionalEncoding",
    "alibi_bias",
    "alibi_slopes",
    "apply_rope",
    "inverse_frequencies",
    "pairing_permutation",
    "position_angles",
    "rope_cos_sin",
    "sinusoidal_shift_matrix",
    "sinusoidal_table",
    "wavelengths",
]
