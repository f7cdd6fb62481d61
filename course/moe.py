"""Chapter 13: a mixture-of-experts feed-forward layer with a top-k router and a load-balancing loss.

Each token's hidden vector goes to a *router*, a linear layer with one output per expert.
Its softmax gives the token's preference over ``n_experts`` MLPs; the token is sent to
its ``top_k`` favourites only, and their outputs are summed with the router's
probabilities renormalised over those k (Mixtral's choice; Switch Transformer, with
k = 1, keeps the raw probability). So a layer holds ``n_experts`` MLPs' parameters but
each token pays for ``top_k`` of them: *total* and *active* parameters part ways.

Left alone, a router tends to collapse onto a few experts (those that happen to be
trained first get better, so they are chosen more). The Switch/GShard load-balancing
loss counters it:

    L_balance = n_experts · Σ_i f_i · P_i,

with f_i the share of the token-to-expert assignments that went to expert i and P_i the
mean router probability of expert i. It is 1 when both are uniform and n_experts when
every token goes to one expert with certainty (`load_balancing_loss`); it is added to the
language-model loss with a small weight (0.01 in Switch Transformer).

Two ways to run the experts give the same numbers (the tests check it): `dispatch="loop"`
visits the experts one by one and gathers their tokens (simple, and what a naive
PyTorch MoE does), `dispatch="batched"` groups the tokens per expert into one padded
batch and runs all experts in two batched matrix products.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MoE", "expert_load", "load_balancing_loss"]


def load_balancing_loss(router_probs: Tensor, assignments: Tensor, n_experts: int) -> Tensor:
    """n_experts · Σ_i f_i · P_i. ``router_probs``: (tokens, n_experts) softmax of the router; ``assignments``:
    (tokens, top_k) chosen experts. Gradients flow through P (f is a count)."""
    if router_probs.dim() != 2 or router_probs.shape[-1] != n_experts:
        raise ValueError(f"router_probs must be (tokens, {n_experts}), got {tuple(router_probs.shape)}.")
    f = expert_load(assignments, n_experts)
    p = router_probs.mean(dim=0)
    return n_experts * (f * p).sum()


def expert_load(assignments: Tensor, n_experts: int) -> Tensor:
    """The share of token-to-expert assignments that each expert received (sums to 1)."""
    counts = torch.bincount(assignments.reshape(-1), minlength=n_experts).to(torch.float32)
    return counts / counts.sum().clamp(min=1)


class MoE(nn.Module):
    """A feed-forward layer of ``n_experts`` GELU MLPs (dim -> hidden -> dim), ``top_k`` of them per token.

    ``forward(x)`` returns the output (same shape as x) and stores the last call's router
    probabilities, assignments and balancing loss in ``self.last`` (for the training loop
    and the plots). Weights are stacked, (n_experts, dim, hidden) and (n_experts, hidden, dim),
    so both dispatch modes share them.
    """

    def __init__(self, dim: int, hidden: int, n_experts: int, top_k: int = 2, *, dispatch: str = "batched",
                 renormalize: bool = True) -> None:
        super().__init__()
        if not 1 <= top_k <= n_experts:
            raise ValueError(f"top_k must be between 1 and n_experts={n_experts}, got {top_k}.")
        if dispatch not in ("loop", "batched"):
            raise ValueError(f"dispatch must be 'loop' or 'batched', got {dispatch!r}.")
        self.n_experts, self.top_k, self.dispatch, self.renormalize = n_experts, top_k, dispatch, renormalize
        self.router = nn.Linear(dim, n_experts, bias=False)
        self.w_in = nn.Parameter(torch.empty(n_experts, dim, hidden))
        self.b_in = nn.Parameter(torch.zeros(n_experts, hidden))
        self.w_out = nn.Parameter(torch.empty(n_experts, hidden, dim))
        self.b_out = nn.Parameter(torch.zeros(n_experts, dim))
        nn.init.normal_(self.w_in, std=0.02)
        nn.init.normal_(self.w_out, std=0.02)
        nn.init.normal_(self.router.weight, std=0.02)
        self.last: dict[str, Tensor] = {}

    def expert(self, e: int, x: Tensor) -> Tensor:
        """Expert ``e`` alone on tokens (n, dim)."""
        return F.gelu(x @ self.w_in[e] + self.b_in[e]) @ self.w_out[e] + self.b_out[e]

    def route(self, tokens: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Router probabilities (n, E), chosen experts (n, k) and their weights (n, k)."""
        probs = torch.softmax(self.router(tokens).float(), dim=-1)
        weights, chosen = probs.topk(self.top_k, dim=-1)
        if self.renormalize:
            weights = weights / weights.sum(dim=-1, keepdim=True)
        return probs, chosen, weights.to(tokens.dtype)

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        tokens = x.reshape(-1, shape[-1])
        probs, chosen, weights = self.route(tokens)
        if self.dispatch == "loop":
            out = self._loop(tokens, chosen, weights)
        else:
            out = self._batched(tokens, chosen, weights)
        self.last = {"probs": probs.detach(), "chosen": chosen.detach(),
                     "balance_loss": load_balancing_loss(probs, chosen, self.n_experts)}
        return out.reshape(shape)

    def _loop(self, tokens: Tensor, chosen: Tensor, weights: Tensor) -> Tensor:
        out = torch.zeros_like(tokens)
        for e in range(self.n_experts):
            rows, slot = torch.nonzero(chosen == e, as_tuple=True)
            if rows.numel():
                out.index_add_(0, rows, weights[rows, slot].unsqueeze(-1) * self.expert(e, tokens[rows]))
        return out

    def _batched(self, tokens: Tensor, chosen: Tensor, weights: Tensor) -> Tensor:
        n, k = chosen.shape
        flat_expert = chosen.reshape(-1)  # one entry per (token, slot) assignment
        flat_token = torch.arange(n, device=tokens.device).repeat_interleave(k)
        order = torch.argsort(flat_expert, stable=True)
        expert_sorted, token_sorted = flat_expert[order], flat_token[order]
        counts = torch.bincount(flat_expert, minlength=self.n_experts)
        capacity = int(counts.max()) if counts.numel() else 0
        starts = torch.cumsum(counts, 0) - counts
        position = torch.arange(n * k, device=tokens.device) - starts[expert_sorted]  # rank within the expert
        padded = tokens.new_zeros(self.n_experts, max(capacity, 1), tokens.shape[-1])
        padded[expert_sorted, position] = tokens[token_sorted]
        hidden = F.gelu(torch.baddbmm(self.b_in.unsqueeze(1), padded, self.w_in))
        result = torch.baddbmm(self.b_out.unsqueeze(1), hidden, self.w_out)
        w = weights.reshape(-1)[order].unsqueeze(-1)
        out = torch.zeros_like(tokens)
        out.index_add_(0, token_sorted, w * result[expert_sorted, position])
        return out

    def active_parameters(self) -> int:
        """Parameters one token uses: the router and top_k experts."""
        per_expert = (self.w_in[0].numel() + self.b_in[0].numel() + self.w_out[0].numel() + self.b_out[0].numel())
        return self.router.weight.numel() + self.top_k * per_expert

    def total_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

