"""course.validate: the shared argument checks, and the messages they give."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course.validate import (
    as_float_array,
    as_numpy,
    even_int,
    finite_above,
    fraction,
    non_negative_int,
    one_of,
    positive_int,
)


def test_positive_int_accepts_ints_and_refuses_bools_floats_and_zero():
    assert positive_int(3, "n") == 3
    for bad in (0, -1, 2.0, True, "3", None):
        with pytest.raises(ValueError, match=rf"n must be a positive int, got {bad!r}\."):
            positive_int(bad, "n")
    with pytest.raises(ValueError):
        positive_int(np.int64(3), "n")  # configs saved as JSON keep plain ints
    value = positive_int(np.int64(3), "n", numpy_ints=True)
    assert value == 3 and type(value) is int
    with pytest.raises(ValueError, match=r"^`t` must be a positive int \(a number of positions\); got 0\.$"):
        positive_int(0, "`t`", hint="a number of positions", sep=";")


def test_other_checks_return_the_value_and_name_the_argument():
    assert non_negative_int(0, "offset") == 0
    with pytest.raises(ValueError, match="offset must be a non-negative int, got -1"):
        non_negative_int(-1, "offset")
    assert even_int(8, "dim", "why") == 8
    with pytest.raises(ValueError, match=r"dim must be even: pairs, got dim=7\. Use 6 or 8\."):
        even_int(7, "dim", "pairs")
    assert one_of("a", ("a", "b"), "mode") == "a"
    with pytest.raises(ValueError, match=r"mode must be one of \('a', 'b'\), got 'c'"):
        one_of("c", ("a", "b"), "mode")
    assert fraction(0.0, "p") == 0.0
    for bad in (1.0, -0.1, True):
        with pytest.raises(ValueError, match=r"p must be in \[0, 1\)"):
            fraction(bad, "p")
    assert finite_above(2, "base", 1.0) == 2.0
    for bad in (1.0, float("inf"), float("nan"), "10"):
        with pytest.raises(ValueError, match="base must be a finite number greater than 1"):
            finite_above(bad, "base", 1.0)


def test_as_numpy_and_as_float_array_take_tensors_and_keep_float_dtypes():
    t = torch.arange(6, dtype=torch.float32).reshape(2, 3).requires_grad_()
    a = as_numpy(t)
    assert a.dtype == np.float32 and np.array_equal(a, np.arange(6).reshape(2, 3))
    assert as_numpy(torch.ones(2, dtype=torch.bfloat16)).dtype == np.float32  # bfloat16 has no NumPy twin
    assert as_float_array([1, 2], "x").dtype == np.float64
    assert as_float_array(np.ones(2, np.float16), "x").dtype == np.float64
    assert as_float_array(np.ones(2, np.float32), "x").dtype == np.float32
    with pytest.raises(TypeError, match="`x` must be an array of numbers"):
        as_float_array(["a"], "x")
    with pytest.raises(TypeError, match="`x` must be real"):
        as_float_array(np.ones(2, complex), "x")


def test_entry_points_refuse_a_bool_where_a_count_belongs():
    # True is an int to Python; as a layer count or a world size it is always a mistake.
    from course.memory import gpt2_parameter_count, sharded_state_bytes, training_state_bytes
    from course.model import GPTConfig

    with pytest.raises(ValueError, match="n_layer must be a positive int, got True"):
        gpt2_parameter_count(True, 768)
    with pytest.raises(ValueError, match="world_size must be a positive int, got True"):
        sharded_state_bytes(10, True, 1)
    with pytest.raises(ValueError, match="n_params must be a non-negative int, got -1"):
        training_state_bytes(-1)
    with pytest.raises(ValueError, match="GPTConfig.n_layer must be a positive int, got True"):
        GPTConfig(n_layer=True)
    assert gpt2_parameter_count(12, 768) == 124_439_808


def test_settings_with_overrides_fields_and_refuses_unknown_ones_by_name():
    from dataclasses import dataclass

    from course.validate import settings_with

    @dataclass(frozen=True)
    class Knobs:
        temperature: float = 1.0
        top_k: int | None = None

    assert settings_with(Knobs, None, {}, "demo") == Knobs()
    base = Knobs(temperature=0.5)
    assert settings_with(Knobs, base, {}, "demo") is base  # nothing to change: the same object
    assert settings_with(Knobs, base, {"top_k": 5}, "demo") == Knobs(0.5, 5)
    with pytest.raises(TypeError, match="unknown demo setting 'temprature'; the settings are: temperature, top_k"):
        settings_with(Knobs, None, {"temprature": 0.5}, "demo")
    with pytest.raises(TypeError, match="must be a Knobs .or None., got dict"):
        settings_with(Knobs, {"temperature": 0.5}, {}, "demo")
