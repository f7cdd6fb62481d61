"""Solutions to the exercises of chapter 02 (embeddings and positions)."""

import math

import torch


def sinusoidal_pe(num_positions, dim, base=10000.0):
    """PE[pos, 2i] = sin(pos / base^(2i/dim)), PE[pos, 2i+1] = cos(pos / base^(2i/dim))."""
    pos = torch.arange(num_positions, dtype=torch.float64)[:, None]  # (P, 1)
    two_i = torch.arange(0, dim, 2, dtype=torch.float64)  # 0, 2, 4, ...: one entry per pair
    angles = pos / base ** (two_i / dim)  # (P, dim/2): every pair turns at its own speed
    pe = torch.zeros(num_positions, dim, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angles)  # even columns: sine
    pe[:, 1::2] = torch.cos(angles)  # odd columns: cosine of the same angle
    return pe


def rope_rotate(x, positions, base=10000.0):
    """Rotate the pairs (x[..., 2i], x[..., 2i+1]) by the angle positions * base^(-2i/d)."""
    d = x.shape[-1]
    freqs = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)  # (d/2,)
    angles = positions.to(torch.float64)[:, None] * freqs  # (time, d/2)
    cos, sin = torch.cos(angles).to(x.dtype), torch.sin(angles).to(x.dtype)
    a, b = x[..., 0::2], x[..., 1::2]  # the two coordinates of every pair
    out = torch.empty_like(x)
    out[..., 0::2] = a * cos - b * sin  # counter-clockwise rotation by the angle
    out[..., 1::2] = a * sin + b * cos
    return out


def shift_matrix(k, dim, base=10000.0):
    """The matrix M with PE[pos + k] = M @ PE[pos] for every position pos."""
    m = torch.zeros(dim, dim, dtype=torch.float64)
    for i in range(dim // 2):
        b = k / base ** (2 * i / dim)  # how far pair i turns in k steps
        c, s = math.cos(b), math.sin(b)
        # sin(a + b) = sin a cos b + cos a sin b;  cos(a + b) = cos a cos b - sin a sin b
        m[2 * i, 2 * i], m[2 * i, 2 * i + 1] = c, s
        m[2 * i + 1, 2 * i], m[2 * i + 1, 2 * i + 1] = -s, c
    return m
