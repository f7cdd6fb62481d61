"""course.train_config: presets as overrides of one base, lr decay to max_iters, one rule for intervals (issue 15)."""

from __future__ import annotations

import pytest

from course.model import GPTConfig
from course.schedule import lr_at
from course.train_cli import config_from_args
from course.train_config import INTERVALS, PRESETS, TrainConfig, cpu_preset, every, gpu_preset, nanogpt_cpu_config, preset

# The presets as they were written out before (each with lr_decay_iters == max_iters).
OLD = {
    "nanogpt-cpu": dict(
        model=GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0),
        batch_size=12, max_iters=2000, lr=1e-3, min_lr=1e-4, warmup_iters=100, lr_decay_iters=2000,
        weight_decay=0.1, beta2=0.99, eval_interval=250, eval_iters=20,
    ),
    "cpu": dict(
        model=GPTConfig(vocab_size=65, block_size=128, n_layer=4, n_head=4, n_embd=128, dropout=0.0),
        batch_size=16, max_iters=2500, lr=2e-3, min_lr=2e-4, warmup_iters=100, lr_decay_iters=2500,
        weight_decay=0.1, beta2=0.99, eval_interval=250, eval_iters=20,
    ),
    "gpu": dict(
        model=GPTConfig(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384, dropout=0.2, attn_dropout=0.2),
        batch_size=64, max_iters=5000, lr=1e-3, min_lr=1e-4, warmup_iters=100, lr_decay_iters=5000,
        weight_decay=0.1, beta2=0.99, eval_interval=250, eval_iters=200,
    ),
}


@pytest.mark.parametrize("name", sorted(OLD))
def test_presets_are_unchanged_but_for_lr_decay_iters(name):
    old = TrainConfig(**OLD[name])
    new = PRESETS[name]()
    assert new.lr_decay_iters is None, "no preset hard-codes lr_decay_iters"
    assert new.to_dict() == {**old.to_dict(), "lr_decay_iters": None}
    assert new.decay_iters == old.lr_decay_iters  # so the schedule of every preset is the same as before
    assert all(lr_at(s, new) == lr_at(s, old) for s in range(0, new.max_iters + 50, 7))
    assert preset(name).to_dict() == new.to_dict()


def test_preset_helpers_and_overrides():
    assert cpu_preset().model.block_size == 128 and gpu_preset().model.n_layer == 6 and nanogpt_cpu_config().batch_size == 12
    c = cpu_preset(max_iters=7, model=GPTConfig(vocab_size=5, block_size=8, n_layer=1, n_head=1, n_embd=8))
    assert c.max_iters == 7 and c.model.n_embd == 8
    with pytest.raises(ValueError, match="unknown preset 'tpu'"):
        preset("tpu")


def test_a_shortened_preset_ends_at_min_lr():
    """`--preset cpu --max-iters 600` used to end at lr 0.00181 (decay fixed at 2,500 steps)."""
    c = config_from_args(["--preset", "cpu", "--max-iters", "600"])
    last = lr_at(c.max_iters - 1, c)  # the lr of the last step
    assert abs(last - c.min_lr) < 1e-4 * (c.lr - c.min_lr), last
    assert lr_at(c.max_iters, c) == c.min_lr
    assert lr_at(299, cpu_preset(max_iters=300)) < 1.001 * cpu_preset().min_lr


def test_one_rule_for_intervals():
    assert [s for s in range(1, 11) if every(s, 5)] == [5, 10]
    assert not any(every(s, 0) for s in range(0, 20)), "0 means off"
    for name in INTERVALS:
        TrainConfig(**{name: 0})
        with pytest.raises(ValueError, match=f"{name} must be >= 0"):
            TrainConfig(**{name: -1})
    with pytest.raises(ValueError, match="lr_decay_iters"):
        TrainConfig(lr_decay_iters=0)
    with pytest.raises(TypeError, match="GPTConfig"):
        TrainConfig(model=3)  # type: ignore[arg-type]
