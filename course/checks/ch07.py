"""Checks for the exercises of chapter 07 (fine-tuning): the response-only targets, a LoRA layer, merging."""

from __future__ import annotations

import torch

from ..sft import IGNORE, response_targets
from . import ExerciseFailed, call, exercise_check, expect, expect_close


def _tensor(value, what: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        try:
            value = torch.as_tensor(value)
        except Exception:  # noqa: BLE001 - reported in words
            raise ExerciseFailed(f"{what} must be a tensor (or a list of ints), got {type(value).__name__}.") from None
    return value


def _float64(value, what: str) -> torch.Tensor:
    """A floating-point result in float64, so that it compares with the float64 inputs (float32 is accepted)."""
    value = _tensor(value, what)
    expect(value.is_floating_point(), f"{what} has dtype {value.dtype}: it should hold floating-point numbers.")
    return value.double()


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, rtol=1e-5, atol=1e-6)


@exercise_check("sft_example")
def check_sft_example(sft_example) -> None:
    prompt, response = [5, 6, 7, 8], [20, 21, 22]
    out = call(sft_example, list(prompt), list(response))
    expect(isinstance(out, (tuple, list)) and len(out) == 2, "sft_example must return a pair (x, y).")
    for value, name in zip(out, ("x", "y")):
        value = _tensor(value, name)
        expect(not (value.is_floating_point() or value.is_complex()),
               f"{name} has dtype {value.dtype}: token ids and targets are integers (torch.long). A float target "
               "tensor makes cross_entropy read it as probabilities, not class ids: use torch.tensor(list_of_ints).")
    x, y = (_tensor(v, n).flatten().tolist() for v, n in zip(out, ("x", "y")))
    want_x, want_y = response_targets(prompt + response, len(prompt))
    n = len(prompt) + len(response)
    expect(len(x) == n - 1, f"x has {len(x)} tokens; for a prompt of 4 and a response of 3 it needs 6 (all tokens but the last: the last has nothing to predict).")
    expect(len(y) == n - 1, f"y has {len(y)} targets, expected {n - 1} (one per input position).")
    expect(x == want_x, f"x is {x}, expected {want_x}: the inputs are prompt + response without the last token.")
    if y == [t for t in (prompt + response)[1:]]:
        raise ExerciseFailed("nothing is masked: the prompt's targets must be -100 so the loss covers the response only.")
    if y == [IGNORE] * len(prompt) + response[1:]:
        raise ExerciseFailed(
            "you masked one target too many: position len(prompt) - 1 (the last prompt token) predicts the FIRST response "
            "token, and that target must be kept."
        )
    if y[: len(prompt) - 1] == [IGNORE] * (len(prompt) - 1) and y[len(prompt) - 1 :] != response:
        raise ExerciseFailed(f"the prompt is masked, but the kept targets are {y[len(prompt) - 1:]} instead of the response {response}: shift the targets by one (y[t] = ids[t + 1]).")
    if all(t == IGNORE for t in y[len(prompt) - 1 :]):
        raise ExerciseFailed("the response's targets are masked: it is the prompt that must be -100, the response is what the model learns.")
    masked_with = {t for t in y[: len(prompt) - 1]}
    if y[len(prompt) - 1 :] == response and len(masked_with) == 1 and masked_with != {IGNORE}:
        raise ExerciseFailed(
            f"the prompt's targets are {masked_with.pop()}, not -100: cross_entropy skips only targets equal to its "
            "ignore_index, -100 by default; any other value is read as a real token id (0 is a token too)."
        )
    if y == [IGNORE] * (len(prompt) - 2) + (prompt + response)[len(prompt) - 1 :]:
        raise ExerciseFailed(
            f"you masked one target too few: y[{len(prompt) - 2}] = {prompt[-1]} is the last prompt token, a target "
            "in the prompt, so it must be -100 too. Mask the first len(prompt) - 1 targets."
        )
    expect(y == want_y, f"y is {y}, expected {want_y}.")
    _, y1 = (v.flatten().tolist() if isinstance(v, torch.Tensor) else list(v) for v in call(sft_example, [3], [9, 10]))
    expect(y1 == [9, 10], f"with a one-token prompt nothing is masked (the only prompt token predicts the response): expected [9, 10], got {y1}.")


