"""Checks for the exercises of chapter 05 (pretraining): the batch sampler, the schedule, the evaluation loop."""

from __future__ import annotations

import math
import numbers

import torch

from ..model import GPT, GPTConfig
from ..schedule import lr_at
from ..train_config import TrainConfig
from . import ExerciseFailed, call, exercise_check, expect


def _batch(get_batch, data: torch.Tensor, block_size: int, batch_size: int, generator: torch.Generator):
    """Call the learner's get_batch; a window cut short by the end of the data is explained in words."""
    try:
        return call(get_batch, data, block_size, batch_size, generator)
    except ExerciseFailed as failure:
        cause = failure.__cause__
        text = str(cause)
        short = isinstance(cause, RuntimeError) and "stack expects each tensor to be equal size" in text
        past_end = isinstance(cause, IndexError) and ("out of bounds" in text or "out of range" in text)
        if short or past_end:
            what = ("windows of different lengths could not be stacked" if short
                    else "an index ran past the end of the data")
            raise ExerciseFailed(
                f"with {len(data)} tokens and block_size {block_size}, {what}: a start near the end of the data "
                f"leaves fewer than block_size + 1 = {block_size + 1} tokens for x and its shifted y. The last "
                f"valid start is len(data) - block_size - 1 = {len(data) - block_size - 1}: draw the starts with "
                "torch.randint(len(data) - block_size, (batch_size,), generator=generator)."
            ) from cause
        raise


@exercise_check("get_batch")
def check_get_batch(get_batch) -> None:
    data = torch.arange(1000)
    g = torch.Generator().manual_seed(0)
    out = _batch(get_batch, data, 8, 5, g)
    expect(isinstance(out, (tuple, list)) and len(out) == 2, "get_batch must return a pair (x, y).")
    x, y = out
    expect(isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor), "x and y must be torch tensors (use torch.stack).")
    expect(tuple(x.shape) == (5, 8), f"x has shape {tuple(x.shape)}, expected (batch_size, block_size) = (5, 8).")
    expect(tuple(y.shape) == (5, 8), f"y has shape {tuple(y.shape)}, expected (5, 8).")
    if torch.equal(x, y):
        raise ExerciseFailed("y equals x: the targets are the *next* tokens, the window shifted by one position.")
    if torch.equal(y[:, 1:], x[:, :-1]):
        raise ExerciseFailed("y is shifted the wrong way: y[i] must be the token *after* x[i] (y = data[s+1 : s+1+block]).")
    expect(torch.equal(y[:, :-1], x[:, 1:]) and torch.equal(y[:, -1], x[:, -1] + 1),
           "each row of y must be its row of x shifted by one: y[:, t] == data[start + t + 1].")
    expect(bool((torch.diff(x, dim=1) == 1).all()), "each row of x must be a contiguous window of the data.")
    # every start must be possible, and none may run past the end
    g = torch.Generator().manual_seed(1)
    batches = [_batch(get_batch, torch.arange(20), 8, 64, g)[0][:, 0] for _ in range(20)]
    expect(all(len(set(b.tolist())) > 1 for b in batches),
           "every row of a batch starts at the same position: draw batch_size starts, one per row "
           "(torch.randint(..., (batch_size,), generator=generator)).")
    starts = torch.cat(batches)
    expect(int(starts.max()) <= 11, f"a window starts at {int(starts.max())}: with 20 tokens and block 8 the last valid start is 11 (the target needs one more token).")
    expect(int(starts.min()) == 0, "no window ever starts at position 0: the starts are offsets into the data and begin "
           "at 0 (torch.randint(high, ...) draws 0 .. high - 1; a low of 1 skips the first token).")
    expect(int(starts.max()) == 11, "no window ever starts at 11, the last valid start (20 tokens, block 8): "
           "torch.randint(high, ...) never draws high itself, so pass high = len(data) - block_size, not one less.")
    # it must use the generator it was given (reproducible batches)
    a = _batch(get_batch, data, 8, 5, torch.Generator().manual_seed(3))[0]
    b = _batch(get_batch, data, 8, 5, torch.Generator().manual_seed(3))[0]
    expect(torch.equal(a, b), "two calls with identically seeded generators gave different batches: pass generator= to torch.randint.")


