"""Chapter 05 extras: the exercise checks catch the classic mistakes; head scores; the pretrained loader."""

from __future__ import annotations

import math

import pytest
import torch

from course.checks import ExerciseFailed
from course.checks.ch05 import check_estimate_loss, check_get_batch, check_learning_rate
from course.heads import head_scores, line_start_score, previous_token_score, self_score
from solutions.ch05_pretraining import estimate_loss, get_batch, learning_rate


def _batch_same(data, block, batch, g):
    s = torch.randint(len(data) - block, (batch,), generator=g)
    x = torch.stack([data[i : i + block] for i in s])
    return x, x.clone()


def _batch_overrun(data, block, batch, g):
    s = torch.randint(len(data) - block + 1, (batch,), generator=g)
    x = torch.stack([data[i : i + block] for i in s])
    y = torch.stack([torch.cat([data[i + 1 : i + 1 + block], data[:1]])[:block] for i in s])
    return x, y


def _batch_unseeded(data, block, batch, g):
    return get_batch(data, block, batch, torch.Generator().manual_seed(int(torch.randint(0, 10**6, ()))))


@pytest.mark.parametrize("fn, message", [
    (_batch_same, "y equals x"),
    (_batch_overrun, "last valid start"),
    (_batch_unseeded, "identically seeded"),
])
def test_get_batch_check_names_mistakes(fn, message):
    with pytest.raises(ExerciseFailed, match=message):
        check_get_batch(fn)


def _lr_to_zero(step, *, lr, min_lr, warmup, total):
    return learning_rate(step, lr=lr, min_lr=0.0, warmup=warmup, total=total) if step < total else min_lr


def _lr_zero_start(step, *, lr, min_lr, warmup, total):
    return lr * step / warmup if step < warmup else learning_rate(step, lr=lr, min_lr=min_lr, warmup=warmup, total=total)


@pytest.mark.parametrize("fn, message", [(_lr_to_zero, "not to 0"), (_lr_zero_start, "step 0 is 0")])
def test_learning_rate_check_names_mistakes(fn, message):
    with pytest.raises(ExerciseFailed, match=message):
        check_learning_rate(fn)


def _eval_dropout_on(model, batches):
    with torch.no_grad():
        return sum(model(x, y)[1].item() for x, y in batches) / len(batches)


def _eval_left_in_eval_mode(model, batches):
    model.eval()
    with torch.no_grad():
        return sum(model(x, y)[1].item() for x, y in batches) / len(batches)


def _eval_with_grad(model, batches):
    model.eval()
    out = sum(model(x, y)[1] for x, y in batches) / len(batches)
    model.train()
    return out


@pytest.mark.parametrize("fn, message", [
    (_eval_dropout_on, "dropout is still on"),
    (_eval_left_in_eval_mode, "left in eval mode"),
    (_eval_with_grad, "tracks gradients"),
])
def test_estimate_loss_check_names_mistakes(fn, message):
    with pytest.raises(ExerciseFailed, match=message):
        check_estimate_loss(fn)


def test_head_scores_on_hand_made_heads():
    t = 6
    prev = torch.zeros(t, t)
    prev[0, 0] = 1
    for i in range(1, t):
        prev[i, i - 1] = 1
    uniform = torch.tril(torch.ones(t, t))
    uniform = uniform / uniform.sum(-1, keepdim=True)
    w = torch.stack([prev, uniform, torch.eye(t)])
    assert previous_token_score(w).tolist() == pytest.approx([1.0, sum(1 / (i + 1) for i in range(1, t)) / (t - 1), 0.0])
    assert self_score(w)[2] == 1.0
    ids = torch.tensor([5, 0, 5, 5, 0, 5])  # newline id 0 at positions 1 and 4
    line = torch.zeros(t, t)
    for q, k in ((2, 1), (3, 1), (5, 4)):
        line[q, k] = 1
    assert line_start_score(line[None], ids, 0).item() == 1.0
    scores = head_scores([w[None]], ids, 0)
    assert set(scores) == {"previous token", "start of line", "itself"} and scores["itself"].shape == (1, 3)
    with pytest.raises(ValueError, match="shape"):
        previous_token_score(torch.zeros(2, 3))


def test_pretrained_fallback_trains_a_stand_in(tmp_path, monkeypatch):
    """Without the shipped checkpoint, load_pretrained trains (here: a few steps) and caches a model."""
    import course.pretrained as P

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(P, "SHIPPED", tmp_path / "missing")
    real = P.quick_cpu_model
    monkeypatch.setattr(P, "quick_cpu_model", lambda folder=None, max_iters=600: real(folder, max_iters=3))
    with pytest.raises(FileNotFoundError):
        P.load_pretrained(allow_fallback=False)
    first = P.load_pretrained()
    assert first.source == "quick CPU run" and first.info["steps"] == 3
    model, tok = first
    assert model.config.vocab_size == tok.vocab_size
    monkeypatch.setattr(P, "quick_cpu_model", lambda *a, **k: pytest.fail("should use the cached model"))
    assert P.load_pretrained().path == first.path


def test_shipped_checkpoint_loads_if_present():
    from course.pretrained import SHIPPED, load_pretrained

    if not (SHIPPED / "model.safetensors").is_file():
        pytest.skip("no shipped checkpoint in this checkout")
    pre = load_pretrained()
    assert pre.source == "shipped" and pre.info["final_val_loss"] < 1.7
    ids = torch.tensor([pre.tokenizer.encode("ROMEO:\nWhat")])
    _, loss = pre.model(ids[:, :-1], ids[:, 1:])
    assert math.isfinite(loss.item())
    assert (SHIPPED / "model.safetensors").stat().st_size < 25 * 2**20
