"""Solutions to the exercises of chapter 06 (sampling and decoding)."""

import torch


def temperature_probs(logits, temperature):
    """softmax(logits / temperature) over the last axis; temperature must be > 0."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}; use greedy decoding (argmax) for the limit T -> 0.")
    return torch.softmax(logits / temperature, dim=-1)


def top_k_probs(logits, k):
    """The distribution restricted to the k most likely tokens, renormalised, in the original order."""
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # the k-th largest logit of each row
    kept = logits.masked_fill(logits < kth, float("-inf"))  # exp(-inf) = 0: dropped tokens get probability 0
    return torch.softmax(kept, dim=-1)  # the softmax renormalises over the kept tokens


def top_p_probs(logits, p):
    """The nucleus: the smallest set of most likely tokens whose probability reaches p, renormalised."""
    probs = torch.softmax(logits, dim=-1)
    sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs  # probability of the tokens ranked above
    keep_sorted = mass_before < p  # the token that crosses p is kept; the most likely token always is
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)  # back to the original order
    kept = probs * keep
    return kept / kept.sum(dim=-1, keepdim=True)
