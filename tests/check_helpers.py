"""Helpers shared by the tests of the chapters' exercise checks: a blank stub, and a check that must fail with words."""

from __future__ import annotations

import pytest

from course.checks import ExerciseFailed


def stub(*args):
    """The blank stub of an exercise: it raises NotImplementedError, as the student edition's cells do."""
    raise NotImplementedError


def fails(check, fn, *words):
    """Assert that ``check(fn)`` fails and that its message contains each of ``words``; return the message."""
    with pytest.raises(ExerciseFailed) as err:
        check(fn)
    message = str(err.value)
    for w in words:
        assert w in message, message
    return message
