"""Solutions to the exercises of chapter 08 (efficiency and scale)."""

import torch


def zero_bytes_per_gpu(n_params, world_size, stage):
    """Bytes of fp32 weights, gradients and AdamW states on each GPU under ZeRO `stage` (0 = plain DDP)."""
    weights, grads, adam = 4 * n_params, 4 * n_params, 8 * n_params
    if stage >= 1:
        adam = adam / world_size  # stage 1: each GPU keeps the optimizer states of its shard only
    if stage >= 2:
        grads = grads / world_size  # stage 2: gradients are reduce-scattered, not all-reduced
    if stage >= 3:
        weights = weights / world_size  # stage 3 / FSDP: weights gathered layer by layer when needed
    return weights + grads + adam


def quantize_rows_int8(w):
    """Symmetric int8 with one scale per row: (q int8, scale float32 of shape (rows, 1))."""
    scale = w.abs().amax(dim=1, keepdim=True) / 127
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero row: any scale works
    q = torch.round(w / scale).clamp(-127, 127).to(torch.int8)
    return q, scale


def accumulate_gradients(model, x, y, k):
    """Leave in .grad the gradient of the mean loss over (x, y), computed in k micro-batches."""
    model.zero_grad(set_to_none=True)
    for xs, ys in zip(x.chunk(k), y.chunk(k)):
        _, loss = model(xs, ys)
        (loss / k).backward()  # each micro-batch's mean loss counts 1/k of the big batch's mean
