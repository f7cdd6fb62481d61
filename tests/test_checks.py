"""The exercise-check machinery and the chapters' checks diagnose mistakes in words (chapter 00 in full; the
slips of issue 14 for chapters 01-05)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course.checks import ExerciseFailed, NotImplementedYet, call, expect_close
from course.checks.ch00 import check_softmax
from solutions.ch00_introduction import softmax


def test_solution_passes(capsys):
    check_softmax(softmax)
    assert "softmax: all checks passed" in capsys.readouterr().out


def _stub(x):
    raise NotImplementedError


def _naive(x):
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


def _wrong_axis(x):
    x = np.asarray(x, dtype=float)
    e = np.exp(x - x.max())
    return e / e.sum(axis=0, keepdims=True)


def _in_place(x):
    x -= x.max(axis=-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


def _no_keepdims(x):
    x = np.asarray(x, dtype=float)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1)


@pytest.mark.parametrize(
    "fn, message",
    [
        (_stub, "still the blank stub"),
        (_naive, "exp\\(1000\\) overflows"),
        (_wrong_axis, "normalised over axis 0"),
        (_in_place, "changed its input array in place"),
        (_no_keepdims, "raised ValueError|sum to"),
        (lambda x: np.ones_like(x), "sum to 3"),
    ],
    ids=["stub", "overflow", "wrong-axis", "in-place", "no-keepdims", "not-normalised"],
)
def test_softmax_check_names_the_mistake(fn, message):
    with pytest.raises(ExerciseFailed, match=message), np.errstate(all="ignore"):
        check_softmax(fn)


def test_stub_failure_is_its_own_type():
    with pytest.raises(NotImplementedYet):
        call(_stub, 1)


def test_expect_close_reports_where():
    with pytest.raises(ExerciseFailed, match=r"at index \(1, 0\)"):
        expect_close(np.array([[1.0, 2.0], [3.5, 4.0]]), np.array([[1.0, 2.0], [3.0, 4.0]]), "matrix")
    with pytest.raises(ExerciseFailed, match="shape"):
        expect_close(np.zeros(3), np.zeros(4), "vector")


def test_failure_renders_without_traceback():
    assert ExerciseFailed("rows sum to 2")._render_traceback_() == ["\u274c Not yet: rows sum to 2"]


# --------------------------------------------------------------------------- issue 14: gaps in the chapters' checks


def _failure(check, fn) -> str:
    with pytest.raises(ExerciseFailed) as info, np.errstate(all="ignore"):
        check(fn)
    return str(info.value)


def test_expect_close_prints_plain_numbers_and_reads_right_for_plurals():
    with pytest.raises(ExerciseFailed) as info:
        expect_close(np.array([0.38412345, 1.0]), np.array([0.5, 1.0]), "your attention weights")
    message = str(info.value)
    assert "np.float64" not in message and "0.384123" in message and "expected 0.5 " in message
    assert "weights differs" not in message and message.startswith("your attention weights: the values differ")
    with pytest.raises(ExerciseFailed) as info:  # torch tensors and integer arrays too
        expect_close(np.array([1, 7]), np.array([1, 2]), "the ids")
    assert "you have 7, expected 2" in str(info.value) and "np.int" not in str(info.value)


# ch01: merge that moves on by 1 after writing the new id


def _merge_step_one(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
        else:
            out.append(ids[i])
        i += 1  # the slip: 2 after a merge
    return out


def test_merge_check_names_advancing_by_one():
    from course.checks.ch01 import check_merge

    message = _failure(check_merge, _merge_step_one)
    assert "moved on by 1" in message and "advance by 2 after a merge" in message and "[7, 7, 7]" in message


# ch02: sinusoidal positions 1 .. P instead of 0 .. P-1


def _pe_from_one(num_positions, dim, base=10000.0):
    pos = np.arange(1, num_positions + 1, dtype=np.float64)[:, None]
    angles = pos / base ** (np.arange(0, dim, 2) / dim)
    out = np.empty((num_positions, dim))
    out[:, 0::2], out[:, 1::2] = np.sin(angles), np.cos(angles)
    return out


def test_sinusoidal_check_names_positions_starting_at_one():
    from course.checks.ch02 import check_sinusoidal_pe

    assert "positions start at 0" in _failure(check_sinusoidal_pe, _pe_from_one)


# ch03: the diagonal masked too (np.tril(..., k=-1)): query i does not see itself


def _causal_without_diagonal(fill, softmax):
    def causal_attention(q, k, v):
        t = q.shape[-2]
        s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
        s = np.where(np.tril(np.ones((t, t), dtype=bool), k=-1), s, fill)
        w = softmax(s)
        return w @ v, w

    return causal_attention


def _softmax_nan_rows(s):  # the chapter's own softmax: a row of -inf only gives nan
    z = s - s.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _softmax_zero_rows(s):  # a guarded softmax: a row of -inf only gives zeros
    m = np.max(s, axis=-1, keepdims=True)
    e = np.exp(s - np.where(np.isfinite(m), m, 0.0))
    total = e.sum(axis=-1, keepdims=True)
    return e / np.where(total > 0, total, 1.0)


@pytest.mark.parametrize("fill, softmax", [(-np.inf, _softmax_nan_rows), (-np.inf, _softmax_zero_rows), (-1e9, _softmax_nan_rows)],
                         ids=["nan-row", "zero-row", "large-negative"])
def test_causal_check_names_the_masked_diagonal(fill, softmax):
    from course.checks.ch03 import check_causal_attention

    message = _failure(check_causal_attention, _causal_without_diagonal(fill, softmax))
    assert "masked the diagonal" in message and "after the softmax" not in message


def test_causal_check_message_has_plain_numbers():
    from course.checks.ch03 import check_causal_attention

    def slightly_hot(q, k, v):  # a scale of 1.05/√d_k: weights a little off, rows still sum to 1
        t = q.shape[-2]
        s = 1.05 * q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
        w = _softmax_nan_rows(np.where(np.tril(np.ones((t, t), dtype=bool)), s, -np.inf))
        return w @ v, w

    message = _failure(check_causal_attention, slightly_hot)
    assert "your attention weights: the values differ at index" in message
    assert "np.float64" not in message and "differs" not in message


# ch04: future_leak, natural correct answers and the usual slips


def _leak_plain(model, idx, t, vocab_size):  # no special case for t = 0: the check must not try it
    changed = idx.clone()
    changed[:, t] = (changed[:, t] + 1) % vocab_size
    before, after = model(idx), model(changed)
    return (after[:, :t] - before[:, :t]).abs().max().item()


def _leak_other_id(model, idx, t, vocab_size):  # any different valid id, and a 0-dim tensor returned
    changed = idx.clone()
    changed[:, t] = (changed[:, t] + 5) % vocab_size
    with torch.no_grad():
        return torch.max(torch.abs(model(changed)[:, :t] - model(idx)[:, :t]))


def _leak_prefix_one_call(model, idx, t, vocab_size):  # one call on both versions, cut after position t
    changed = idx.clone()
    changed[:, t] = (changed[:, t] + 1) % vocab_size
    out = model(torch.cat([idx, changed])[:, : t + 1])
    before, after = out.chunk(2)
    return float((after[:, :t] - before[:, :t]).abs().max())


def _leak_out_of_range(model, idx, t, vocab_size):
    changed = idx.clone()
    changed[:, t] = vocab_size  # one past the last valid id (what (id + 1) without % vocab_size gives for the last one)
    return (model(changed)[:, :t] - model(idx)[:, :t]).abs().max().item()


def _leak_mean(model, idx, t, vocab_size):
    changed = idx.clone()
    changed[:, t] = (changed[:, t] + 1) % vocab_size
    return (model(changed)[:, :t] - model(idx)[:, :t]).abs().mean().item()


def _leak_first_row_only(model, idx, t, vocab_size):
    changed = idx.clone()
    changed[0, t] = (changed[0, t] + 1) % vocab_size
    return (model(changed)[:, :t] - model(idx)[:, :t]).abs().max().item()


def _leak_changes_the_rest(model, idx, t, vocab_size):
    changed = idx.clone()
    changed[:, t:] = (changed[:, t:] + 1) % vocab_size
    return (model(changed)[:, :t] - model(idx)[:, :t]).abs().max().item()


@pytest.mark.parametrize("fn", [_leak_plain, _leak_other_id, _leak_prefix_one_call], ids=["plain", "other-id", "prefix"])
def test_future_leak_check_accepts_natural_answers(fn, capsys):
    from course.checks.ch04 import check_future_leak

    check_future_leak(fn)
    assert "future_leak: all checks passed." in capsys.readouterr().out


@pytest.mark.parametrize("fn, message", [
    (_leak_out_of_range, "token id 13, outside 0 .. 12"),
    (_leak_mean, "mean absolute change"),
    (_leak_first_row_only, "in sequence 1 of the batch the token at position t kept its id"),
    (_leak_changes_the_rest, "other positions than t"),
], ids=["out-of-range", "mean", "one-row", "changes-the-rest"])
def test_future_leak_check_names_the_slips(fn, message):
    from course.checks.ch04 import check_future_leak

    failure = _failure(check_future_leak, fn)
    assert message in failure and "RuntimeError" not in failure and "IndexError" not in failure


# ch05: get_batch starts past the last valid one; estimate_loss without torch.no_grad()


def _batch_starts_to_the_end(data, block_size, batch_size, generator):
    starts = torch.randint(len(data), (batch_size,), generator=generator)
    x = torch.stack([data[s : s + block_size] for s in starts])
    y = torch.stack([data[s + 1 : s + 1 + block_size] for s in starts])
    return x, y


def _batch_gather_to_the_end(data, block_size, batch_size, generator):
    starts = torch.randint(len(data) - block_size + 1, (batch_size,), generator=generator)
    offsets = torch.arange(block_size)
    return data[starts[:, None] + offsets], data[starts[:, None] + offsets + 1]


@pytest.mark.parametrize("fn", [_batch_starts_to_the_end, _batch_gather_to_the_end], ids=["stack", "index"])
def test_get_batch_check_explains_windows_past_the_end(fn):
    from course.checks.ch05 import check_get_batch

    message = _failure(check_get_batch, fn)
    assert "last valid start is len(data) - block_size - 1 = 11" in message
    assert "stack expects" not in message and "raised" not in message


def _eval_without_no_grad(model, batches):
    was_training = model.training
    model.eval()
    losses = [model(x, y)[1].item() for x, y in batches]  # right value, but every call builds a graph
    model.train(was_training)
    return sum(losses) / len(losses)


def _eval_grad_switched_off(model, batches):
    torch.set_grad_enabled(False)  # never switched back on
    was_training = model.training
    model.eval()
    losses = [model(x, y)[1].item() for x, y in batches]
    model.train(was_training)
    return sum(losses) / len(losses)


def _eval_inference_mode(model, batches):
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        losses = [model(x, y)[1].item() for x, y in batches]
    model.train(was_training)
    return sum(losses) / len(losses)


def test_estimate_loss_check_catches_evaluation_with_gradients():
    from course.checks.ch05 import check_estimate_loss

    assert "3 of your 3 model calls ran with gradient tracking on" in _failure(check_estimate_loss, _eval_without_no_grad)
    assert "gradients are switched off for everything that follows" in _failure(check_estimate_loss, _eval_grad_switched_off)
    assert torch.is_grad_enabled()  # the check switched them back on


def test_estimate_loss_check_accepts_inference_mode(capsys):
    from course.checks.ch05 import check_estimate_loss

    check_estimate_loss(_eval_inference_mode)
    assert "estimate_loss: all checks passed." in capsys.readouterr().out
