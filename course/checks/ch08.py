"""Checks for the exercises of chapter 08 (efficiency and scale)."""

from __future__ import annotations

import torch

from . import ExerciseFailed, call, exercise_check, expect


@exercise_check("ZeRO memory per GPU")
def check_zero_bytes(zero_bytes_per_gpu) -> None:
    """Check per-GPU bytes of weights + gradients + AdamW states for ZeRO stages 0-3."""
    from course.memory import sharded_state_bytes

    n, world = 1_000_000, 8
    names = {0: "stage 0 (plain DDP)", 1: "stage 1", 2: "stage 2", 3: "stage 3 (FSDP)"}
    got = {}
    for stage in range(4):
        value = call(zero_bytes_per_gpu, n, world, stage)
        expect(isinstance(value, (int, float)) or hasattr(value, "item"), f"return a number of bytes, got {type(value).__name__}.")
        got[stage] = float(value)
    if abs(got[0] - 4 * n) < 1 or abs(got[0] - 8 * n) < 1 or abs(got[0] - 12 * n) < 1:
        raise ExerciseFailed(f"{names[0]} gives {got[0]:,.0f} bytes for {n:,} parameters, {got[0] / n:.0f} per parameter; "
                             "fp32 AdamW training keeps 16: weights 4, gradients 4, exp_avg 4, exp_avg_sq 4.")
    expect(len(set(got.values())) > 1, "you return the same number for every stage: each stage shards one more piece "
           "(1: AdamW states, 2: also gradients, 3: also weights).")
    wants = {stage: sharded_state_bytes(n, world, stage) for stage in range(4)}
    if all(abs(got[stage] - 8 * wants[stage]) < 1 for stage in range(4)):
        raise ExerciseFailed("your numbers are 8 times too large: that is bits. Return bytes (a float32 is 4 bytes).")
    if all(abs(got[stage] - wants[stage - 1]) < 1 for stage in range(1, 4)):
        raise ExerciseFailed("your stages are shifted by one: stage 1 already shards the AdamW states, stage 2 also "
                             "the gradients, stage 3 also the weights (stage 0 is plain DDP, nothing sharded).")
    for stage in range(4):
        want = sharded_state_bytes(n, world, stage)
        if abs(got[stage] - want) > 1:
            hint = {
                0: "plain DDP keeps everything on every GPU: 16 bytes per parameter.",
                1: "stage 1 divides only the AdamW states (8 bytes per parameter) by the world size.",
                2: "stage 2 divides the AdamW states and the gradients by the world size; the weights stay whole.",
                3: "stage 3 divides all 16 bytes per parameter by the world size.",
            }[stage]
            raise ExerciseFailed(f"{names[stage]} with {world} GPUs: you have {got[stage]:,.0f} bytes, expected {want:,}. {hint}")
    one = float(call(zero_bytes_per_gpu, n, 1, 3))
    expect(abs(one - 16 * n) < 1, f"with a single GPU sharding changes nothing: stage 3 should give {16 * n:,} bytes, you have {one:,.0f}.")