@exercise_check("learning_rate")
def check_learning_rate(learning_rate) -> None:
    kw = dict(lr=1.0, min_lr=0.1, warmup=10, total=100)
    config = TrainConfig(lr=1.0, min_lr=0.1, warmup_iters=10, max_iters=100, lr_decay_iters=100)
    values = [float(call(learning_rate, s, **kw)) for s in range(110)]
    tol = 1e-6  # float32 (a torch scalar) is fine
    warm = values[:10]
    if values[0] == 0 and all(abs(v - s / 10) < tol for s, v in enumerate(warm)):
        raise ExerciseFailed("your warmup is lr * step / warmup, without the offset: the learning rate at step 0 is 0, "
                             "so that step does nothing. The course warms up as lr * (step + 1) / (warmup + 1).")
    expect(values[0] > 0, "the learning rate at step 0 is 0: that step would do nothing. Warm up from lr/(warmup+1), as lr * (step + 1) / (warmup + 1).")
    if all(abs(v - (s + 1) / 10) < tol for s, v in enumerate(warm)):
        raise ExerciseFailed("your warmup is lr * (step + 1) / warmup: it reaches the peak at step 9, one step early, and "
                             "stays there at step 10. The course warms up as lr * (step + 1) / (warmup + 1), so the "
                             "first step after warmup (step 10) is the first at the peak.")
    if all(abs(v - (0.1 + 0.9 * (s + 1) / 11)) < tol for s, v in enumerate(warm)):
        raise ExerciseFailed("your warmup rises from min_lr: it starts from 0, as lr * (step + 1) / (warmup + 1); "
                             "min_lr is only where the cosine ends.")
    expect(all(a < b for a, b in zip(values[:10], values[1:11])), "during warmup (steps 0..9) the learning rate must increase every step.")
    if abs(values[10] - 1.9) < tol:
        raise ExerciseFailed("at step 10 the rate is 1.9, above the peak lr = 1.0: the cosine factor is "
                             "0.5 * (1 + cos(pi * progress)), which runs from 1 to 0; you left out the 0.5.")
    if abs(values[10] - (0.1 + 0.45 * (1 + math.cos(math.pi * 10 / 100)))) < tol:
        raise ExerciseFailed("right after warmup the rate is already below the peak: the cosine's progress counts from "
                             "the end of warmup, (step - warmup) / (total - warmup), not step / total.")
    expect(abs(values[10] - 1.0) < tol, f"at the end of warmup (step 10) the rate should be the peak lr = 1.0, got {values[10]:.4g}.")
    mid = values[55]
    if abs(mid - 0.55) > tol:
        if abs(mid - 0.5) < tol:
            raise ExerciseFailed("halfway through the decay the rate is 0.5: the cosine must decay to min_lr, not to 0 (min_lr + 0.5(1+cos)(lr - min_lr)).")
        if abs(mid - 0.1) < tol:
            raise ExerciseFailed("halfway through the decay the rate is already min_lr: that is a full cosine period, "
                                 "cos(2 pi progress). The decay is half a period: cos(pi * progress).")
        raise ExerciseFailed(f"halfway through the cosine decay (step 55) the rate should be (lr + min_lr)/2 = 0.55, got {mid:.4g}.")
    if abs(values[32] - (1.0 - 0.9 * 22 / 90)) < tol:
        raise ExerciseFailed("your decay is a straight line from lr to min_lr: it follows half a cosine, "
                             "min_lr + 0.5 * (1 + cos(pi * progress)) * (lr - min_lr).")
    expect(all(a >= b for a, b in zip(values[10:100], values[11:101])), "after warmup the learning rate must never increase.")
    expect(all(abs(v - 0.1) < tol for v in values[100:]), "after the last decay step the rate must stay at min_lr.")
    reference = [lr_at(s, config) for s in range(110)]
    worst = max(abs(a - b) for a, b in zip(values, reference))
    expect(worst < tol, f"your schedule differs from course.schedule.lr_at by up to {worst:.3g}.")


