"""Reference solutions for chapter 12 (preferences and reinforcement learning)."""

from __future__ import annotations


def bradley_terry_loss(r_chosen, r_rejected):
    """Mean over pairs of -log sigmoid(r_chosen - r_rejected), written with logsigmoid (stable)."""
    import torch.nn.functional as F

    return -F.logsigmoid(r_chosen - r_rejected).mean()


def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta):
    """Mean over pairs of -log sigmoid(beta * (chosen log-ratio - rejected log-ratio))."""
    import torch.nn.functional as F

    margin = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    return -F.logsigmoid(beta * margin).mean()


def group_advantages(rewards):
    """(r - group mean) / (group sample std + 1e-4), one row per group; a group of equal rewards gives zeros."""
    mean = rewards.mean(dim=1, keepdim=True)
    std = rewards.std(dim=1, keepdim=True)  # the sample standard deviation (n - 1), torch's default
    return (rewards - mean) / (std + 1e-4)
