"""Solutions to the exercises of chapter 07 (fine-tuning)."""

import torch


def sft_example(prompt_ids, response_ids):
    """Inputs and targets of one prompt/response example; the prompt's targets are -100 (not learned)."""
    ids = list(prompt_ids) + list(response_ids)
    x, y = ids[:-1], ids[1:]
    n_masked = len(prompt_ids) - 1  # target t is ids[t + 1]: a prompt token while t + 1 < len(prompt)
    y = [-100] * n_masked + y[n_masked:]
    return torch.tensor(x), torch.tensor(y)


def lora_forward(x, weight, bias, A, B, scaling):
    """A linear layer with a low-rank change: x Wᵀ + b + scaling · x Aᵀ Bᵀ."""
    return x @ weight.T + bias + scaling * (x @ A.T) @ B.T


def merge_lora_weight(weight, A, B, scaling):
    """The merged weight W + scaling · B A: one matrix that computes what the adapted layer computes."""
    return weight + scaling * (B @ A)