def _dropout_model() -> tuple[GPT, list[tuple[torch.Tensor, torch.Tensor]]]:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.5))
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randint(0, 20, (4, 8), generator=g), torch.randint(0, 20, (4, 8), generator=g)) for _ in range(3)]
    return model, batches


@exercise_check("estimate_loss")
def check_estimate_loss(estimate_loss) -> None:
    model, batches = _dropout_model()
    model.train()
    with torch.no_grad():
        model.eval()
        per_batch = [model(x, y)[1].item() for x, y in batches]
        expected = sum(per_batch) / len(batches)
        model.train()
    grad_modes: list[bool] = []  # torch.is_grad_enabled() at each of the learner's model calls
    model.tok_emb.register_forward_pre_hook(  # the embedding runs on every call, model(x, y) or model.forward(x, y)
        lambda module, args: grad_modes.append(torch.is_grad_enabled()))
    grad_was_on = torch.is_grad_enabled()
    try:
        got = call(estimate_loss, model, batches)
    finally:
        grad_left_off = grad_was_on and not torch.is_grad_enabled()
        torch.set_grad_enabled(grad_was_on)
    expect(not grad_left_off, "after estimate_loss gradients are switched off for everything that follows: use "
           "`with torch.no_grad():` (or the @torch.no_grad() decorator), which switches them back on at the end, "
           "not torch.set_grad_enabled(False).")
    if isinstance(got, torch.Tensor):
        expect(not got.requires_grad, "the loss you return still tracks gradients: evaluate under torch.no_grad() and return a float (.item()).")
        expect(got.numel() == 1, f"estimate_loss returned a tensor of shape {tuple(got.shape)}: return one number, the mean loss.")
        got = float(got)
    elif isinstance(got, numbers.Real) and not isinstance(got, bool):
        got = float(got)
    expect(isinstance(got, float) and math.isfinite(got), f"estimate_loss must return a finite float, got {got!r}.")
    if abs(got - expected) > 1e-5:
        again = call(estimate_loss, model, batches)
        if abs(float(again) - got) > 1e-6:
            raise ExerciseFailed("two evaluations of the same model on the same batches differ: dropout is still on. Call model.eval() before evaluating.")
        if abs(got - expected * len(batches)) < 1e-4:
            raise ExerciseFailed(f"your loss {got:.5f} is the sum of the {len(batches)} batch losses: divide by the "
                                 "number of batches to get the mean.")
        if any(abs(got - one) < 1e-5 for one in per_batch):
            raise ExerciseFailed(f"your loss {got:.5f} is the loss of a single batch: average the losses of all "
                                 f"{len(batches)} batches (is the return inside the loop, or the loss overwritten?).")
        raise ExerciseFailed(f"your loss {got:.5f} differs from the mean batch loss {expected:.5f}: average the loss over all the batches.")
    if any(grad_modes):
        raise ExerciseFailed(
            f"{sum(grad_modes)} of your {len(grad_modes)} model calls ran with gradient tracking on: each one "
            "built a gradient graph that evaluation never uses (memory and time wasted). Evaluate under "
            "`with torch.no_grad():` (or decorate estimate_loss with @torch.no_grad())."
        )
    expect(model.training, "after estimate_loss the model is left in eval mode: put it back with model.train() so training continues with dropout.")
    model.eval()
    call(estimate_loss, model, batches)
    expect(not model.training, "estimate_loss switched a model that was in eval mode to training mode: restore the mode it had.")
