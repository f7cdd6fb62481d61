"""Printing verified facts instead of machine-dependent digits (every chapter).

Two numbers that agree "up to rounding" agree to 1e-16 on one CPU and to 4e-16
on the next: printing the raw difference makes a chapter's output depend on the
machine. The course prints what was *verified* instead:

* `agree` checks that two arrays (NumPy or PyTorch) differ by less than a
  tolerance fixed in the code and prints that bound ("agree (largest difference
  below 1e-12)"); it fails loudly when they do not. Never print a bound derived
  from the measured value (the next power of ten above it): it moves with the
  machine too.
* `within` checks that the outcome of a training run lies in the band measured
  over several seeds and machines, and says where that band comes from. Bands are
  measured on Tiny Shakespeare: with the offline fallback corpus (see
  `course.data`) they do not apply, so `within` reports the value and carries on;
  nor in a chapter's quick pass (``COURSE_QUICK=1``), whose runs are shorter than
  the ones the bands were measured on.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np


def _as_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, on any device, in any dtype (bfloat16 has no NumPy twin)
        x = x.detach().cpu()
        if x.is_floating_point():
            x = x.double()
        x = x.numpy()
    return np.asarray(x)


def largest_difference(a: Any, b: Any) -> float:
    """max |a - b| over all entries (arrays or tensors of the same shape)."""
    a, b = _as_numpy(a), _as_numpy(b)
    if a.shape != b.shape:
        raise ValueError(f"cannot compare shapes {a.shape} and {b.shape}: they must be equal.")
    if a.size == 0:
        return 0.0
    wide = np.complex128 if np.iscomplexobj(a) or np.iscomplexobj(b) else np.float64
    return float(np.max(np.abs(a.astype(wide) - b.astype(wide))))


def agree(name: str, ours: Any, reference: Any, tol: float = 1e-12, *, relative: bool = False,
          quiet: bool = False) -> float:
    """Assert that ``ours`` and ``reference`` differ by less than ``tol`` everywhere and print the bound.

    Prints ``"<name>: agree (largest difference below <tol>)"``, the same text on every
    machine: the tolerance is fixed in the code, never derived from the measured
    difference. With ``relative=True`` the difference is divided by the largest
    entry of ``reference`` ("largest relative difference"). Returns the measured
    difference for further checks (do not print it: its digits are the machine's).
    """
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol!r}.")
    diff = largest_difference(ours, reference)
    kind = "difference"
    if relative:
        scale = float(np.max(np.abs(_as_numpy(reference)))) if _as_numpy(reference).size else 0.0
        diff = diff / scale if scale > 0 else diff
        kind = "relative difference"
    if not diff < tol:  # also catches nan
        raise AssertionError(f"{name}: largest {kind} {diff:.3g} is not below {tol:g}")
    if not quiet:
        print(f"{name}: agree (largest {kind} below {tol:g})")
    return diff


def _using_fallback_corpus() -> bool:
    from . import data

    return data.fallback_in_use()


def _quick_pass() -> bool:
    """True when the chapters run their quick pass (``COURSE_QUICK=1``): shorter runs, rougher numbers."""
    return os.environ.get("COURSE_QUICK") == "1"


def within(value: float, low: float, high: float, what: str, *, measured: str = "") -> float:
    """Assert that a machine-dependent outcome lies in ``[low, high]``.

    ``measured`` says where the band comes from (e.g. "5 seeds x 2 kernel
    configurations: 1.608-1.631"). The band does not apply, and the value is
    printed with a notice instead of being checked, when the fallback corpus is in
    use (the band was measured on Tiny Shakespeare) or in a chapter's quick pass
    (``COURSE_QUICK=1``: the band was measured on the full runs).
    """
    if not low <= high:
        raise ValueError(f"the band [{low}, {high}] is empty.")
    v = float(value)
    if _using_fallback_corpus():
        print(f"(fallback corpus: {what} = {v:.4g}; the band [{low:g}, {high:g}] was measured on Tiny Shakespeare)")
        return v
    if _quick_pass():
        print(f"(quick pass: {what} = {v:.4g}; the band [{low:g}, {high:g}] was measured on the full runs)")
        return v
    if not low <= v <= high:
        source = f" (band from {measured})" if measured else ""
        raise AssertionError(f"{what} = {v:.6g} is outside the expected band [{low:g}, {high:g}]{source}")
    return v


__all__ = ["agree", "largest_difference", "within"]
