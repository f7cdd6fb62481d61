"""Tests of course.positional (chapter 02), its plots, widget and exercise checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course.positional import (
    LearnedPositionalEmbedding,
    RoPE,
    SinusoidalPositionalEncoding,
    alibi_bias,
    alibi_slopes,
    apply_rope,
    inverse_frequencies,
    pairing_permutation,
    rope_cos_sin,
    sinusoidal_shift_matrix,
    sinusoidal_table,
    wavelengths,
)

# --------------------------------------------------------------------------- float64 references, written as loops


def formula_table(num_positions: int, dim: int, base: float = 10000.0) -> np.ndarray:
    pe = np.zeros((num_positions, dim))
    for pos in range(num_positions):
        for i in range(dim // 2):
            angle = pos / base ** (2 * i / dim)
            pe[pos, 2 * i] = math.sin(angle)
            pe[pos, 2 * i + 1] = math.cos(angle)
    return pe


def formula_rope(x: np.ndarray, positions: np.ndarray, base: float, pairing: str) -> np.ndarray:
    """Rotate each pair of each vector with an explicit 2x2 rotation matrix. x: (time, d)."""
    out = np.array(x, dtype=np.float64)
    d = x.shape[-1]
    for t, m in enumerate(positions):
        for i in range(d // 2):
            theta = m * base ** (-2 * i / d)
            rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
            j, k = (2 * i, 2 * i + 1) if pairing == "interleaved" else (i, i + d // 2)
            out[t, [j, k]] = rot @ x[t, [j, k]]
    return out


# --------------------------------------------------------------------------- sinusoidal


@pytest.mark.parametrize("num_positions,dim,base", [(1, 2, 10000.0), (37, 16, 10000.0), (20, 6, 100.0), (128, 64, 500000.0)])
def test_sinusoidal_table_matches_the_formula_in_float64(num_positions: int, dim: int, base: float) -> None:
    table = sinusoidal_table(num_positions, dim, base, dtype=torch.float64)
    assert table.shape == (num_positions, dim) and table.dtype == torch.float64
    np.testing.assert_allclose(table.numpy(), formula_table(num_positions, dim, base), rtol=0, atol=1e-12)


def test_sinusoidal_table_dtype_device_and_float32_rounding() -> None:
    t32 = sinusoidal_table(2048, 32)
    t64 = sinusoidal_table(2048, 32, dtype=torch.float64)
    assert t32.dtype == torch.float32 and t32.device.type == "cpu"
    # computed in float64, then rounded once: within half an ulp of float32 near 1
    assert (t32.double() - t64).abs().max() <= 2.0**-24
    assert sinusoidal_table(4, 4, dtype=torch.bfloat16).dtype == torch.bfloat16


def test_sinusoidal_table_agrees_with_gptj_up_to_the_halves_layout() -> None:
    gptj = pytest.importorskip("transformers.models.gptj.modeling_gptj")
    theirs = gptj.create_sinusoidal_positions(64, 16)  # sin of every pair, then cos of every pair
    ours = sinusoidal_table(64, 16)
    torch.testing.assert_close(ours[:, pairing_permutation(16)], theirs, rtol=0, atol=1e-5)


@pytest.mark.parametrize("offset", [0, 1, 7, 250, -3])
def test_a_shift_in_position_is_a_fixed_rotation(offset: int) -> None:
    dim = 16
    pe = sinusoidal_table(600, dim, dtype=torch.float64)
    m = sinusoidal_shift_matrix(offset, dim)
    rows = torch.arange(max(0, -offset), 600 - max(0, offset))
    torch.testing.assert_close(pe[rows] @ m.T, pe[rows + offset], rtol=0, atol=1e-10)
    torch.testing.assert_close(m @ m.T, torch.eye(dim, dtype=torch.float64), rtol=0, atol=1e-12)  # orthogonal
    torch.testing.assert_close(sinusoidal_shift_matrix(-offset, dim), m.T, rtol=0, atol=1e-12)  # inverse = transpose


def test_sinusoidal_dot_products_depend_only_on_the_offset() -> None:
    dim = 32
    pe = sinusoidal_table(300, dim, dtype=torch.float64)
    gram = pe @ pe.T
    omega = inverse_frequencies(dim)
    for m, n in [(0, 0), (5, 2), (2, 5), (100, 140), (299, 0)]:
        expected = torch.cos((m - n) * omega).sum()  # sin a sin b + cos a cos b = cos(a - b)
        assert abs(float(gram[m, n] - expected)) < 1e-10
    assert abs(float(gram[10, 30] - gram[110, 130])) < 1e-10
    assert abs(float(gram[30, 10] - gram[10, 30])) < 1e-10  # symmetric in the sign of the offset
    torch.testing.assert_close(torch.diagonal(gram), torch.full((300,), dim / 2, dtype=torch.float64))


def test_wavelengths_run_geometrically_from_two_pi() -> None:
    dim = 512
    w = wavelengths(dim)
    assert w.shape == (dim // 2,)
    assert abs(float(w[0]) - 2 * math.pi) < 1e-12
    assert abs(float(w[-1]) - 2 * math.pi * 10000 ** ((dim - 2) / dim)) < 1e-6
    assert float(w[-1]) < 2 * math.pi * 10000
    ratios = w[1:] / w[:-1]
    torch.testing.assert_close(ratios, torch.full_like(ratios, 10000 ** (2 / dim)), rtol=1e-12, atol=0)


def test_sinusoidal_module_adds_the_table_and_broadcasts_over_the_batch() -> None:
    enc = SinusoidalPositionalEncoding(dim=8, max_positions=20)
    x = torch.zeros(3, 5, 8)
    out = enc(x)
    assert out.shape == (3, 5, 8)
    for b in range(3):
        torch.testing.assert_close(out[b], sinusoidal_table(5, 8))
    torch.testing.assert_close(enc(torch.zeros(2, 4, 8), offset=6)[1], sinusoidal_table(10, 8)[6:10])
    assert enc(x.bfloat16()).dtype == torch.bfloat16
    assert not any(True for _ in enc.parameters())  # nothing to train
    assert "table" not in enc.state_dict()  # rebuilt, not saved


def test_sinusoidal_errors_say_what_to_do() -> None:
    with pytest.raises(ValueError, match="dim must be even.*got dim=7"):
        sinusoidal_table(10, 7)
    with pytest.raises(ValueError, match="num_positions must be a positive int"):
        sinusoidal_table(0, 8)
    with pytest.raises(ValueError, match="base must be a finite number greater than 1"):
        sinusoidal_table(4, 8, base=1.0)
    enc = SinusoidalPositionalEncoding(dim=8, max_positions=10)
    with pytest.raises(ValueError, match=r"beyond the table of 10 positions.*max_positions >= 12"):
        enc(torch.zeros(1, 12, 8))
    with pytest.raises(ValueError, match=r"shape \(batch, time, 8\)"):
        enc(torch.zeros(1, 4, 6))


# --------------------------------------------------------------------------- learned


def test_learned_embedding_is_a_lookup_with_gradients() -> None:
    torch.manual_seed(0)
    emb = LearnedPositionalEmbedding(max_positions=16, dim=4)
    assert emb.weight.shape == (16, 4)
    assert 0.01 < float(emb.weight.detach().std()) < 0.04  # GPT-2-style std 0.02 initialisation
    positions = torch.tensor([[0, 3, 3], [15, 1, 2]])
    out = emb(positions)
    assert out.shape == (2, 3, 4)
    torch.testing.assert_close(out[1, 0], emb.weight[15])
    torch.testing.assert_close(emb(seq_len=5, offset=2), emb.weight[2:7])
    out.sum().backward()
    counts = torch.bincount(positions.flatten(), minlength=16).float()
    torch.testing.assert_close(emb.weight.grad, counts[:, None].expand(16, 4))  # each use adds 1


def test_learned_embedding_has_no_vector_beyond_its_length() -> None:
    emb = LearnedPositionalEmbedding(max_positions=8, dim=4)
    with pytest.raises(ValueError, match=r"position 8 is beyond the learned table of 8 positions \(positions 0..7\)"):
        emb(seq_len=9)
    with pytest.raises(ValueError, match="position 10 is beyond"):
        emb(torch.tensor([1, 10]))
    with pytest.raises(ValueError, match="must be >= 0"):
        emb(torch.tensor([-1]))
    with pytest.raises(TypeError, match="integer tensor"):
        emb(torch.tensor([1.0]))
    with pytest.raises(ValueError, match="either positions .* or seq_len"):
        emb()


# --------------------------------------------------------------------------- RoPE


@pytest.mark.parametrize("pairing", ["interleaved", "half"])
@pytest.mark.parametrize("base", [10000.0, 100.0])
def test_rope_matches_explicit_rotation_matrices_in_float64(pairing: str, base: float) -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(7, 12, dtype=torch.float64, generator=gen)
    positions = torch.tensor([0, 1, 2, 9, 50, 333, 1000])
    cos, sin = rope_cos_sin(positions, 12, base, dtype=torch.float64)
    out = apply_rope(x, cos, sin, pairing)
    assert out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), formula_rope(x.numpy(), positions.numpy(), base, pairing), rtol=0, atol=1e-12)


def test_rope_half_pairing_matches_llama_in_transformers() -> None:
    llama = pytest.importorskip("transformers.models.llama.modeling_llama")
    gen = torch.Generator().manual_seed(2)
    q = torch.randn(2, 3, 10, 16, generator=gen)
    k = torch.randn(2, 3, 10, 16, generator=gen)
    rope = RoPE(16, 32, pairing="half")
    cos, sin = rope_cos_sin(10, 16)
    q_ref, k_ref = llama.apply_rotary_pos_emb(q, k, torch.cat([cos, cos], -1)[None], torch.cat([sin, sin], -1)[None])
    torch.testing.assert_close(rope(q), q_ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(rope(k), k_ref, rtol=1e-6, atol=1e-6)


def test_rope_interleaved_pairing_matches_gptj_in_transformers() -> None:
    gptj = pytest.importorskip("transformers.models.gptj.modeling_gptj")
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 10, 3, 16, generator=gen)  # GPT-J keeps (batch, time, heads, head_dim)
    cos, sin = rope_cos_sin(10, 16)
    ref = gptj.apply_rotary_pos_emb(x, sin[None].expand(2, 10, 8), cos[None].expand(2, 10, 8))
    ours = RoPE(16, 32, pairing="interleaved")(x.transpose(1, 2)).transpose(1, 2)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(0, 2000),
    n=st.integers(0, 2000),
    shift=st.integers(0, 2000),
    pairing=st.sampled_from(["interleaved", "half"]),
    seed=st.integers(0, 2**16),
)
def test_rope_scores_depend_only_on_the_offset(m: int, n: int, shift: int, pairing: str, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    q, k = torch.randn(2, 1, 32, dtype=torch.float64, generator=gen)

    def score(a: int, b: int) -> float:
        cq, sq = rope_cos_sin(torch.tensor([a]), 32, dtype=torch.float64)
        ck, sk = rope_cos_sin(torch.tensor([b]), 32, dtype=torch.float64)
        return float((apply_rope(q, cq, sq, pairing) * apply_rope(k, ck, sk, pairing)).sum())

    assert abs(score(m, n) - score(m + shift, n + shift)) < 1e-9 * (1 + float(q.norm() * k.norm()))


def test_rope_keeps_lengths_and_position_zero_is_the_identity() -> None:
    x = torch.randn(2, 4, 9, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    cos, sin = rope_cos_sin(torch.arange(30, 39), 8, dtype=torch.float64)
    for pairing in ("interleaved", "half"):
        out = apply_rope(x, cos, sin, pairing)
        torch.testing.assert_close(out.norm(dim=-1), x.norm(dim=-1), rtol=1e-14, atol=0)
    rope = RoPE(8, 64)  # float32 tables: lengths kept to float32 accuracy
    torch.testing.assert_close(rope(x, offset=30).norm(dim=-1), x.norm(dim=-1), rtol=1e-6, atol=0)
    torch.testing.assert_close(rope(x, positions=torch.zeros(9, dtype=torch.long)), x, rtol=0, atol=0)


def test_the_two_pairings_are_equal_up_to_a_fixed_permutation() -> None:
    perm = pairing_permutation(8)
    assert perm.tolist() == [0, 2, 4, 6, 1, 3, 5, 7]
    x = torch.randn(3, 11, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    cos, sin = rope_cos_sin(torch.arange(5, 16), 8, dtype=torch.float64)
    inter = apply_rope(x, cos, sin, "interleaved")
    half = apply_rope(x[..., perm], cos, sin, "half")
    torch.testing.assert_close(half, inter[..., perm], rtol=0, atol=1e-14)
    # and they are not the same function: a pairing mix-up is a real bug
    assert (apply_rope(x, cos, sin, "half") - inter).abs().max() > 0.1


def test_rope_positions_offset_and_per_sequence_rows_agree() -> None:
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(2, 3, 5, 16, generator=gen)
    rope = RoPE(16, 100)
    torch.testing.assert_close(rope(x, offset=7), rope(x, positions=torch.arange(7, 12)), rtol=0, atol=0)
    rows = torch.tensor([[0, 1, 2, 3, 4], [40, 41, 42, 43, 44]])
    out = rope(x, positions=rows)
    torch.testing.assert_close(out[0], rope(x[:1], offset=0)[0], rtol=0, atol=0)
    torch.testing.assert_close(out[1], rope(x[1:], offset=40)[0], rtol=0, atol=0)
    # a KV cache rotates one new token at a time: same result as the whole sequence at once
    whole = rope(x)
    steps = torch.cat([rope(x[:, :, t : t + 1], offset=t) for t in range(5)], dim=2)
    torch.testing.assert_close(steps, whole, rtol=0, atol=0)
    # 3-D and 2-D inputs work too (..., time, head_dim)
    torch.testing.assert_close(rope(x[0]), whole[0], rtol=0, atol=0)
    torch.testing.assert_close(rope(x[0, 0]), whole[0, 0], rtol=0, atol=0)


@pytest.mark.parametrize("pairing", ["interleaved", "half"])
def test_rope_dtypes_float32_and_bfloat16(pairing: str) -> None:
    gen = torch.Generator().manual_seed(7)
    x64 = torch.randn(2, 4, 64, 32, dtype=torch.float64, generator=gen)
    rope = RoPE(32, 4096, pairing=pairing)
    ref = rope(x64, offset=4000)  # float64 in, float64 arithmetic out
    assert ref.dtype == torch.float64
    cos64, sin64 = rope_cos_sin(torch.arange(4000, 4064), 32, dtype=torch.float64)
    torch.testing.assert_close(ref, apply_rope(x64, cos64, sin64, pairing), rtol=0, atol=1e-6)  # float32 tables
    out32 = rope(x64.float(), offset=4000)
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), ref, rtol=0, atol=1e-5)
    x16 = x64.bfloat16()
    out16 = rope(x16, offset=4000)
    assert out16.dtype == torch.bfloat16
    # only one rounding to bfloat16 at the end: the error is that of rounding the exact result
    exact = rope(x16.double(), offset=4000)
    assert ((out16.double() - exact).abs() <= exact.abs() * 2.0**-8 + 1e-30).all()


def test_rope_caches_float32_tables_as_non_persistent_buffers() -> None:
    rope = RoPE(16, 50)
    assert rope.cos.shape == rope.sin.shape == (50, 8) and rope.cos.dtype == torch.float32
    assert dict(rope.state_dict()) == {}
    assert not list(rope.parameters())
    cos, sin = rope_cos_sin(50, 16)
    assert torch.equal(rope.cos, cos) and torch.equal(rope.sin, sin)


def test_rope_tables_stay_float32_when_the_model_is_cast_to_bfloat16() -> None:
    model = torch.nn.ModuleDict({"proj": torch.nn.Linear(16, 16), "rope": RoPE(16, 8192)})
    x = torch.randn(1, 2, 8, 16, generator=torch.Generator().manual_seed(8)).bfloat16()
    before = model["rope"](x, offset=8000)
    model.to(torch.bfloat16)
    assert model["proj"].weight.dtype == torch.bfloat16
    assert model["rope"].cos.dtype == torch.float32 and model["rope"].sin.dtype == torch.float32
    assert torch.equal(model["rope"](x, offset=8000), before)


def test_rope_errors_say_what_to_do() -> None:
    with pytest.raises(ValueError, match="head_dim must be even.*got head_dim=7"):
        RoPE(7, 10)
    with pytest.raises(ValueError, match="pairing must be one of"):
        RoPE(8, 10, pairing="pairs")
    rope = RoPE(8, 10)
    with pytest.raises(ValueError, match=r"position 11 is beyond the RoPE table of 10 positions.*max_positions >= 12"):
        rope(torch.zeros(1, 1, 4, 8), offset=8)
    with pytest.raises(ValueError, match="last axis must be head_dim=8"):
        rope(torch.zeros(1, 1, 4, 6))
    with pytest.raises(ValueError, match="one position per time step"):
        rope(torch.zeros(1, 1, 4, 8), positions=torch.arange(3))
    with pytest.raises(TypeError, match="integer tensor"):
        rope(torch.zeros(1, 1, 4, 8), positions=torch.arange(4.0))
    with pytest.raises(ValueError, match="not both"):
        rope(torch.zeros(1, 1, 4, 8), positions=torch.arange(4), offset=2)
    with pytest.raises(ValueError, match=r"need x of shape \(3, heads, 4, 8\)"):
        rope(torch.zeros(2, 1, 4, 8), positions=torch.zeros(3, 4, dtype=torch.long))
    cos, sin = rope_cos_sin(4, 8)
    with pytest.raises(ValueError, match="head_dim/2 = 4 entries"):
        apply_rope(torch.zeros(4, 8), cos[:, :3], sin[:, :3])
    with pytest.raises(ValueError, match=r"head_dim \(the last axis of x\) must be even"):
        apply_rope(torch.zeros(4, 9), cos, sin)
    with pytest.raises(ValueError, match="do not broadcast"):
        apply_rope(torch.zeros(5, 8), cos, sin)


# --------------------------------------------------------------------------- ALiBi


def test_alibi_slopes_follow_the_paper() -> None:
    torch.testing.assert_close(alibi_slopes(8), torch.tensor([2.0**-k for k in range(1, 9)]))
    assert alibi_slopes(1).tolist() == [2.0**-8]
    slopes6 = alibi_slopes(6)  # 4 heads' slopes, then every other one of 8 heads'
    torch.testing.assert_close(slopes6, torch.tensor([2.0**-2, 2.0**-4, 2.0**-6, 2.0**-8, 2.0**-1, 2.0**-3]))


def test_alibi_slopes_match_bloom_in_transformers() -> None:
    bloom = pytest.importorskip("transformers.models.bloom.modeling_bloom")
    for heads in (1, 4, 12, 16):
        # bloom's alibi for a mask of ones at key position j is slope * j: read the slopes at j = 1
        alibi = bloom.build_alibi_tensor(torch.ones(1, 2), heads, torch.float32)  # (heads, 1, 2)
        torch.testing.assert_close(alibi[:, 0, 1], alibi_slopes(heads))


def test_alibi_bias_is_minus_slope_times_distance() -> None:
    bias = alibi_bias(4, 6)
    slopes = alibi_slopes(4)
    assert bias.shape == (4, 6, 6)
    for h in range(4):
        for i in range(6):
            for j in range(6):
                expected = -float(slopes[h]) * (i - j) if j <= i else 0.0
                assert float(bias[h, i, j]) == pytest.approx(expected)
    assert not torch.signbit(bias[:, 0, 0]).any()  # no -0.0 in printed tables


# --------------------------------------------------------------------------- plots and widget


def test_plots_return_figures_with_labelled_axes() -> None:
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    from course.plots.positions import pe_heatmap, pe_heatmaps, rope_arrows, similarity_vs_offset

    figs = [
        pe_heatmap(sinusoidal_table(20, 8)),
        pe_heatmaps({"a": np.zeros((3, 4)), "b": np.ones((3, 4))}),
        similarity_vs_offset(np.arange(5), {"sinusoidal": np.ones(5), "RoPE": np.zeros(5)}),
        rope_arrows([1.0, 0.0], 0.3, range(6)),
    ]
    for fig in figs:
        assert isinstance(fig, Figure)
        assert all(ax.get_xlabel() for ax in fig.axes if ax.get_label() != "<colorbar>")
        plt.close(fig)
    with pytest.raises(ValueError, match="2 coordinates"):
        rope_arrows([1.0, 0.0, 0.0], 0.3, range(3))
    with pytest.raises(ValueError, match="offsets have shape"):
        similarity_vs_offset(np.arange(5), {"x": np.ones(4)})


def test_widget_computation_without_a_browser() -> None:
    import matplotlib.pyplot as plt

    from course.widgets.positions import explorer_data, explorer_figure, positions_explorer

    data = explorer_data(dim=16, base=100.0, num_positions=30)
    assert data.table.shape == (30, 16)
    np.testing.assert_allclose(data.table, formula_table(30, 16, 100.0), atol=1e-12)
    assert data.similarity[0] == pytest.approx(1.0)
    np.testing.assert_allclose(data.similarity, np.cos(np.outer(np.arange(30), 100.0 ** (-np.arange(0, 16, 2) / 16))).mean(1), atol=1e-12)
    assert data.wavelengths[0] == pytest.approx(2 * math.pi)
    longest = 2 * math.pi * 100.0 ** (14 / 16)  # the last pair, i = 7
    assert data.summary == f"dim=16, base=100: 8 frequencies, wavelengths from 6.28 to {longest:,.0f} positions"
    plt.close(explorer_figure(8, 1000.0, 20))
    box = positions_explorer(dim=8, base=100.0, num_positions=10)
    dim_slider, base_slider = box.children[0].children
    assert (dim_slider.value, base_slider.value) == (8, 100.0)
    dim_slider.value = 12  # redraws without error
    plt.close("all")


# --------------------------------------------------------------------------- exercise checks diagnose classic mistakes


def _failure(check, fn) -> str:
    from course.checks import ExerciseFailed

    with pytest.raises(ExerciseFailed) as info:
        check(fn)
    return str(info.value)


def test_exercise_checks_pass_the_solutions_and_match_the_module(capsys: pytest.CaptureFixture[str]) -> None:
    from course.checks.ch02 import check_rope_rotate, check_shift_matrix, check_sinusoidal_pe
    from solutions.ch02_embeddings_and_positions import rope_rotate, shift_matrix, sinusoidal_pe

    check_sinusoidal_pe(sinusoidal_pe)
    check_rope_rotate(rope_rotate)
    check_shift_matrix(shift_matrix)
    assert capsys.readouterr().out.count("all checks passed") == 3
    torch.testing.assert_close(sinusoidal_pe(40, 12), sinusoidal_table(40, 12, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(shift_matrix(9, 12), sinusoidal_shift_matrix(9, 12), rtol=0, atol=1e-12)
    x = torch.randn(5, 12, dtype=torch.float64)
    cos, sin = rope_cos_sin(torch.arange(3, 8), 12, dtype=torch.float64)
    torch.testing.assert_close(rope_rotate(x, torch.arange(3, 8)), apply_rope(x, cos, sin, "interleaved"), rtol=0, atol=1e-12)


def test_sinusoidal_check_names_the_classic_mistakes() -> None:
    from course.checks.ch02 import check_sinusoidal_pe
    from solutions.ch02_embeddings_and_positions import sinusoidal_pe

    def seed(p, d, base=10000.0):
        return torch.sin(torch.arange(p)[:, None] / 10000.0).repeat(1, d)

    def swapped(p, d, base=10000.0):
        return sinusoidal_pe(p, d, base)[:, [j ^ 1 for j in range(d)]]

    def halves(p, d, base=10000.0):
        t = sinusoidal_pe(p, d, base)
        return torch.cat([t[:, 0::2], t[:, 1::2]], dim=1)

    def transposed(p, d, base=10000.0):
        return sinusoidal_pe(p, d, base).T

    def fixed_base(p, d, base=10000.0):
        return sinusoidal_pe(p, d)

    assert "seed text's formula" in _failure(check_sinusoidal_pe, seed)
    assert "swapped" in _failure(check_sinusoidal_pe, swapped)
    assert "first half" in _failure(check_sinusoidal_pe, halves)
    assert "transposed" in _failure(check_sinusoidal_pe, transposed)
    assert "ignores its base" in _failure(check_sinusoidal_pe, fixed_base)


def test_rope_and_shift_checks_name_the_classic_mistakes() -> None:
    from course.checks.ch02 import check_rope_rotate, check_shift_matrix
    from solutions.ch02_embeddings_and_positions import rope_rotate, shift_matrix

    def backwards(x, positions, base=10000.0):
        return rope_rotate(x, -positions, base)

    def split_halves(x, positions, base=10000.0):
        perm = pairing_permutation(x.shape[-1])
        return rope_rotate(x[..., torch.argsort(perm)], positions, base)[..., perm]

    def ignores_positions(x, positions, base=10000.0):
        return rope_rotate(x, torch.arange(x.shape[-2]), base)

    def in_place(x, positions, base=10000.0):
        x.mul_(1.0)
        x[..., 0] += 1.0
        return x

    assert "wrong way round" in _failure(check_rope_rotate, backwards)
    assert "split-halves" in _failure(check_rope_rotate, split_halves)
    assert "instead of the positions argument" in _failure(check_rope_rotate, ignores_positions)
    assert "in place" in _failure(check_rope_rotate, in_place)
    assert "back by 3 instead of forward" in _failure(check_shift_matrix, lambda k, d, base=10000.0: shift_matrix(k, d, base).T)
    assert "outside the 2x2 blocks" in _failure(check_shift_matrix, lambda k, d, base=10000.0: shift_matrix(k, d, base) + 0.1)


def test_sinusoidal_module_takes_explicit_positions() -> None:
    pe = SinusoidalPositionalEncoding(8, 20)
    x = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(pe(x, positions=torch.arange(3, 8)), pe(x, offset=3))  # same rows, bit for bit
    rows = torch.stack([torch.arange(0, 5), torch.arange(10, 15)])  # one start per sequence
    out = pe(x, positions=rows)
    assert torch.equal(out[1], pe(x[1:], offset=10)[0]) and torch.equal(out[0], pe(x[:1])[0])
    with pytest.raises(ValueError, match="not both"):
        pe(x, 2, positions=torch.arange(5))
    with pytest.raises(ValueError, match="one position per time step"):
        pe(x, positions=torch.arange(4))
    with pytest.raises(ValueError, match=r"position 20 is beyond the table of 20 positions"):
        pe(x, positions=torch.arange(16, 21))
