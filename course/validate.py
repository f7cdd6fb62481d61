"""Argument checks shared by the reference modules (chapters 02-04 and 08).

The reference code that chapters ask learners to read (`attention_numpy`,
`positional`, `model`) checks its inputs at the edges and says what to do when
they are wrong. The checks that recur are written once here, so that a
function's body shows the math and one line says what it checks:

* `positive_int`, `non_negative_int`, `even_int`: counts, sizes and dimensions
  (``bool`` is refused although it is an ``int``: ``True`` is never a size);
* `one_of`: a setting chosen from a fixed list (``GPTConfig.mlp``, a pairing, ...);
* `fraction`: a probability in [0, 1) (dropout);
* `as_numpy` / `as_float_array`: "an array or a torch tensor, as NumPy", the
  one conversion every NumPy-side function needs (a tensor on any device);
* `settings_with`: a settings dataclass with some fields overridden by keyword,
  unknown keywords refused by name (sampling and chat settings).

Every check returns the checked value, so ``n = positive_int(n, "n")`` reads
as an assignment. Messages name the argument, what it must be and what it got.
"""

from __future__ import annotations

import math
from dataclasses import fields, replace
from typing import Any, Collection, Mapping, TypeVar

import numpy as np

T = TypeVar("T")

__all__ = [
    "as_float_array", "as_numpy", "even_int", "finite_above", "fraction", "non_negative_int", "one_of", "positive_int",
    "settings_with",
]


def _is_int(value: object, numpy_ints: bool) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, (int, np.integer)) if numpy_ints else isinstance(value, int)


def positive_int(value: Any, name: str, *, hint: str = "", numpy_ints: bool = False, sep: str = ",") -> int:
    """``value`` if it is an int > 0, else ValueError "<name> must be a positive int (<hint>)<sep> got <value>."

    ``numpy_ints=True`` also accepts NumPy integers (NumPy-side code, where shapes
    come out as ``np.int64``); configs that are saved as JSON keep plain ints only.
    """
    if not _is_int(value, numpy_ints) or value <= 0:
        detail = f" ({hint})" if hint else ""
        raise ValueError(f"{name} must be a positive int{detail}{sep} got {value!r}.")
    return int(value)


def non_negative_int(value: Any, name: str) -> int:
    """``value`` if it is an int >= 0 (an offset, a count that may be zero), else ValueError."""
    if not _is_int(value, True) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}.")
    return int(value)


def even_int(value: Any, name: str, why: str) -> int:
    """``value`` if it is a positive even int; ``why`` says what needs it even, and the error suggests neighbours."""
    value = positive_int(value, name)
    if value % 2:
        raise ValueError(f"{name} must be even: {why}, got {name}={value}. Use {value - 1} or {value + 1}.")
    return value


def one_of(value: T, allowed: Collection[Any], name: str) -> T:
    """``value`` if it is among ``allowed``, else ValueError listing the choices."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}.")
    return value


def fraction(value: Any, name: str) -> float:
    """``value`` if it is a number in [0, 1) (a dropout probability), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}.")
    return value


def finite_above(value: Any, name: str, low: float, hint: str = "") -> float:
    """``value`` as a float if it is a finite number greater than ``low``, else ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > low or not math.isfinite(value):
        detail = f" ({hint})" if hint else ""
        raise ValueError(f"{name} must be a finite number greater than {low:g}{detail}, got {value!r}.")
    return float(value)


def as_numpy(x: Any) -> np.ndarray:
    """An array-like or a torch tensor (any device, detached) as a NumPy array, dtype kept.

    torch is not imported: a tensor is recognised by its ``detach`` method.
    bfloat16 has no NumPy twin and becomes float32.
    """
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16":
            x = x.float()
        x = x.numpy()
    return np.asarray(x)


def as_float_array(x: Any, name: str) -> np.ndarray:
    """``x`` (array-like or tensor) as a floating-point array: float32/float64 kept, anything else float64.

    Refuses what cannot be a number (strings, objects) and complex values, naming ``name``.
    """
    a = as_numpy(x)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise TypeError(f"`{name}` must be an array of numbers; got an array of dtype {a.dtype}.")
    if np.issubdtype(a.dtype, np.complexfloating):
        raise TypeError(f"`{name}` must be real; got dtype {a.dtype}.")
    if not np.issubdtype(a.dtype, np.floating) or a.dtype == np.float16:
        a = a.astype(np.float64)
    return a


def dataclass_from_dict(cls: type[T], d: Mapping[str, Any]) -> T:
    """``cls(**d)`` for a dataclass read back from a file, refusing unknown keys by name.

    Keys it lacks take their defaults (fields added after the file was written).
    """
    unknown = set(d) - {f.name for f in fields(cls)}  # type: ignore[arg-type]
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
    return cls(**dict(d))


def settings_with(cls: type[T], settings: T | None, overrides: Mapping[str, Any], what: str) -> T:
    """``settings`` (default: ``cls()``) with ``overrides`` replacing its fields: a new, validated instance.

    An unknown keyword is refused with the list of the settings there are; ``what`` names them in the
    message ("sampling", "chat").
    """
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise TypeError(f"unknown {what} setting {unknown[0]!r}; the settings are: {', '.join(names)}.")
    if settings is None:
        return cls(**overrides)
    if not isinstance(settings, cls):
        raise TypeError(f"the {what} settings must be a {cls.__name__} (or None), got {type(settings).__name__}.")
    return replace(settings, **overrides) if overrides else settings
