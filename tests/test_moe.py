"""course.moe (chapter 13): both dispatch modes compute the same layer, values and gradients; the load-balancing
loss is 1 when balanced and n_experts when collapsed; one expert is an MLP."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from course.moe import MoE, expert_load, load_balancing_loss


def _pair(n_experts=4, top_k=2, seed=0):
    torch.manual_seed(seed)
    a = MoE(8, 16, n_experts, top_k, dispatch="loop").double()
    b = MoE(8, 16, n_experts, top_k, dispatch="batched").double()
    b.load_state_dict(a.state_dict())
    for p in a.parameters():  # larger weights than the init, so that routing and outputs are far from uniform
        with torch.no_grad():
            p.normal_(0, 0.5)
    b.load_state_dict(a.state_dict())
    return a, b


@pytest.mark.parametrize("n_experts,top_k", [(4, 1), (4, 2), (6, 3), (3, 3)])
def test_loop_and_batched_dispatch_agree_values_and_gradients(n_experts, top_k):
    a, b = _pair(n_experts, top_k)
    x = torch.randn(3, 17, 8, dtype=torch.float64, requires_grad=True)
    ya, yb = a(x), b(x)
    assert torch.allclose(ya, yb, atol=1e-12)
    g = torch.randn_like(ya)
    ga = torch.autograd.grad(ya, [x, *a.parameters()], g)
    gb = torch.autograd.grad(yb, [x, *b.parameters()], g)
    for u, w in zip(ga, gb):
        assert torch.allclose(u, w, atol=1e-11)
    assert torch.equal(a.last["chosen"], b.last["chosen"])


def test_one_expert_is_a_plain_mlp():
    torch.manual_seed(0)
    moe = MoE(8, 16, 1, 1)
    x = torch.randn(5, 8)
    mlp = F.gelu(x @ moe.w_in[0] + moe.b_in[0]) @ moe.w_out[0] + moe.b_out[0]
    assert torch.allclose(moe(x), mlp, atol=1e-6)


def test_each_token_is_the_weighted_sum_of_its_chosen_experts():
    a, _ = _pair(5, 2)
    x = torch.randn(7, 8, dtype=torch.float64)
    y = a(x)
    probs = torch.softmax(a.router(x), -1)
    w, idx = probs.topk(2, -1)
    w = w / w.sum(-1, keepdim=True)
    for t in range(7):
        want = sum(w[t, j] * a.expert(int(idx[t, j]), x[t:t + 1])[0] for j in range(2))
        assert torch.allclose(y[t], want, atol=1e-12)


def test_the_balancing_loss_is_one_when_balanced_and_n_experts_when_collapsed():
    e = 4
    uniform = torch.full((8, e), 1 / e)
    spread = torch.arange(8).remainder(e).unsqueeze(-1)
    assert torch.isclose(load_balancing_loss(uniform, spread, e), torch.tensor(1.0))
    collapsed = torch.zeros(8, e)
    collapsed[:, 2] = 1
    assert torch.isclose(load_balancing_loss(collapsed, torch.full((8, 1), 2), e), torch.tensor(float(e)))
    assert torch.allclose(expert_load(spread, e), torch.full((e,), 0.25))
    with pytest.raises(ValueError, match="router_probs"):
        load_balancing_loss(uniform[:, :3], spread, e)


def test_the_router_learns_through_the_weights_and_the_balancing_loss():
    a, _ = _pair(4, 2)
    x = torch.randn(6, 8, dtype=torch.float64)
    y = a(x)
    (y.sum() + a.last["balance_loss"]).backward()
    assert a.router.weight.grad is not None and a.router.weight.grad.abs().sum() > 0


def test_parameter_counts_and_bad_settings():
    moe = MoE(8, 16, 4, 2)
    per_expert = 8 * 16 + 16 + 16 * 8 + 8
    assert moe.total_parameters() == 4 * per_expert + 8 * 4
    assert moe.active_parameters() == 2 * per_expert + 8 * 4
    with pytest.raises(ValueError, match="top_k"):
        MoE(8, 16, 2, 3)
    with pytest.raises(ValueError, match="dispatch"):
        MoE(8, 16, 2, 1, dispatch="fast")


def test_a_gpt_with_experts_adds_the_weighted_balance_loss_and_counts_active_parameters():
    from course.model import GPT, GPTConfig

    base = dict(vocab_size=13, block_size=8, n_layer=2, n_head=2, n_embd=16)
    torch.manual_seed(0)
    moe = GPT(GPTConfig(**base, n_experts=4, moe_top_k=1, moe_balance=0.5))
    idx = torch.randint(0, 13, (3, 8))
    logits, loss = moe(idx, idx)
    plain = torch.nn.functional.cross_entropy(logits.view(-1, 13), idx.view(-1))
    balance = torch.stack([b.mlp.last["balance_loss"] for b in moe.blocks]).mean()
    assert torch.allclose(loss, plain + 0.5 * balance) and float(balance.detach()) >= 1.0 - 1e-6
    loss.backward()
    assert moe.blocks[0].mlp.router.weight.grad.abs().sum() > 0  # the router learns through P
    dense = GPT(GPTConfig(**base))
    per_expert = 16 * 64 + 64 + 64 * 16 + 16
    assert moe.num_parameters() == dense.num_parameters() - 2 * per_expert + 2 * (4 * per_expert + 16 * 4)
    assert moe.active_parameters() == dense.num_parameters() + 2 * 16 * 4  # one expert and the router per layer
    assert dense.active_parameters() == dense.num_parameters()
    assert moe.flops_per_token() == dense.flops_per_token() + 6 * 2 * 16 * 4
    assert "n_experts" not in repr(dense.config) and "n_experts=4" in repr(moe.config)
    with pytest.raises(ValueError, match="GELU"):
        GPTConfig(**base, n_experts=4, mlp="swiglu")
    with pytest.raises(ValueError, match="moe_top_k"):
        GPTConfig(**base, n_experts=2, moe_top_k=3)
