"""Solutions to the exercises of chapter 05 (pretraining)."""

import math

import torch


def get_batch(data, block_size, batch_size, generator):
    """Random training windows: inputs (batch, block) and targets shifted by one position."""
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    x = torch.stack([data[s : s + block_size] for s in starts])
    y = torch.stack([data[s + 1 : s + 1 + block_size] for s in starts])
    return x, y


def learning_rate(step, *, lr, min_lr, warmup, total):
    """Linear warmup to lr over `warmup` steps, then cosine decay to min_lr at step `total`."""
    if step < warmup:
        return lr * (step + 1) / (warmup + 1)
    if step >= total:
        return min_lr
    progress = (step - warmup) / (total - warmup)
    return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (lr - min_lr)


@torch.no_grad()
def estimate_loss(model, batches):
    """Mean loss over fixed batches, with dropout off; the model's mode is restored afterwards."""
    was_training = model.training
    model.eval()
    losses = [model(x, y)[1].item() for x, y in batches]
    model.train(was_training)
    return sum(losses) / len(losses)
