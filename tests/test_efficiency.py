"""Chapter 08's training-side pieces: memory math vs real tensors, accumulation, checkpointing, bf16 on CPU."""

from __future__ import annotations

import pytest
import torch

from course.memory import (
    GPT2_SIZES,
    gpt2_parameter_count,
    model_activation_bytes,
    optimizer_state_bytes,
    sharded_state_bytes,
    tensor_bytes,
    training_state_bytes,
)
from course.model import GPT, GPTConfig


def tiny(seed: int = 0, **kw) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=40, block_size=16, n_layer=2, n_head=2, n_embd=32, **kw))


def batch(n: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 40, (n, 16), generator=g)
    return x, torch.randint(0, 40, (n, 16), generator=g)


@pytest.mark.parametrize("name", list(GPT2_SIZES))
def test_gpt2_parameter_formula_matches_the_model(name):
    with torch.device("meta"):
        model = GPT(GPTConfig(**GPT2_SIZES[name]))
    assert gpt2_parameter_count(GPT2_SIZES[name]["n_layer"], GPT2_SIZES[name]["n_embd"]) == model.num_parameters()


def test_gpt2_small_has_124m_parameters():
    assert gpt2_parameter_count(12, 768) == 124_439_808


def test_training_state_bytes_match_real_tensors_after_one_adamw_step():
    model = tiny()
    n = model.num_parameters()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = batch()
    model(x, y)[1].backward()
    opt.step()
    expected = training_state_bytes(n)
    assert tensor_bytes(model.parameters()) == expected["weights"]
    assert tensor_bytes(p.grad for p in model.parameters()) == expected["gradients"]
    assert optimizer_state_bytes(opt) == expected["AdamW states"]
    assert expected["total"] == 16 * n
    mixed = training_state_bytes(n, mixed=True)
    assert mixed["total"] == 16 * n and mixed["weights (16-bit)"] == 2 * n


def test_sharded_state_bytes():
    n = 1000
    assert sharded_state_bytes(n, 8, 0) == 16 * n
    assert sharded_state_bytes(n, 8, 1) == 4 * n + 4 * n + 8 * n // 8
    assert sharded_state_bytes(n, 8, 2) == 4 * n + 12 * n // 8
    assert sharded_state_bytes(n, 8, 3) == 16 * n // 8
    assert sharded_state_bytes(n, 1, 3) == 16 * n
    with pytest.raises(ValueError, match="stage"):
        sharded_state_bytes(n, 8, 4)
    with pytest.raises(ValueError, match="world_size"):
        sharded_state_bytes(n, 0, 1)
    with pytest.raises(ValueError, match="n_params"):
        training_state_bytes(-1)


def test_gradient_accumulation_equals_the_big_batch():
    x, y = batch(12)
    big = tiny()
    big(x, y)[1].backward()
    acc = tiny()
    k = 3
    for xs, ys in zip(x.chunk(k), y.chunk(k)):
        (acc(xs, ys)[1] / k).backward()
    for (name, p), q in zip(big.named_parameters(), acc.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-6, rtol=1e-5), name


def test_trainer_accumulation_follows_the_big_batch():
    from course.train import Trainer
    from course.train_config import TrainConfig

    class Sampler:  # the trainer's contract: one global batch per step, sliced into micro-batches
        def __init__(self):
            self.generator = torch.Generator().manual_seed(0)

        def step_batches(self, micro_batch, grad_accum, world_size=1, rank=0):
            x = torch.randint(0, 40, (micro_batch * grad_accum, 16), generator=self.generator)
            y = torch.roll(x, -1, 1)
            return list(zip(x.chunk(grad_accum), y.chunk(grad_accum)))

    losses = []
    for micro, accum in ((8, 1), (2, 4)):
        config = TrainConfig(model=tiny().config, batch_size=micro, grad_accum=accum, max_iters=8, warmup_iters=1,
                             eval_interval=8, eval_iters=1, log_interval=1, progress=False, lr=3e-3, min_lr=3e-4)
        xv, yv = batch(2)
        losses.append(Trainer(config, model=tiny(), sampler=Sampler(), val_batches=[(xv, yv)]).train().history["loss"])
    assert torch.allclose(torch.tensor(losses[0]), torch.tensor(losses[1]), atol=1e-5), losses


def test_activation_checkpointing_gives_the_same_gradients_and_saves_less():
    x, y = batch()
    plain, ckpt = tiny(dropout=0.1), tiny(dropout=0.1, activation_checkpointing=True)
    grads = []
    for model in (plain, ckpt):
        model.train()
        torch.manual_seed(5)  # same dropout masks: checkpointing replays the RNG state in backward
        loss = model(x, y)[1]
        loss.backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for g1, g2 in zip(*grads):
        assert torch.allclose(g1, g2, atol=1e-6)
    assert model_activation_bytes(ckpt, x, y) < model_activation_bytes(plain, x, y) / 2
    ckpt.eval()  # not in evaluation, generation or without grad: same outputs either way
    with torch.no_grad():
        assert torch.equal(ckpt(x)[0], plain.eval()(x)[0])


