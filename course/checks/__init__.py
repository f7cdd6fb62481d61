"""Exercise checks: the machinery every chapter's checks are built from (chapter 00 shows it).

A check is a function decorated with `@exercise_check("name")` that takes the
learner's function, tries it on inputs it makes itself, and either prints one
line saying it passed or raises `ExerciseFailed` with a message in plain words:
what is wrong, and what to look at. In a notebook the failure shows as that
message alone, not a long traceback.

Each chapter keeps its checks in ``course/checks/chNN.py``. Helpers here:

* `call(fn, *args)`: call the learner's code; its exceptions become a clear failure.
* `expect(condition, message)`: fail with ``message`` unless ``condition``.
* `expect_close(actual, expected, what)`: shape, dtype-free numerical comparison
  that says where and by how much two arrays differ.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

import numpy as np

F = TypeVar("F", bound=Callable[..., Any])


class ExerciseFailed(AssertionError):
    """An exercise check failed; the message says what is wrong and what to look at."""

    def _render_traceback_(self) -> list[str]:  # IPython shows this instead of a traceback
        return [f"\u274c Not yet: {self}"]


class NotImplementedYet(ExerciseFailed):
    """The blank stub was checked before it was filled in."""


def expect(condition: object, message: str) -> None:
    if not condition:
        raise ExerciseFailed(message)


def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call the learner's ``fn``; turn its exceptions into failures a learner can act on."""
    name = getattr(fn, "__name__", "your function")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise NotImplementedYet(
            f"`{name}` is still the blank stub (it raises NotImplementedError). "
            "Replace the `raise NotImplementedError` line with your code, run that cell, then run the check again."
        ) from None
    except ExerciseFailed:
        raise
    except Exception as err:  # the learner's bug, reported in words
        raise ExerciseFailed(f"`{name}` raised {type(err).__name__}: {err}") from err


def _as_array(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _number(x: Any) -> str:
    """A scalar as plain text: ``0.384``, not ``np.float64(0.384)``."""
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        return f"{float(x):.6g}"
    if isinstance(x, (complex, np.complexfloating)):
        return f"{complex(x):.6g}"
    return str(x)


def expect_close(
    actual: Any, expected: Any, what: str, *, rtol: float = 1e-6, atol: float = 1e-8
) -> None:
    """Fail unless ``actual`` matches ``expected`` in shape and values, saying how they differ.

    ``what`` names the compared thing ("your attention weights", "softmax([1, 2, 3])"); the messages
    put it before a colon, so that they read right whether it is singular or plural.
    """
    a, e = _as_array(actual), _as_array(expected)
    expect(a.shape == e.shape, f"{what}: shape {a.shape}, expected {e.shape}.")
    if a.size == 0:
        return
    if np.issubdtype(a.dtype, np.number) and np.isfinite(e).all():
        bad = int((~np.isfinite(a)).sum())
        expect(bad == 0, f"{what}: nan or inf in {bad} entries: an overflow, or a division by zero?")
    if not np.allclose(a, e, rtol=rtol, atol=atol, equal_nan=True):
        diff = np.abs(a.astype(np.float64) - e.astype(np.float64))
        diff = np.where(np.isnan(diff), np.inf, diff)
        where = np.unravel_index(int(np.argmax(diff)), diff.shape)
        raise ExerciseFailed(
            f"{what}: the values differ at index {tuple(int(i) for i in where)}: "
            f"you have {_number(a[where])}, expected {_number(e[where])} "
            f"(largest difference {float(diff[where]):.3g})."
        )


def exercise_check(name: str) -> Callable[[F], F]:
    """Decorate a check: it prints a one-line success, or raises `ExerciseFailed`."""

    def decorate(check: F) -> F:
        @functools.wraps(check)
        def run(*args: Any, **kwargs: Any) -> None:
            check(*args, **kwargs)
            print(f"\u2705 {name}: all checks passed.")

        return run  # type: ignore[return-value]

    return decorate


__all__ = [
    "ExerciseFailed",
    "NotImplementedYet",
    "call",
    "exercise_check",
    "expect",
    "expect_close",
]
