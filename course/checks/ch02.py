"""Checks for the exercises of chapter 02 (embeddings and positions).

Each check builds its own inputs, compares with a float64 reference computed
here, and recognises the classic mistakes of the exercise (sine and cosine
swapped, the seed text's one-frequency formula, the wrong pairing, a rotation
the wrong way round) so it can say what to fix.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from . import ExerciseFailed, _as_array, call, exercise_check, expect, expect_close


def _angles(num_positions: int, dim: int, base: float, exponent_scale: float = 2.0) -> np.ndarray:
    """pos / base^(exponent_scale·i/dim) for pairs i = 0..dim/2-1, shape (P, dim/2)."""
    pos = np.arange(num_positions, dtype=np.float64)[:, None]
    i = np.arange(dim // 2, dtype=np.float64)
    return pos / base ** (exponent_scale * i / dim)


def _interleave(even: np.ndarray, odd: np.ndarray) -> np.ndarray:
    out = np.empty(even.shape[:-1] + (2 * even.shape[-1],), dtype=np.float64)
    out[..., 0::2], out[..., 1::2] = even, odd
    return out


def _reference_pe(num_positions: int, dim: int, base: float = 10000.0) -> np.ndarray:
    a = _angles(num_positions, dim, base)
    return _interleave(np.sin(a), np.cos(a))


def _close(a: np.ndarray, b: np.ndarray, tol: float = 1e-6) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=0.0, atol=tol))


def _float_array(x: Any, what: str) -> np.ndarray:
    arr = _as_array(x)
    expect(arr.dtype != object, f"{what} is not an array or a tensor of numbers (got {type(x).__name__}).")
    expect(np.issubdtype(arr.dtype, np.number), f"{what} has dtype {arr.dtype}: it should hold floating-point numbers.")
    return arr.astype(np.float64)


# --------------------------------------------------------------------------- exercise 1


@exercise_check("sinusoidal position encoding")
def check_sinusoidal_pe(sinusoidal_pe: Callable[..., Any]) -> None:
    """``sinusoidal_pe(num_positions, dim, base=10000.0)`` must return the (P, dim) sinusoidal table."""
    P, D = 50, 16
    out = _float_array(call(sinusoidal_pe, P, D), f"sinusoidal_pe({P}, {D})")
    if out.shape == (D, P):
        raise ExerciseFailed(f"sinusoidal_pe({P}, {D}) has shape {out.shape}: transposed. Rows are positions, columns dimensions: return shape ({P}, {D}).")
    expect(out.shape == (P, D), f"sinusoidal_pe({P}, {D}) has shape {out.shape}, expected ({P}, {D}): one row per position, one column per dimension.")
    expect(np.isfinite(out).all(), f"sinusoidal_pe({P}, {D}) contains nan or inf.")
    ref = _reference_pe(P, D)
    if not _close(out, ref):
        a = _angles(P, D, 10000.0)
        seed = np.repeat(np.sin(np.arange(P, dtype=np.float64) / 10000.0)[:, None], D, axis=1)
        if np.allclose(out, out[:, :1]):
            hint = (
                "every column of a row holds the same value: one number per position. "
                "Each pair of columns 2i, 2i+1 needs its own frequency 1 / 10000^(2i/dim)."
            )
            if _close(out, seed):
                hint = "this is the seed text's formula sin(pos / 10000): " + hint
            raise ExerciseFailed(hint)
        if _close(out, _interleave(np.cos(a), np.sin(a))):
            raise ExerciseFailed("sine and cosine are swapped: even columns (0, 2, 4, ...) hold the sine, odd columns the cosine.")
        if _close(out, np.concatenate([np.sin(a), np.cos(a)], axis=1)):
            raise ExerciseFailed(
                "you put all the sines in the first half and all the cosines in the second half. That layout "
                "also works inside a model, but the formula interleaves them: column 2i is sin, column 2i+1 is cos "
                "(use pe[:, 0::2] and pe[:, 1::2])."
            )
        same_speed = np.arange(P, dtype=np.float64)[:, None] * np.ones(D // 2)
        if _close(out, _interleave(np.sin(same_speed), np.cos(same_speed))):
            raise ExerciseFailed(
                "every pair of columns uses the angle pos itself: the exponent 2i/dim came out as 0. Integer "
                "division? (2 * i // dim is 0 for every i < dim/2): divide as floats, 2 * i / dim."
            )
        half_speed = _angles(P, D, 10000.0, exponent_scale=1.0)
        if _close(out, _interleave(np.sin(half_speed), np.cos(half_speed))):
            raise ExerciseFailed("your frequencies use 10000^(i/dim) where the formula has 10000^(2i/dim): i counts pairs, so the exponent is 2i/dim.")
        pos = np.arange(P, dtype=np.float64)[:, None]
        j = np.arange(D, dtype=np.float64)
        per_column = np.where(j % 2 == 0, np.sin(pos / 10000.0 ** (j / D)), np.cos(pos / 10000.0 ** (j / D)))
        if _close(out, per_column):
            raise ExerciseFailed(
                "column 2i+1 uses a different frequency from column 2i: you wrote 10000^(j/dim) with the column "
                "index j. Both columns of a pair share the angle pos / 10000^(2i/dim) (use j - j % 2)."
            )
        times = np.arange(P, dtype=np.float64)[:, None] * 10000.0 ** (np.arange(0, D, 2) / D)
        if _close(out, _interleave(np.sin(times), np.cos(times))):
            raise ExerciseFailed("you multiplied the position by 10000^(2i/dim); divide by it (the frequencies must fall, not grow).")
        if _close(out, _reference_pe(P + 1, D)[1:]):
            raise ExerciseFailed(
                f"your rows are positions 1 .. {P}: positions start at 0. Row 0 is position 0, where every angle "
                "is 0 (sin 0 = 0 in the even columns, cos 0 = 1 in the odd ones): use np.arange(num_positions)."
            )
        if _close(out[0], ref[0]) and not _close(out[1], ref[1]):
            raise ExerciseFailed("row 0 is right but row 1 is not: check how the angle grows with the position.")
    expect_close(out, ref, f"sinusoidal_pe({P}, {D})", rtol=0.0, atol=1e-6)

    # Other sizes and another base: nothing hard-coded.
    out = _float_array(call(sinusoidal_pe, 7, 4, base=100.0), "sinusoidal_pe(7, 4, base=100.0)")
    ref = _reference_pe(7, 4, 100.0)
    if out.shape == ref.shape and _close(out, _reference_pe(7, 4)):
        raise ExerciseFailed("sinusoidal_pe(7, 4, base=100.0) ignores its base argument: use base instead of 10000.")
    expect_close(out, ref, "sinusoidal_pe(7, 4, base=100.0)", rtol=0.0, atol=1e-6)


# --------------------------------------------------------------------------- exercise 2


# RoPE and the shift matrix are compared to this absolute tolerance: angles computed in float32 (the default
# dtype of torch.arange(0, d, 2) / d) are a valid answer and are off by about 1e-7; every slip is off by O(1).
_TRIG_TOL = 1e-5


def _rotate(x: np.ndarray, positions: np.ndarray, base: float, sign: float = 1.0, pairing: str = "interleaved",
            exponent_scale: float = 2.0) -> np.ndarray:
    d = x.shape[-1]
    ang = sign * positions.astype(np.float64)[:, None] * base ** (-exponent_scale * np.arange(d // 2, dtype=np.float64) / d)
    c, s = np.cos(ang), np.sin(ang)
    if pairing == "interleaved":
        a, b = x[..., 0::2], x[..., 1::2]
        return _interleave(a * c - b * s, a * s + b * c)
    a, b = x[..., : d // 2], x[..., d // 2 :]
    return np.concatenate([a * c - b * s, a * s + b * c], axis=-1)


@exercise_check("RoPE rotation")
def check_rope_rotate(rope_rotate: Callable[..., Any]) -> None:
    """``rope_rotate(x, positions, base=10000.0)``: x (..., time, d) float64 tensor, positions (time,) long tensor."""
    import torch

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 6, 8, dtype=torch.float64, generator=gen)
    positions = torch.tensor([3, 4, 5, 6, 7, 8])
    x_before = x.clone()
    raw = call(rope_rotate, x, positions)
    expect(torch.equal(x, x_before), "rope_rotate changed its input x in place: write the rotated pairs into a new tensor.")
    out = _float_array(raw, "rope_rotate(x, positions)")
    expect(out.shape == tuple(x.shape), f"rope_rotate returned shape {out.shape} for x of shape {tuple(x.shape)}: it must keep the shape.")
    xn, pn = x.numpy(), positions.numpy()
    ref = _rotate(xn, pn, 10000.0)
    if not _close(out, ref, _TRIG_TOL):
        if _close(out, _rotate(xn, pn, 10000.0, sign=-1.0), _TRIG_TOL):
            raise ExerciseFailed("you rotate the wrong way round: pair (a, b) must become (a·cos - b·sin, a·sin + b·cos).")
        if _close(out, _rotate(xn, pn, 10000.0, pairing="half"), _TRIG_TOL):
            raise ExerciseFailed(
                "you paired coordinate i with i + d/2 (the split-halves layout of GPT-NeoX and Llama). This exercise "
                "uses interleaved pairs: (x[..., 0], x[..., 1]), (x[..., 2], x[..., 3]), ... (use 0::2 and 1::2)."
            )
        if _close(out, _rotate(xn, np.arange(len(pn)), 10000.0), _TRIG_TOL):
            raise ExerciseFailed("you used positions 0, 1, 2, ... instead of the positions argument (here 3..8): rotate by positions * frequency.")
        if _close(out, _rotate(xn, pn, 10000.0, exponent_scale=1.0), _TRIG_TOL):
            raise ExerciseFailed("your frequencies use base^(-i/d) where the formula has base^(-2i/d): i counts pairs, "
                                 "so the exponent is 2i/d (torch.arange(0, d, 2) / d).")
        norms_in, norms_out = np.linalg.norm(xn, axis=-1), np.linalg.norm(out, axis=-1)
        if not np.allclose(norms_in, norms_out):
            raise ExerciseFailed(
                "the output vectors do not have the length of the input vectors: a rotation never changes length. "
                "Both coordinates of a pair must use the same angle, with cos on the diagonal and ±sin off it."
            )
    expect_close(out, ref, "rope_rotate(x, positions)", rtol=0.0, atol=_TRIG_TOL)

    # Position 0 is no rotation at all; another base is used.
    zero = _float_array(call(rope_rotate, x, torch.zeros(6, dtype=torch.long)), "rope_rotate(x, zeros)")
    expect_close(zero, xn, "rope_rotate(x, positions=0) (it must leave x unchanged)", rtol=0.0, atol=_TRIG_TOL)
    out = _float_array(call(rope_rotate, x, positions, base=100.0), "rope_rotate(x, positions, base=100.0)")
    if _close(out, ref, _TRIG_TOL):
        raise ExerciseFailed("rope_rotate ignores its base argument: the frequencies are base^(-2i/d).")
    expect_close(out, _rotate(xn, pn, 100.0), "rope_rotate(x, positions, base=100.0)", rtol=0.0, atol=_TRIG_TOL)

    # The point of it all: the score depends only on the offset m - n.
    q = torch.randn(1, 8, dtype=torch.float64, generator=gen)
    k = torch.randn(1, 8, dtype=torch.float64, generator=gen)
    scores = []
    for shift in (0, 11, 40):
        qm = _float_array(call(rope_rotate, q, torch.tensor([5 + shift])), "rope_rotate(q, ...)")
        kn = _float_array(call(rope_rotate, k, torch.tensor([2 + shift])), "rope_rotate(k, ...)")
        scores.append(float((qm * kn).sum()))
    expect(
        max(scores) - min(scores) < _TRIG_TOL,
        f"q(m)·k(n) should depend only on m - n, but positions (5, 2), (16, 13), (45, 42) give {[round(s, 6) for s in scores]}.",
    )


# --------------------------------------------------------------------------- exercise 3


def _blocks(cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """The block-diagonal matrix whose 2x2 block i is [[cos_i, sin_i], [-sin_i, cos_i]]."""
    m = np.zeros((2 * len(cos), 2 * len(cos)))
    for i, (c, s) in enumerate(zip(cos, sin)):
        m[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = [[c, s], [-s, c]]
    return m


@exercise_check("shift matrix")
def check_shift_matrix(shift_matrix: Callable[..., Any]) -> None:
    """``shift_matrix(k, dim, base=10000.0)``: M of shape (dim, dim) with PE[pos + k] = M @ PE[pos]."""
    for k, dim, base in ((3, 8, 10000.0), (1, 4, 10000.0), (17, 16, 10000.0), (5, 6, 100.0), (0, 4, 10000.0)):
        what = f"shift_matrix({k}, {dim}" + (f", base={base})" if base != 10000.0 else ")")
        m = _float_array(call(shift_matrix, k, dim, base=base), what)
        expect(m.shape == (dim, dim), f"{what} has shape {m.shape}, expected ({dim}, {dim}).")
        expect(np.isfinite(m).all(), f"{what} contains nan or inf.")
        pe = _reference_pe(60, dim, base)
        predicted = pe[:-k or None] @ m.T  # row pos: M @ PE[pos]
        target = pe[k:]
        if _close(predicted, target, _TRIG_TOL):
            continue
        if k and _close(pe[k:] @ m.T, pe[:-k], _TRIG_TOL):
            raise ExerciseFailed(
                f"{what} moves positions back by {k} instead of forward: it is the inverse (the transpose) of the "
                "right matrix. For the pair (sin a, cos a), sin(a + b) = sin a·cos b + cos a·sin b, so the first "
                "row of each 2x2 block is [cos b, sin b]."
            )
        off_block = m.copy()
        for i in range(dim // 2):
            off_block[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = 0.0
        if np.abs(off_block).max() > 1e-12:
            raise ExerciseFailed(
                f"{what} has non-zero entries outside the 2x2 blocks on its diagonal: each pair (2i, 2i+1) only "
                "mixes with itself, because each pair has its own frequency."
            )
        if not np.allclose(m @ m.T, np.eye(dim), atol=_TRIG_TOL):
            raise ExerciseFailed(
                f"{what} is not a rotation (M Mᵀ is not the identity), so it changes the length of PE[pos]: "
                "each 2x2 block is [[cos b, sin b], [-sin b, cos b]], with exactly one minus sign."
            )
        if dim > 2 and k and _close(m, _blocks(np.full(dim // 2, m[0, 0]), np.full(dim // 2, m[0, 1])), 1e-12):
            raise ExerciseFailed(
                f"{what} turns every pair by the same angle: each pair i has its own frequency, so its block "
                "turns by b = k / base^(2i/dim)."
            )
        slower = k / base ** (np.arange(dim // 2) / dim)
        if _close(m, _blocks(np.cos(slower), np.sin(slower)), _TRIG_TOL):
            raise ExerciseFailed(f"{what} uses the angle k / base^(i/dim) where the formula has k / base^(2i/dim): "
                                 "i counts pairs, so the exponent is 2i/dim.")
        default = _reference_pe(60, dim)
        if base != 10000.0 and k and _close(default[:-k] @ m.T, default[k:], _TRIG_TOL):
            raise ExerciseFailed(f"{what} ignores its base argument: the frequencies are 1 / base^(2i/dim).")
        worst = int(np.argmax(np.abs(predicted - target).max(axis=0)))
        raise ExerciseFailed(
            f"{what} @ PE[pos] differs from PE[pos + {k}] (worst in dimension {worst}). "
            f"Pair i turns by b = k / base^(2i/dim); its 2x2 block is [[cos b, sin b], [-sin b, cos b]]."
        )
    m = _float_array(call(shift_matrix, -4, 8), "shift_matrix(-4, 8)")
    pe = _reference_pe(60, 8)
    expect_close(pe[4:] @ m.T, pe[:-4], "shift_matrix(-4, 8) @ PE[pos] compared with PE[pos - 4]", rtol=0.0, atol=_TRIG_TOL)