def test_model_activation_bytes_grow_with_the_batch_and_ignore_parameters():
    model = tiny()
    x, y = batch(4)
    small = model_activation_bytes(model, x, y)
    x2, y2 = batch(8)
    assert small > 0 and abs(model_activation_bytes(model, x2, y2) - 2 * small) <= 0.1 * small
    with pytest.raises(ValueError, match="shape"):
        model_activation_bytes(model, x, y[:, :3])


def test_bfloat16_autocast_on_cpu_when_asked():
    from course.train import Trainer
    from course.train_config import TrainConfig

    def sampler():
        class S:
            generator = torch.Generator().manual_seed(0)

            def step_batches(self, micro_batch, grad_accum, world_size=1, rank=0):
                x = torch.randint(0, 40, (micro_batch, 16), generator=self.generator)
                return [(x, (x + 1) % 40)]  # a mapping to learn
        return S()

    results = {}
    for dtype in ("float32", "bfloat16"):
        config = TrainConfig(model=tiny().config, batch_size=8, max_iters=30, warmup_iters=2, eval_interval=30,
                             eval_iters=1, log_interval=1, progress=False, lr=3e-3, min_lr=3e-4, dtype=dtype, device="cpu")
        xv, yv = batch(4)
        trainer = Trainer(config, model=tiny(), sampler=sampler(), val_batches=[(xv, yv)])
        seen = []
        trainer.loss_fn = lambda m, x, y: (seen.append(m(x)[0].dtype), m(x, y)[1])[1]
        results[dtype] = (trainer.autocast_dtype, trainer.train().history["loss"], seen[0])
    assert results["float32"][0] is None and results["float32"][2] == torch.float32
    assert results["bfloat16"][0] == torch.bfloat16 and results["bfloat16"][2] == torch.bfloat16
    fp32, bf16 = torch.tensor(results["float32"][1]), torch.tensor(results["bfloat16"][1])
    assert not torch.equal(fp32, bf16), "bf16 must actually round something"
    assert (fp32 - bf16).abs().max() < 0.1, (fp32, bf16)
    assert bf16[-1] < bf16[0] - 0.3, "bf16 training must learn"


@pytest.mark.parametrize("kw", [dict(), dict(positional="rope", norm="rmsnorm", mlp="swiglu")])
def test_activation_estimate_matches_a_full_measurement(kw):
    config = GPTConfig(vocab_size=50, block_size=64, n_layer=3, n_head=2, n_embd=32, **kw)
    from course.memory import activation_estimate

    estimate = activation_estimate(config, batch=3, seq_len=64, probe_len=16)
    torch.manual_seed(0)
    x = torch.randint(0, 50, (3, 64))
    measured = model_activation_bytes(GPT(config).train(), x, x)
    tolerance = 0.001 if not kw else 0.03  # RoPE: its shared sin/cos tables do not grow with the tokens
    assert abs(estimate["total"] - measured) <= tolerance * measured, (estimate, measured)
    with pytest.raises(ValueError, match="block_size"):
        activation_estimate(config, 1, 128)


def test_activation_estimate_with_attention_dropout_probes_at_full_size():
    from course.memory import activation_estimate

    config = GPTConfig(vocab_size=30, block_size=32, n_layer=2, n_head=2, n_embd=16, dropout=0.1, attn_dropout=0.1)
    estimate = activation_estimate(config, batch=2, seq_len=32, probe_len=8)
    x = torch.randint(0, 30, (2, 32), generator=torch.Generator().manual_seed(0))
    measured = model_activation_bytes(GPT(config).train(), x, x)
    assert abs(estimate["total"] - measured) <= 0.001 * measured, (estimate, measured)


def test_plot_helpers_return_figures_and_reject_bad_input():
    from matplotlib.figure import Figure

    from course.plots.efficiency import compare_curves, memory_bars, pruning_curves, quantization_error

    fig = compare_curves({"a": ([1, 2], [3.0, 2.0]), "b": ([1, 2], [3.1, 2.1])}, "t")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert abs(fig.axes[1].lines[0].get_ydata()[0] - 0.1) < 1e-9, "the lower panel shows b - a"
    with pytest.raises(ValueError, match="other steps"):
        compare_curves({"a": ([1, 2], [3.0, 2.0]), "b": ([1, 3], [3.1, 2.1])}, "t")
    with pytest.raises(ValueError, match="empty"):
        compare_curves({}, "t")
    assert isinstance(memory_bars({"m": {"weights": 2**30, "activations": 2**31}}), Figure)
    with pytest.raises(ValueError, match="sparsities"):
        pruning_curves([0.0, 0.5], {"global": [1.0]})
    assert isinstance(quantization_error([0.0, 1.0], [0.0, 1.0], [0.0, 1.1]), Figure)
    import matplotlib.pyplot as plt

    plt.close("all")
