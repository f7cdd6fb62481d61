"""Reference solutions of chapter 04's exercises (attention in PyTorch and the GPT model)."""

import torch


def block_forward(x: torch.Tensor, norm1, attn, norm2, mlp) -> torch.Tensor:
    """One pre-norm Transformer block: each sub-layer reads a normalised copy and adds to the stream.

    ``norm1``, ``attn``, ``norm2`` and ``mlp`` are the block's sub-layers, each a function of a (batch, time, d) tensor.
    """
    h = x + attn(norm1(x))
    return h + mlp(norm2(h))


def future_leak(model, idx: torch.Tensor, t: int, vocab_size: int) -> float:
    """The largest change of the outputs at positions < t when the token at position t changes."""
    changed = idx.clone()
    changed[:, t] = (changed[:, t] + 1) % vocab_size  # a different, valid token id
    with torch.no_grad():
        before, after = model(idx), model(changed)
    if t == 0:
        return 0.0
    return (after[:, :t] - before[:, :t]).abs().max().item()


def count_parameters(config) -> int:
    """Parameters of a `course.model.GPT` built from ``config``, by formula."""
    d, h, L, V = config.n_embd, config.hidden, config.n_layer, config.vocab_size
    b = 1 if config.bias else 0
    norm = d if config.norm == "rmsnorm" else d + b * d  # weight, plus a bias for LayerNorm with bias
    attention = d * 3 * d + b * 3 * d + d * d + b * d  # qkv projection, output projection
    matrices = 2 if config.mlp == "gelu" else 3  # (up, down) or (gate, up, down)
    mlp = (matrices - 1) * (d * h + b * h) + h * d + b * d
    block = attention + mlp + 2 * norm
    embeddings = V * d + (config.block_size * d if config.positional == "learned" else 0)
    head = 0 if config.tie_weights else V * d
    return embeddings + L * block + norm + head
