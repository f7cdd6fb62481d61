"""Reference solutions for chapter 13 (inside a modern LLM)."""

from __future__ import annotations


def online_softmax_update(m, l, acc, scores, v):
    """Fold one block of scores (rows, block) and values (block, d) into the running max m, sum l and output acc."""
    import torch

    m_new = torch.maximum(m, scores.amax(dim=-1))
    safe = torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new)  # a row that has seen only -inf
    rescale = torch.exp(m - safe)  # how much the old terms shrink under the new maximum (0 on a row's first block)
    p = torch.exp(scores - safe[:, None])
    return m_new, l * rescale + p.sum(dim=-1), acc * rescale[:, None] + p @ v


def speculative_rule(p, q, x):
    """The probability of accepting drafted token x, min(1, p[x] / q[x]), and the residual norm(max(0, p - q))."""
    import torch

    alpha = torch.clamp(p[x] / q[x], max=1.0)
    r = torch.clamp(p - q, min=0.0)
    return alpha, r / r.sum()


def load_balancing_loss(router_probs, assignments, n_experts):
    """n_experts * sum_i f_i * P_i: f_i the share of assignments to expert i, P_i its mean router probability."""
    import torch

    f = torch.bincount(assignments.reshape(-1), minlength=n_experts).to(router_probs.dtype)
    f = f / assignments.numel()
    return n_experts * (f * router_probs.mean(dim=0)).sum()
