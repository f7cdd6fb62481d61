"""Blank stubs and the reference solutions behind them (the student edition; chapter 00 shows the convention).

A chapter often uses an exercise's function after the exercise: chapter 01
trains BPE with your `count_pairs` and `merge`, chapter 07 builds a LoRA model
with your `lora_forward`. In the student edition (`make student`), each check
cell is followed by a cell that calls `reference_if_blank`:

    count_pairs = reference_if_blank(count_pairs, "ch01_tokenization")

If your function is still the blank stub (its whole body is
``raise NotImplementedError``), it says so and hands back the reference
solution, so that Run All goes on to the end of the chapter; once you have
written the function, it hands back yours, unchanged.

Where the reference comes from: the teacher edition (the repository) imports
it from the ``solutions`` package. The student edition has no ``solutions``
package; `tools/make_student.py` stores the solution modules compressed in
``course/checks/_reference.py``, so they are not in plain sight. That is a
convenience, not a secret: anyone can decompress them.
"""

from __future__ import annotations

import base64
import importlib
import re
import types
import zlib
from typing import Any, Callable

_MODULE_NAME = re.compile(r"ch\d\d_[a-z0-9_]+")
_loaded: dict[str, types.ModuleType] = {}


def is_blank_stub(fn: object) -> bool:
    """True if ``fn`` is a function whose whole body is ``raise NotImplementedError``.

    A docstring or comments do not count as code; anything else the body does
    (even a partial attempt that still raises somewhere) makes it not blank.
    """
    code = getattr(fn, "__code__", None)
    if code is None:
        return False
    return tuple(code.co_names) == ("NotImplementedError",) and not any(
        isinstance(c, types.CodeType) for c in code.co_consts
    )


def _solutions_module(module: str) -> types.ModuleType:
    if not _MODULE_NAME.fullmatch(module):
        raise ValueError(f"module must name a chapter's solutions, like 'ch01_tokenization', got {module!r}.")
    if module in _loaded:
        return _loaded[module]
    try:  # the student edition: compressed sources written by tools/make_student.py
        from . import _reference  # type: ignore[attr-defined]
    except ImportError:
        _reference = None
    if _reference is not None:
        if module not in _reference.SOURCES:
            raise LookupError(f"this edition has no reference solutions for {module}.")
        source = zlib.decompress(base64.b64decode(_reference.SOURCES[module])).decode("utf-8")
        mod = types.ModuleType(f"course.checks._reference_{module}")
        mod.__file__ = f"<reference solutions of {module}>"
        exec(compile(source, mod.__file__, "exec"), mod.__dict__)  # noqa: S102 - the course's own solution code
    else:  # the teacher edition: the solutions package
        try:
            mod = importlib.import_module(f"solutions.{module}")
        except ImportError as err:
            raise LookupError(
                f"no reference solutions for {module}: neither course/checks/_reference.py (student edition) "
                f"nor the solutions package (teacher edition) is here."
            ) from err
    _loaded[module] = mod
    return mod


def reference_solution(name: str, module: str) -> Callable[..., Any]:
    """The reference solution ``name`` of the chapter ``module`` (e.g. ``"ch01_tokenization"``)."""
    mod = _solutions_module(module)
    if not hasattr(mod, name):
        raise LookupError(f"{module} has no reference solution called {name!r}.")
    return getattr(mod, name)


def reference_if_blank(fn: Callable[..., Any], module: str) -> Callable[..., Any]:
    """``fn`` itself, or the reference solution of the same name if ``fn`` is still the blank stub (said visibly)."""
    if not is_blank_stub(fn):
        return fn
    name = fn.__name__
    ref = reference_solution(name, module)
    print(f"\u2139\ufe0f your `{name}` is not written yet: using the reference solution, so that the rest of the chapter runs.")
    return ref


__all__ = ["is_blank_stub", "reference_if_blank", "reference_solution"]
