"""`make test`: the whole suite, in two phases, so that two CPU cores are both busy where that is safe.

    python tools/run_tests.py [pytest arguments]     # what `make test PYTEST_ARGS=...` runs

1. **tests/** (the unit tests and the student edition's Run All, tests/test_run_all.py)
   in parallel pytest-xdist workers, one per core up to 4, a test per worker at a
   time (``--dist worksteal``: an idle worker takes over tests queued for a busy one),
   each worker and what it starts with one thread (tests/conftest.py).
   None of these compares a printed number with a stored one, so sharing the CPU
   changes no result, only how long each test takes. The student edition's chapters,
   the longest items, are handed out first (tests/conftest.py orders them so).
2. **notebooks/** (every chapter re-executed under nbval) alone, one chapter after
   another. These compare outputs with the committed notebooks and check their own
   wall-clock budgets, so nothing else runs beside them.

Arguments go to both phases. With a path among them (``make test
PYTEST_ARGS=tests/test_model.py``), pytest runs once, on what was asked, as it
would by itself. ``COURSE_TEST_WORKERS=0`` runs phase 1 in one process too.
A phase that selects no test (``-k`` that matches only chapters) is not a
failure; the run fails if either phase fails, after both have run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NO_TESTS_COLLECTED = 5  # pytest's exit code when a selection matches nothing


def workers() -> int:
    asked = os.environ.get("COURSE_TEST_WORKERS")
    if asked is not None:
        if not asked.isdigit():
            raise SystemExit(f"COURSE_TEST_WORKERS must be a whole number (0: no parallel workers), got {asked!r}.")
        return int(asked)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(cores, 4) if cores > 1 else 0


def names_a_path(args: list[str]) -> bool:
    """True when an argument is a test path (``tests/x.py``, ``notebooks/05_pretraining.ipynb``, ``x.py::test``)."""
    for arg in args:
        if arg.startswith("-"):
            continue
        if (ROOT / arg.split("::")[0]).exists():
            return True
    return False


def pytest(args: list[str]) -> int:
    command = [sys.executable, "-m", "pytest", *args]
    print("+ " + " ".join(command[1:]), flush=True)
    return subprocess.run(command, cwd=ROOT).returncode


def main(args: list[str]) -> int:
    if names_a_path(args):
        return pytest(args)
    n = workers()
    parallel = ["-n", str(n), "--dist", "worksteal"] if n > 0 else []
    codes = [pytest(["tests", *parallel, *args]), pytest(["notebooks", *args])]
    if all(code == NO_TESTS_COLLECTED for code in codes):
        return NO_TESTS_COLLECTED
    return max((code for code in codes if code != NO_TESTS_COLLECTED), default=0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