@exercise_check("int8 per-row quantization")
def check_quantize_rows(quantize_rows_int8) -> None:
    """Check symmetric per-row int8: dtype, range, scale shape, error bound, per-row scales, zero rows."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(4, 16, generator=g) * torch.tensor([[0.01], [1.0], [30.0], [0.5]])
    out = call(quantize_rows_int8, w.clone())
    expect(isinstance(out, (tuple, list)) and len(out) == 2, "return a pair (q, scale).")
    q, scale = out
    expect(isinstance(q, torch.Tensor) and q.dtype == torch.int8, f"q must be a torch.int8 tensor, got {getattr(q, 'dtype', type(q).__name__)}: "
           "convert with .to(torch.int8) after rounding.")
    expect(q.shape == w.shape, f"q has shape {tuple(q.shape)}, expected the weight's shape {tuple(w.shape)}.")
    scale = torch.as_tensor(scale, dtype=torch.float32)
    if scale.numel() == 1:
        raise ExerciseFailed("you have one scale for the whole matrix (per-tensor). Use one per row: "
                             "w.abs().amax(dim=1, keepdim=True) / 127, shape (rows, 1).")
    expect(scale.shape == (4, 1), f"scale has shape {tuple(scale.shape)}, expected (4, 1): one per row, keepdim=True.")
    expect(int(q.abs().max()) <= 127, f"q reaches {int(q.abs().max())}: clamp to [-127, 127] (symmetric; -128 would be unbalanced).")
    expect(int(q.abs().max()) == 127, f"the largest |q| is {int(q.abs().max())}, not 127: the row maximum should map to ±127 "
           "(divide the row's max |w| by 127, not by 255 or 128).")
    err = (q.float() * scale - w).abs()
    worst = float((err / (scale / 2)).max())
    if worst > 1.0 + 1e-4:
        amax = w.abs().amax(dim=1, keepdim=True)
        if torch.allclose(scale * amax, torch.full_like(amax, 127.0), rtol=1e-4):
            raise ExerciseFailed("your scale is 127 / max|w|, the reciprocal: w ≈ q · scale needs scale = max|w| / 127 "
                                 "(and q = round(w / scale)).")
        for divisor in (255.0, 128.0):
            if torch.allclose(scale, amax / divisor, rtol=1e-4):
                raise ExerciseFailed(
                    f"your scale is max|w| / {divisor:g}, so the row maximum maps to ±{divisor:g}, beyond the int8 "
                    "range, and is clipped to ±127. Divide by 127: the largest |w| becomes exactly ±127."
                )
        if torch.allclose(scale, w.abs().mean(dim=1, keepdim=True) / 127, rtol=1e-4):
            raise ExerciseFailed("your scale comes from the mean |w| of the row, not its maximum: every weight above the "
                                 "mean maps beyond ±127 and is clipped. Use the row's max |w| / 127.")
        exact = w / scale
        if torch.equal(q.to(torch.int64), exact.trunc().clamp(-127, 127).to(torch.int64)):
            raise ExerciseFailed(f"some weight moved by {worst:.2f} half-steps after q·scale: round to the nearest "
                                 "integer (torch.round), do not truncate (.to(int8) alone cuts towards zero).")
        if int((q.abs() == 127).sum()) > w.shape[0]:
            raise ExerciseFailed(f"{int((q.abs() == 127).sum())} weights sit at ±127, clipped: your scale is too small. "
                                 "Only the row maximum should reach ±127: scale = max|w| / 127 per row.")
        raise ExerciseFailed(f"some weight moved by {worst:.2f} half-steps after q·scale: q = round(w / scale), "
                             "clamped to [-127, 127], with scale = max|w| / 127 per row.")
    z = torch.zeros(2, 8)
    z[1] = torch.linspace(-1, 1, 8)
    q0, s0 = call(quantize_rows_int8, z.clone())
    s0 = torch.as_tensor(s0, dtype=torch.float32)
    expect(bool(torch.isfinite(s0).all()) and bool((q0[0] == 0).all()),
           "an all-zero row gave nan or non-zero values: its scale is 0 and 0/0 is nan; use scale 1 for such rows.")
    expect(bool((s0.flatten()[0] > 0)),
           "an all-zero row got scale 0, so quantizing it divides 0 by 0 = nan (the cast to int8 only hides it). "
           "Give such rows a positive scale, e.g. torch.where(scale > 0, scale, 1).")
    expect(bool(torch.isfinite(q0.float() * s0).all()) and torch.allclose(q0.float() * s0, z, atol=float(s0[1]) / 2 + 1e-6),
           "on a matrix with an all-zero row, q · scale does not give back the weights (nan, or a value off by more "
           "than half a step): quantize each row with its own scale.")


@exercise_check("gradient accumulation")
def check_accumulation(accumulate_gradients) -> None:
    """Check that k micro-batches leave the gradient of the big batch's mean loss."""
    from course.model import GPT, GPTConfig

    config = GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=16)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 20, (12, 8), generator=g)
    y = torch.randint(0, 20, (12, 8), generator=g)
    torch.manual_seed(0)
    ref_model = GPT(config)
    ref_model(x, y)[1].backward()
    ref = [p.grad.clone() for p in ref_model.parameters()]
    for k in (3, 4):
        torch.manual_seed(0)
        model = GPT(config)
        for p in model.parameters():  # stale gradients from an earlier step
            p.grad = torch.full_like(p, 0.5)
        call(accumulate_gradients, model, x, y, k)
        grads = [p.grad for p in model.parameters()]
        expect(all(gr is not None for gr in grads), "some parameters have no gradient: call backward() on every micro-batch's loss.")
        first, mine = ref[0], grads[0]

        def close(a, b):
            return all(torch.allclose(u, v, atol=1e-6, rtol=1e-4) for u, v in zip(a, b))

        if close(grads, ref):
            continue
        if close([gr - 0.5 for gr in grads], ref):
            raise ExerciseFailed("the old gradients (0.5 everywhere) are still added in: zero them first "
                                 "(model.zero_grad()) before the loop, not inside it.")
        if close([gr - 0.5 for gr in grads], [k * r for r in ref]):
            raise ExerciseFailed(f"two things: the old gradients (0.5 everywhere) are still added in (call model.zero_grad() "
                                 f"before the loop), and the rest is {k} times too large (backward loss / k, not loss).")
        if close(grads, [k * r for r in ref]):
            raise ExerciseFailed(f"your gradients are {k} times too large: divide each micro-batch's loss by k={k} "
                                 "before backward(); the big batch's loss is the mean, not the sum.")
        x_last, y_last = x.chunk(k)[-1], y.chunk(k)[-1]
        torch.manual_seed(0)
        last_model = GPT(config)
        last_model(x_last, y_last)[1].backward()
        last = [p.grad for p in last_model.parameters()]
        if close(grads, last) or close(grads, [r / k for r in last]):
            raise ExerciseFailed("only the last micro-batch's gradient is left: gradients accumulate by themselves across "
                                 "backward() calls; do not zero them (or reassign .grad) inside the loop.")
        size = len(x.chunk(k)[0])
        if close(grads, [r * k / size for r in ref]):
            raise ExerciseFailed(f"you divided each micro-batch's loss by its size ({size}): the loss is already a mean "
                                 f"over the micro-batch. Divide by the number of micro-batches, k={k}.")
        torch.manual_seed(0)
        first_model = GPT(config)
        first_model(x.chunk(k)[0], y.chunk(k)[0])[1].backward()
        first_only = [p.grad for p in first_model.parameters()]
        if close(grads, first_only) or close(grads, [r / k for r in first_only]):
            raise ExerciseFailed("only the first micro-batch's gradient is there: run forward and backward on every one "
                                 "of the k micro-batches (is the return, or a break, inside the loop?).")
        diff = max(float((u - v).abs().max()) for u, v in zip(grads, ref))
        raise ExerciseFailed(f"with k={k} your gradients differ from the big batch's by up to {diff:.3g} "
                             f"(first entry: yours {float(mine.flatten()[0]):.4g}, expected {float(first.flatten()[0]):.4g}). "
                             "Split x and y the same way (x.chunk(k), y.chunk(k)) and backward loss / k for each.")
