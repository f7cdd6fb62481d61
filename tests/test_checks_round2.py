"""The exercise checks, round 2: valid answers they used to reject, and the usual slips named in words.

Each slip is planted as a small function; the check must raise `ExerciseFailed` whose message names the
mistake (not only the expected value). Each valid variant (float32, rounding, a list or an array, torch or
NumPy) must pass.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from course.checks import ExerciseFailed
from course.checks import ch00, ch01, ch02, ch03, ch04, ch05, ch06, ch07, ch08, ch09, ch10
from solutions import ch01_tokenization as s01
from solutions import ch02_embeddings_and_positions as s02
from solutions import ch03_attention_numpy as s03
from solutions import ch04_transformer_pytorch as s04
from solutions import ch05_pretraining as s05
from solutions import ch06_sampling as s06
from solutions import ch07_finetuning as s07
from solutions import ch08_efficiency_and_scale as s08
from solutions import ch09_scaling as s09
from solutions import ch10_landscape as s10


def _message(check, fn) -> str:
    with pytest.raises(ExerciseFailed) as info, np.errstate(all="ignore"):
        check(fn)
    return str(info.value)


def _passes(check, fn, capsys) -> None:
    with np.errstate(all="ignore"):
        check(fn)
    assert "all checks passed" in capsys.readouterr().out


# --------------------------------------------------------------------------- ch00: softmax


def _sm00(axis=-1, keepdims=True, exp=True, total=False, dtype=np.float64):
    def softmax(x):
        x = np.asarray(x, dtype=dtype)
        z = x - x.max(axis=-1, keepdims=True) if keepdims else x - x.max(axis=-1)
        e = np.exp(z) if exp else x
        return e / (e.sum() if total else e.sum(axis=axis, keepdims=True))

    return softmax


# --------------------------------------------------------------------------- ch01: tokenization


def _count_stop_early(ids):
    return dict(Counter((ids[i], ids[i + 1]) for i in range(len(ids) - 2)))


def _count_step_two(ids):
    return dict(Counter(zip(ids[::2], ids[1::2])))


def _count_sorted(ids):
    return dict(Counter(tuple(sorted(p)) for p in zip(ids, ids[1:])))


def _merge_from_the_right(ids, pair, new_id):
    out, i = [], len(ids) - 1
    while i >= 0:
        if i > 0 and (ids[i - 1], ids[i]) == pair:
            out.append(new_id)
            i -= 2
        else:
            out.append(ids[i])
            i -= 1
    return out[::-1]


def _merge_first_only(ids, pair, new_id):
    for i in range(len(ids) - 1):
        if (ids[i], ids[i + 1]) == pair:
            return ids[:i] + [new_id] + ids[i + 2 :]
    return list(ids)


def _merge_list_pair(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and [ids[i], ids[i + 1]] == pair:  # a list never equals the tuple pair
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


# --------------------------------------------------------------------------- ch02: positions


def _pe_integer_exponent(num_positions, dim, base=10000.0):
    pos = torch.arange(num_positions)[:, None]
    angles = pos / base ** (torch.arange(0, dim, 2) // dim)  # integer division: always exponent 0
    pe = torch.zeros(num_positions, dim, dtype=torch.float64)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(angles), torch.cos(angles)
    return pe


def _rope(exponent=2, float32_angles=False):
    def rope_rotate(x, positions, base=10000.0):
        d = x.shape[-1]
        i = torch.arange(d // 2) if float32_angles else torch.arange(d // 2, dtype=torch.float64)
        angles = positions[:, None] * base ** (-exponent * i / d)
        cos, sin = torch.cos(angles), torch.sin(angles)
        a, b = x[..., 0::2], x[..., 1::2]
        out = torch.empty_like(x)
        out[..., 0::2], out[..., 1::2] = a * cos - b * sin, a * sin + b * cos
        return out

    return rope_rotate


def _shift(angle, lower_sign=-1.0, dtype=torch.float64):
    def shift_matrix(k, dim, base=10000.0):
        m = torch.zeros(dim, dim, dtype=torch.float64)
        for i in range(dim // 2):
            b = angle(k, i, dim, base)
            c, s = math.cos(b), math.sin(b)
            m[2 * i, 2 * i], m[2 * i, 2 * i + 1] = c, s
            m[2 * i + 1, 2 * i], m[2 * i + 1, 2 * i + 1] = lower_sign * s, c
        return m.to(dtype)

    return shift_matrix


def _right_angle(k, i, dim, base):
    return k / base ** (2 * i / dim)


# --------------------------------------------------------------------------- ch03: attention in NumPy


def _scores(factor):
    return lambda q, k: q @ np.swapaxes(k, -1, -2) * factor(q.shape[-1])


def _causal(keep, scale=lambda d: 1 / math.sqrt(d), swap=False):
    def causal_attention(q, k, v):
        t = q.shape[-2]
        s = q @ np.swapaxes(k, -1, -2) * scale(q.shape[-1])
        s = np.where(keep(t), s, -np.inf)
        e = np.exp(s - s.max(axis=-1, keepdims=True))
        w = e / e.sum(axis=-1, keepdims=True)
        return (w, w @ v) if swap else (w @ v, w)

    return causal_attention


def _backward(slip):
    def attention_backward(g, q, k, v):
        scale = 1 / np.sqrt(q.shape[-1])
        s = q @ k.T * scale
        p = np.exp(s - s.max(axis=-1, keepdims=True))
        p /= p.sum(axis=-1, keepdims=True)
        dv, dp = p.T @ g, g @ v.T
        if slip == "column-sum":
            ds = p * (dp - (dp * p).sum(axis=0, keepdims=True))
        elif slip == "unweighted-sum":
            ds = p * (dp - dp.sum(axis=-1, keepdims=True))
        else:
            ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))
        dq, dk = ds @ k * scale, ds.T @ q * scale
        if slip == "scaled-twice":
            dq, dk = dq * scale, dk * scale
        if slip == "swapped":
            return dk, dq, dv
        return dq, dk, dv

    return attention_backward


# --------------------------------------------------------------------------- ch04: the block and the count


def _count_off_by(delta):
    return lambda c: s04.count_parameters(c) + delta(c)


# --------------------------------------------------------------------------- ch05: batches, schedule, evaluation


def _batch(low=0, high_less=0, same_start=False):
    def get_batch(data, block_size, batch_size, generator):
        starts = torch.randint(low, len(data) - block_size - high_less, (batch_size,), generator=generator)
        if same_start:
            starts = starts[:1].repeat(batch_size)
        x = torch.stack([data[s : s + block_size] for s in starts])
        y = torch.stack([data[s + 1 : s + 1 + block_size] for s in starts])
        return x, y

    return get_batch


def _lr(warm=None, decay=None, as_tensor=False):
    def learning_rate(step, *, lr, min_lr, warmup, total):
        if step < warmup and warm is not None:
            value = warm(step, lr, min_lr, warmup)
        elif warmup <= step < total and decay is not None:
            value = decay((step - warmup) / (total - warmup), step / total, lr, min_lr)
        else:
            value = s05.learning_rate(step, lr=lr, min_lr=min_lr, warmup=warmup, total=total)
        return torch.tensor(value) if as_tensor else value  # torch.tensor of a float is float32

    return learning_rate


def _eval(reduce):
    @torch.no_grad()
    def estimate_loss(model, batches):
        was_training = model.training
        model.eval()
        losses = [model(x, y)[1].item() for x, y in batches]
        model.train(was_training)
        return reduce(losses)

    return estimate_loss


# --------------------------------------------------------------------------- ch06: sampling


def _top_k(mask_le=False, smallest=False, whole_batch=False, in_place=False):
    def top_k_probs(logits, k):
        if whole_batch:
            kth = torch.topk(logits.flatten(), k).values[-1]
        else:
            kth = torch.topk(logits, k, dim=-1, largest=not smallest).values[..., -1:]
        drop = (logits > kth) if smallest else (logits <= kth) if mask_le else (logits < kth)
        if in_place:
            logits[drop] = float("-inf")
            return torch.softmax(logits, dim=-1)
        return torch.softmax(logits.masked_fill(drop, float("-inf")), dim=-1)

    return top_k_probs


def _top_p(rule):
    def top_p_probs(logits, p):
        probs = torch.softmax(logits, dim=-1)
        ascending = rule == "ascending"
        sorted_probs, order = torch.sort(probs, dim=-1, descending=not ascending)
        before = sorted_probs.cumsum(dim=-1) - sorted_probs
        if rule == "<=":
            keep = before <= p
        elif rule == "shifted":  # the old Hugging Face form: drop where the cumulative mass > p, shifted right by one
            drop = sorted_probs.cumsum(dim=-1) > p
            drop[..., 1:] = drop[..., :-1].clone()
            drop[..., 0] = False
            keep = ~drop
        elif rule == "min-tokens":  # today's Hugging Face form: ascending, drop while the mass so far <= 1 - p
            sorted_probs, order = torch.sort(probs, dim=-1)
            drop = sorted_probs.cumsum(dim=-1) <= 1 - p
            drop[..., -1] = False
            keep = ~drop
        else:
            keep = before < p
        kept = probs * torch.zeros_like(keep).scatter(-1, order, keep)
        return kept / kept.sum(dim=-1, keepdim=True)

    return top_p_probs


def _temperature_in_place(logits, temperature):
    if temperature <= 0:
        raise ValueError("use greedy decoding")
    logits /= temperature
    return torch.softmax(logits, dim=-1)


def _temperature_over_batch(logits, temperature):
    if temperature <= 0:
        raise ValueError("use greedy decoding")
    return torch.softmax(logits / temperature, dim=0)


# --------------------------------------------------------------------------- ch07: fine-tuning


def _sft(fill=-100, masked=None, dtype=None):
    def sft_example(prompt, response):
        ids = list(prompt) + list(response)
        n = len(prompt) - 1 if masked is None else masked(len(prompt))
        x, y = ids[:-1], [fill] * n + ids[1:][n:]
        return torch.tensor(x, dtype=dtype), torch.tensor(y, dtype=dtype)

    return sft_example


# --------------------------------------------------------------------------- ch08: efficiency


def _quantize(scale_of, guard=True, round_=torch.round):
    def quantize_rows_int8(w):
        scale = scale_of(w)
        if guard:
            scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        return round_(w / scale).clamp(-127, 127).to(torch.int8), scale

    return quantize_rows_int8


def _max_scale(divisor=127.0):
    return lambda w: w.abs().amax(dim=1, keepdim=True) / divisor


def _zero(per_param, shards):
    """Bytes per GPU from `shards(stage)`: which of (weights, grads, adam) are divided by the world size."""

    def zero_bytes_per_gpu(n, world, stage):
        parts = [4 * n, 4 * n, 8 * n]
        return per_param * sum(p / world if s else p for p, s in zip(parts, shards(stage))) / 16

    return zero_bytes_per_gpu


def _accumulate(divide):
    def accumulate_gradients(model, x, y, k):
        model.zero_grad(set_to_none=True)
        for i, (xs, ys) in enumerate(zip(x.chunk(k), y.chunk(k))):
            loss = model(xs, ys)[1]
            if divide == "first-only" and i > 0:
                break
            (loss / (len(xs) if divide == "size" else k)).backward()

    return accumulate_gradients


# --------------------------------------------------------------------------- ch09, ch10


def _fit(order="slope-first", log_x=True, out=tuple):
    def fit_exponent(x, loss):
        u = np.log(x) if log_x else np.asarray(x)
        first, second = np.polyfit(u, np.log(loss), 1)
        slope, intercept = (first, second) if order == "slope-first" else (second, first)
        return out([float(np.exp(intercept)), float(-slope)])

    return fit_exponent


def _split(n_of, d_of=lambda n, r: r * n, out=tuple):
    return lambda flops, r: out([n_of(flops, r), d_of(n_of(flops, r), r)])


def _align(read):
    return lambda w, a: read(np.asarray(w), np.asarray(a))


# --------------------------------------------------------------------------- the slips, named


SLIPS = [
    # ch00 softmax
    ("00 softmax: no exp", ch00.check_softmax, _sm00(exp=False), "Take exp first"),
    ("00 softmax: sum of everything", ch00.check_softmax, _sm00(total=True), "sum of everything"),
    ("00 softmax: no keepdims", ch00.check_softmax, _sm00(keepdims=False), "keepdims=True"),
    # ch01
    ("01 count_pairs: last pair missing", ch01.check_count_pairs, _count_stop_early, "last pair (1, 5) is missing"),
    ("01 count_pairs: step of 2", ch01.check_count_pairs, _count_step_two, "stepped by 2"),
    ("01 count_pairs: sorted pairs", ch01.check_count_pairs, _count_sorted, "do not sort"),
    ("01 merge: from the right", ch01.check_merge, _merge_from_the_right, "scanned from the right"),
    ("01 merge: first occurrence only", ch01.check_merge, _merge_first_only, "only the first occurrence"),
    ("01 merge: list compared with the tuple pair", ch01.check_merge, _merge_list_pair, "merged nothing"),
    # ch02
    ("02 sinusoidal: integer division", ch02.check_sinusoidal_pe, _pe_integer_exponent, "Integer division"),
    ("02 rope: i/d exponent", ch02.check_rope_rotate, _rope(exponent=1), "base^(-i/d)"),
    ("02 shift: i/dim exponent", ch02.check_shift_matrix, _shift(lambda k, i, dim, base: k / base ** (i / dim)),
     "k / base^(i/dim)"),
    ("02 shift: one angle for all pairs", ch02.check_shift_matrix, _shift(lambda k, i, dim, base: k / base),
     "every pair by the same angle"),
    ("02 shift: not a rotation", ch02.check_shift_matrix, _shift(_right_angle, lower_sign=1.0), "not a rotation"),
    # ch03
    ("03 scores: x·√d instead of ÷√d", ch03.check_attention_scores, _scores(lambda d: math.sqrt(d)),
     "multiplied by √d_k instead of dividing"),
    ("03 scores: forgot the sqrt", ch03.check_attention_scores, _scores(lambda d: 1 / d), "the square root is missing"),
    ("03 scores: d_k from the batch axis", ch03.check_attention_scores,
     lambda q, k: q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[0]), "batch size"),
    ("03 causal: inverted triangle (triu)", ch03.check_causal_attention,
     _causal(lambda t: np.triu(np.ones((t, t), bool))), "hides the past and shows the future"),
    ("03 causal: inverted mask (~tril)", ch03.check_causal_attention,
     _causal(lambda t: ~np.tril(np.ones((t, t), bool))), "hides the past and shows the future"),
    ("03 causal: x·√d", ch03.check_causal_attention,
     _causal(lambda t: np.tril(np.ones((t, t), bool)), scale=lambda d: math.sqrt(d)), "multiplied by √d_k"),
    ("03 causal: forgot the sqrt", ch03.check_causal_attention,
     _causal(lambda t: np.tril(np.ones((t, t), bool)), scale=lambda d: 1 / d), "the square root is missing"),
    ("03 causal: (weights, output) returned", ch03.check_causal_attention,
     _causal(lambda t: np.tril(np.ones((t, t), bool)), swap=True), "you returned (weights, output)"),
    ("03 backward: Jacobian sum down the columns", ch03.check_attention_backward, _backward("column-sum"),
     "over the wrong axis"),
    ("03 backward: Jacobian sum of dP alone", ch03.check_attention_backward, _backward("unweighted-sum"),
     "not of dP alone"),
    ("03 backward: scale applied twice", ch03.check_attention_backward, _backward("scaled-twice"), "applied twice"),
    ("03 backward: (dk, dq, dv)", ch03.check_attention_backward, _backward("swapped"), "did you return (dk, dq, dv)"),
    # ch04
    ("04 block: norm1 twice", ch04.check_block_forward, lambda x, n1, a, n2, m: (h := x + a(n1(x))) + m(n1(h)),
     "norm1 for both"),
    ("04 block: MLP first", ch04.check_block_forward, lambda x, n1, a, n2, m: (h := x + m(n2(x))) + a(n1(h)),
     "MLP ran before the attention"),
    ("04 block: norm on the outputs", ch04.check_block_forward,
     lambda x, n1, a, n2, m: (h := x + n1(a(x))) + n2(m(h)), "normalised the sub-layers' outputs"),
    ("04 block: norm on the block's output", ch04.check_block_forward,
     lambda x, n1, a, n2, m: n2((h := x + a(n1(x))) + m(n2(h))), "normalised the block's output"),
    ("04 count: no qkv bias", ch04.check_count_parameters,
     _count_off_by(lambda c: -3 * c.n_embd * c.n_layer if c.bias else 0), "qkv projection's bias"),
    ("04 count: no output projection", ch04.check_count_parameters,
     _count_off_by(lambda c: -c.n_layer * (c.n_embd ** 2 + (c.n_embd if c.bias else 0))), "output projection"),
    ("04 count: one norm per block", ch04.check_count_parameters,
     _count_off_by(lambda c: -c.n_layer * (c.n_embd if c.norm == "rmsnorm" else 2 * c.n_embd)), "you count one"),
    ("04 count: a head bias", ch04.check_count_parameters,
     _count_off_by(lambda c: 0 if c.tie_weights else c.vocab_size), "head has no bias"),
    ("04 count: no biases at all", ch04.check_count_parameters,
     lambda c: s04.count_parameters(__import__("dataclasses").replace(c, bias=False)), "no bias is counted"),
    # ch05
    ("05 get_batch: starts from 1", ch05.check_get_batch, _batch(low=1), "ever starts at position 0"),
    ("05 get_batch: last start never drawn", ch05.check_get_batch, _batch(high_less=1), "ever starts at 11"),
    ("05 get_batch: one start for the batch", ch05.check_get_batch, _batch(same_start=True), "same position"),
    ("05 lr: warmup without the offset", ch05.check_learning_rate, _lr(warm=lambda s, lr, m, w: lr * s / w),
     "without the offset"),
    ("05 lr: warmup over warmup, not warmup + 1", ch05.check_learning_rate,
     _lr(warm=lambda s, lr, m, w: lr * (s + 1) / w), "one step early"),
    ("05 lr: warmup from min_lr", ch05.check_learning_rate,
     _lr(warm=lambda s, lr, m, w: m + (lr - m) * (s + 1) / (w + 1)), "rises from min_lr"),
    ("05 lr: progress step / total", ch05.check_learning_rate,
     _lr(decay=lambda prog, raw, lr, m: m + 0.5 * (1 + math.cos(math.pi * raw)) * (lr - m)),
     "counts from the end of warmup"),
    ("05 lr: a full cosine period", ch05.check_learning_rate,
     _lr(decay=lambda prog, raw, lr, m: m + 0.5 * (1 + math.cos(2 * math.pi * prog)) * (lr - m)), "full cosine"),
    ("05 lr: linear decay", ch05.check_learning_rate, _lr(decay=lambda prog, raw, lr, m: lr - (lr - m) * prog),
     "straight line"),
    ("05 lr: no 0.5", ch05.check_learning_rate,
     _lr(decay=lambda prog, raw, lr, m: m + (1 + math.cos(math.pi * prog)) * (lr - m)), "left out the 0.5"),
    ("05 estimate_loss: summed", ch05.check_estimate_loss, _eval(sum), "sum of the 3 batch losses"),
    ("05 estimate_loss: last batch only", ch05.check_estimate_loss, _eval(lambda losses: losses[-1]),
     "a single batch"),
    # ch06
    ("06 temperature: logits changed in place", ch06.check_temperature_probs, _temperature_in_place, "in place"),
    ("06 temperature: softmax over the batch", ch06.check_temperature_probs, _temperature_over_batch,
     "ran over dim 0"),
    ("06 top-k: <= kth drops the k-th itself", ch06.check_top_k_probs, _top_k(mask_le=True), "not <= kth"),
    ("06 top-k: the least likely", ch06.check_top_k_probs, _top_k(smallest=True), "least likely"),
    ("06 top-k: k-th of the whole batch", ch06.check_top_k_probs, _top_k(whole_batch=True), "not of the whole batch"),
    ("06 top-k: logits changed in place", ch06.check_top_k_probs, _top_k(in_place=True), "in place"),
    ("06 top-p: mass before <= p (exact tie)", ch06.check_top_p_probs, _top_p("<="), "not <= p"),
    ("06 top-p: cumulative > p shifted (exact tie)", ch06.check_top_p_probs, _top_p("shifted"), "not <= p"),
    ("06 top-p: ascending sort", ch06.check_top_p_probs, _top_p("ascending"), "ascending order"),
    # ch07
    ("07 sft: prompt targets 0", ch07.check_sft_example, _sft(fill=0), "not -100"),
    ("07 sft: prompt targets -1", ch07.check_sft_example, _sft(fill=-1), "not -100"),
    ("07 sft: one target too few masked", ch07.check_sft_example, _sft(masked=lambda n: n - 2), "one target too few"),
    ("07 sft: float targets", ch07.check_sft_example, _sft(dtype=torch.float32), "integers (torch.long)"),
    ("07 lora: no bias", ch07.check_lora_forward, lambda x, W, b, A, B, s: x @ W.T + s * (x @ A.T) @ B.T,
     "bias b is missing"),
    ("07 lora: frozen layer scaled", ch07.check_lora_forward,
     lambda x, W, b, A, B, s: s * (x @ W.T + b) + s * (x @ A.T) @ B.T, "only the low-rank term is scaled"),
    ("07 lora: bias scaled", ch07.check_lora_forward,
     lambda x, W, b, A, B, s: x @ W.T + s * (b + (x @ A.T) @ B.T), "bias is multiplied by `scaling`"),
    ("07 lora: divided by scaling", ch07.check_lora_forward,
     lambda x, W, b, A, B, s: x @ W.T + b + (x @ A.T) @ B.T / s, "divided by `scaling`"),
    ("07 merge: subtracted", ch07.check_merge_lora_weight, lambda W, A, B, s: W - s * B @ A, "you subtracted"),
    ("07 merge: divided by scaling", ch07.check_merge_lora_weight, lambda W, A, B, s: W + B @ A / s,
     "divided by `scaling`"),
    # ch08
    ("08 int8: scale from the mean |w|", ch08.check_quantize_rows,
     _quantize(lambda w: w.abs().mean(dim=1, keepdim=True) / 127), "mean |w|"),
    ("08 int8: no guard for a zero row (0/0)", ch08.check_quantize_rows, _quantize(_max_scale(), guard=False),
     "divides 0 by 0"),
    ("08 int8: max / 255", ch08.check_quantize_rows, _quantize(_max_scale(255.0)), "max|w| / 255"),
    ("08 int8: max / 128", ch08.check_quantize_rows, _quantize(_max_scale(128.0)), "max|w| / 128"),
    ("08 int8: the reciprocal scale", ch08.check_quantize_rows,
     lambda w: (lambda s: ((w * s).round().clamp(-127, 127).to(torch.int8), s))(
         127 / w.abs().amax(dim=1, keepdim=True).clamp(min=1e-12)), "the reciprocal"),
    ("08 int8: truncation", ch08.check_quantize_rows, _quantize(_max_scale(), round_=torch.trunc), "do not truncate"),
    ("08 zero: bits", ch08.check_zero_bytes, _zero(128, lambda st: (st >= 3, st >= 2, st >= 1)), "that is bits"),
    ("08 zero: stages shifted by one", ch08.check_zero_bytes, _zero(16, lambda st: (st >= 4, st >= 3, st >= 2)),
     "shifted by one"),
    ("08 accumulate: divided by the micro-batch size", ch08.check_accumulation, _accumulate("size"),
     "divided each micro-batch's loss by its size"),
    ("08 accumulate: first micro-batch only", ch08.check_accumulation, _accumulate("first-only"),
     "only the first micro-batch"),
    # ch09
    ("09 fit: polyfit unpacked as (intercept, slope)", ch09.check_fit_exponent, _fit(order="intercept-first"),
     "slope and the intercept are swapped"),
    ("09 fit: x not logged", ch09.check_fit_exponent, _fit(log_x=False), "not ln x"),
    ("09 fit: ln x fitted on ln loss", ch09.check_fit_exponent,
     lambda x, loss: (lambda c: (float(np.exp(c[1])), float(-c[0])))(np.polyfit(np.log(loss), np.log(x), 1)),
     "fitted ln x against ln loss"),
    ("09 fit: line through the end points", ch09.check_fit_exponent,
     lambda x, loss: (lambda sl: (float(loss[0] / x[0] ** sl), float(-sl)))(
         (np.log(loss[-1]) - np.log(loss[0])) / (np.log(x[-1]) - np.log(x[0]))), "first and last points"),
    ("09 split: no sqrt", ch09.check_compute_optimal, _split(lambda c, r: c / (6 * r)), "square root is missing"),
    ("09 split: times r", ch09.check_compute_optimal, _split(lambda c, r: math.sqrt(c * r / 6)),
     "multiplied by tokens_per_param"),
    ("09 split: r left out", ch09.check_compute_optimal, _split(lambda c, r: math.sqrt(c / 6)),
     "leaves out tokens_per_param"),
    ("09 split: D = N / r", ch09.check_compute_optimal,
     _split(lambda c, r: math.sqrt(c / (6 * r)), d_of=lambda n, r: n / r), "D = tokens_per_param x N"),
    # ch10
    ("10 align: hits / source words", ch10.check_alignment_accuracy,
     _align(lambda w, a: float((w.argmax(-1) == a).sum() / w.shape[1])), "number of *source* words"),
    ("10 align: argmin", ch10.check_alignment_accuracy, _align(lambda w, a: float(np.mean(w.argmin(-1) == a))),
     "argmin"),
    ("10 align: 1-based index", ch10.check_alignment_accuracy,
     _align(lambda w, a: float(np.mean(w.argmax(-1) + 1 == a))), "argmax + 1"),
    ("10 align: share of misses", ch10.check_alignment_accuracy,
     _align(lambda w, a: float(np.mean(w.argmax(-1) != a))), "share of misses"),
    ("10 align: a percentage", ch10.check_alignment_accuracy,
     _align(lambda w, a: 100 * float(np.mean(w.argmax(-1) == a))), "percentage"),
    ("10 align: integer division", ch10.check_alignment_accuracy,
     _align(lambda w, a: int((w.argmax(-1) == a).sum()) // len(a)), "integer division"),
    ("10 align: the boolean array", ch10.check_alignment_accuracy, _align(lambda w, a: w.argmax(-1) == a),
     "return one number"),
    ("10 align: rounded to 2 decimals", ch10.check_alignment_accuracy,
     _align(lambda w, a: round(float(np.mean(w.argmax(-1) == a)), 2)), "unrounded"),
    ("10 masks: additive form", ch10.check_attention_mask,
     lambda kind, t, prefix=0: np.where(s10.attention_mask(kind, t, prefix), 0.0, -np.inf), "additive mask"),
    ("10 masks: prefix block one too large", ch10.check_attention_mask,
     lambda kind, t, prefix=0: s10.attention_mask(kind, t, prefix + 1 if kind == "prefix" and prefix else prefix),
     "one too large"),
    ("10 masks: prefix ignored", ch10.check_attention_mask,
     lambda kind, t, prefix=0: s10.attention_mask("causal" if kind == "prefix" else kind, t), "plain causal"),
]


@pytest.mark.parametrize("name, check, fn, words", SLIPS, ids=[s[0] for s in SLIPS])
def test_the_slip_is_named(name, check, fn, words):
    message = _message(check, fn)
    assert words in message, message
    assert "raised" not in message or "keepdims" in message  # a crash in the check itself is no diagnosis


# --------------------------------------------------------------------------- valid answers, accepted


VALID = [
    ("00 softmax in float32", ch00.check_softmax, _sm00(dtype=np.float32)),
    ("02 rope with float32 angles", ch02.check_rope_rotate, _rope(float32_angles=True)),
    ("02 shift matrix in float32", ch02.check_shift_matrix, _shift(_right_angle, dtype=torch.float32)),
    ("04 count as numpy int64", ch04.check_count_parameters, lambda c: np.int64(s04.count_parameters(c))),
    ("05 lr as a float32 tensor", ch05.check_learning_rate, _lr(as_tensor=True)),
    ("06 top-p, today's Hugging Face rule", ch06.check_top_p_probs, _top_p("min-tokens")),
    ("07 lora in float32", ch07.check_lora_forward, lambda *a: s07.lora_forward(*a).float()),
    ("07 merge in float32", ch07.check_merge_lora_weight, lambda *a: s07.merge_lora_weight(*a).float()),
    ("08 int8 with an epsilon", ch08.check_quantize_rows, _quantize(lambda w: _max_scale()(w) + 1e-12, guard=False)),
    ("08 int8 as a list", ch08.check_quantize_rows, lambda w: list(s08.quantize_rows_int8(w))),
    ("09 fit as a list", ch09.check_fit_exponent, _fit(out=list)),
    ("09 fit as an array", ch09.check_fit_exponent, _fit(out=np.array)),
    ("09 fit as a tensor", ch09.check_fit_exponent, _fit(out=torch.tensor)),
    ("09 split rounded to integers", ch09.check_compute_optimal, lambda c, r: tuple(map(round, s09.compute_optimal_split(c, r)))),
    ("09 split with N rounded, then D", ch09.check_compute_optimal,
     _split(lambda c, r: round(math.sqrt(c / (6 * r))))),
    ("09 split truncated with int()", ch09.check_compute_optimal, lambda c, r: tuple(map(int, s09.compute_optimal_split(c, r)))),
    ("09 split as a list", ch09.check_compute_optimal, lambda c, r: list(s09.compute_optimal_split(c, r))),
    ("09 split in float32", ch09.check_compute_optimal, lambda c, r: tuple(map(np.float32, s09.compute_optimal_split(c, r)))),
    ("10 align as numpy float32", ch10.check_alignment_accuracy,
     lambda w, a: np.float32(s10.alignment_accuracy(w, a))),
    ("10 align as a 0-d float32 array", ch10.check_alignment_accuracy,
     lambda w, a: np.array(s10.alignment_accuracy(w, a), dtype=np.float32)),
    ("10 align as a float32 tensor", ch10.check_alignment_accuracy,
     lambda w, a: torch.tensor(s10.alignment_accuracy(w, a), dtype=torch.float32)),
    ("10 align rounded to 4 decimals", ch10.check_alignment_accuracy,
     lambda w, a: round(s10.alignment_accuracy(w, a), 4)),
]


@pytest.mark.parametrize("name, check, fn", VALID, ids=[v[0] for v in VALID])
def test_a_valid_answer_passes(name, check, fn, capsys):
    _passes(check, fn, capsys)


# --------------------------------------------------------------------------- the references under the new cases


def test_the_nucleus_references_stop_where_the_mass_reaches_p_exactly():
    """Chapter 06: the nucleus is the smallest set whose mass reaches p; at an exact tie the next token is out."""
    from course.sampling import top_p_filter

    logits = torch.tensor([-2.0, 0.0, -2.0, -1.0], dtype=torch.float64) * math.log(2)  # 0.125, 0.5, 0.125, 0.25
    assert torch.equal(torch.softmax(logits, -1), torch.tensor([0.125, 0.5, 0.125, 0.25], dtype=torch.float64))
    for p, kept in ((0.5, [1]), (0.75, [1, 3])):
        assert torch.nonzero(s06.top_p_probs(logits, p)).flatten().tolist() == kept
        assert torch.isfinite(top_p_filter(logits, p)).nonzero().flatten().tolist() == kept


def test_the_alignment_maps_give_every_slip_its_own_value():
    for peak, low, truth, sources in ((ch10._SQUARE_PEAK, ch10._SQUARE_LOW, ch10._SQUARE_TRUTH, 10),
                                      (ch10._WIDE_PEAK, ch10._WIDE_LOW, ch10._WIDE_TRUTH, 6)):
        w = ch10._cross_attention(peak, low, sources)
        assert w.argmax(-1).tolist() == peak and w.argmin(-1).tolist() == low
        assert np.allclose(w.sum(-1), 1.0)
        want = float(np.mean(w.argmax(-1) == np.array(truth)))
        values = [want, *ch10._alignment_slips(w, truth).values()]
        assert len({round(v, 9) for v in values}) == len(values) and 0 not in values


def test_the_solutions_still_pass(capsys):
    for check, fn in ((ch01.check_count_pairs, s01.count_pairs), (ch01.check_merge, s01.merge),
                      (ch02.check_rope_rotate, s02.rope_rotate), (ch02.check_shift_matrix, s02.shift_matrix),
                      (ch03.check_causal_attention, s03.causal_attention),
                      (ch03.check_attention_backward, s03.attention_backward),
                      (ch05.check_learning_rate, s05.learning_rate), (ch06.check_top_p_probs, s06.top_p_probs),
                      (ch08.check_quantize_rows, s08.quantize_rows_int8),
                      (ch10.check_alignment_accuracy, s10.alignment_accuracy)):
        _passes(check, fn, capsys)