def _lora_case(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(5, 6, generator=g, dtype=torch.float64)
    weight = torch.randn(4, 6, generator=g, dtype=torch.float64)
    bias = torch.randn(4, generator=g, dtype=torch.float64)
    A = torch.randn(2, 6, generator=g, dtype=torch.float64)
    B = torch.randn(4, 2, generator=g, dtype=torch.float64)
    return x, weight, bias, A, B


@exercise_check("lora_forward")
def check_lora_forward(lora_forward) -> None:
    x, weight, bias, A, B = _lora_case()
    base = x @ weight.T + bias
    out0 = _float64(call(lora_forward, x, weight, bias, A, torch.zeros_like(B), 2.0), "the output")
    expect(tuple(out0.shape) == (5, 4), f"the output has shape {tuple(out0.shape)}, expected (batch, out_features) = (5, 4).")
    if torch.allclose(out0, torch.zeros_like(out0)):
        raise ExerciseFailed("with B = 0 your output is all zeros: the frozen layer x Wᵀ + b must be kept (LoRA adds a change, it does not replace the layer).")
    if _same(out0, x @ weight.T):
        raise ExerciseFailed("with B = 0 your output is x Wᵀ: the bias b is missing.")
    if _same(out0, 2.0 * base):
        raise ExerciseFailed("with B = 0 your output is scaling · (x Wᵀ + b): only the low-rank term is scaled; "
                             "the frozen layer stays as it is.")
    if _same(out0, x @ weight.T + 2.0 * bias):
        raise ExerciseFailed("the bias is multiplied by `scaling`: it belongs to the frozen layer, x Wᵀ + b, "
                             "outside the scaled low-rank term.")
    expect_close(out0, base, "with B = 0 the output (it must equal the plain layer x Wᵀ + b)", rtol=1e-5, atol=1e-6)
    out = _float64(call(lora_forward, x, weight, bias, A, B, 2.0), "the output")
    low_rank = (x @ A.T) @ B.T
    if _same(out, base + low_rank):
        raise ExerciseFailed("the low-rank term is not multiplied by `scaling` (alpha / r).")
    if _same(out, base + low_rank / 2.0):
        raise ExerciseFailed("the low-rank term is divided by `scaling`: multiply it, base + scaling · x Aᵀ Bᵀ.")
    if _same(out, base):
        raise ExerciseFailed("the output ignores A and B: add scaling · x Aᵀ Bᵀ to the plain layer.")
    if _same(out, low_rank * 2.0):
        raise ExerciseFailed("the output is only the low-rank term: the frozen layer x Wᵀ + b must be kept (LoRA adds a change, it does not replace the layer).")
    expect_close(out, base + 2.0 * low_rank, "lora_forward(x, W, b, A, B, 2.0)", rtol=1e-5, atol=1e-6)


@exercise_check("merge_lora_weight")
def check_merge_lora_weight(merge_lora_weight) -> None:
    x, weight, bias, A, B = _lora_case(1)
    before = weight.clone()
    merged = _float64(call(merge_lora_weight, weight, A, B, 0.5), "the merged weight")
    expect(tuple(merged.shape) == tuple(weight.shape), f"the merged weight has shape {tuple(merged.shape)}, expected the shape of W {tuple(weight.shape)}: B A is (out, r)·(r, in).")
    expect(torch.equal(weight, before), "merge_lora_weight changed W in place: return a new tensor (W + ..., not W += ...).")
    if _same(merged, weight + B @ A):
        raise ExerciseFailed("the change is not multiplied by `scaling`.")
    if _same(merged, weight + B @ A / 0.5):
        raise ExerciseFailed("the change is divided by `scaling`: multiply it, W + scaling · B A.")
    if _same(merged, weight - 0.5 * B @ A):
        raise ExerciseFailed("you subtracted the change: merging adds it, W + scaling · B A (subtracting undoes a merge).")
    if _same(merged, weight):
        raise ExerciseFailed("the merged weight equals W: add scaling · B A.")
    expect_close(merged, weight + 0.5 * B @ A, "the merged weight", rtol=1e-5, atol=1e-6)
    adapted = x @ weight.T + bias + 0.5 * (x @ A.T) @ B.T
    expect_close(x @ merged.T + bias, adapted, "the merged layer's output compared with the adapter layer's", rtol=1e-5, atol=1e-6)
