"""Shared test setup.

Tests find Tiny Shakespeare through ``COURSE_DATA_DIR`` (CI points it at
``../shared/data``). When it is not set, a sibling ``shared/data`` folder with a
copy is used if there is one, so ``make test`` works the same in a checkout.

The tests run under the ``test`` CPU kernel configuration (tools/kernels.py),
set here before anything imports torch, so that nbval re-executes every chapter
under other kernels than the ``reference`` ones its committed outputs were made
with. ``COURSE_KERNELS=reference`` or ``=native`` chooses another configuration.

nbval runs code cells only; the numbers in the prose (`{eval}` expressions) get
items of their own, in the same kernel at the same place (tests/nbval_inline.py).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import kernels  # noqa: E402  (tools/kernels.py)

if "torch" in sys.modules:  # too late to choose its kernels
    raise RuntimeError("torch was imported before tests/conftest.py could set the CPU kernel configuration")
KERNEL_PROFILE = os.environ.get(kernels.ENV_PROFILE) or "test"
kernels.apply(KERNEL_PROFILE)
if os.environ.get("PYTEST_XDIST_WORKER"):
    # One of several pytest-xdist workers, one per core (tools/run_tests.py): this worker and every kernel and process
    # it starts use one thread. Two threads each on a shared core are far slower than one (OpenMP's waiting threads
    # spin: measured, the student edition's chapter 05 took 6 minutes beside a busy worker instead of 85 s alone).
    # No test run this way compares a printed number with a stored one; nbval, which does, runs alone with two.
    # OMP_WAIT_POLICY=PASSIVE: a thread that waits sleeps instead of spinning, for the processes that set two threads
    # again (kernels.apply in a subprocess).
    os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")

# No live progress bars in the kernels the tests start (nbval, the student Run All), as in the book's executed copies
# (tools/execute_notebooks.py). A tqdm bar in a kernel is a widget, updated by a message on the IOPub channel up to
# ten times a second; nbval reads that channel only once the cell has finished, so a training cell of a few minutes
# overflows ZeroMQ's queue (1,000 messages each end), later messages are dropped, and when the "idle" message is
# among them nbval fails the cell with "Timeout of 5 seconds exceeded waiting for output" (CI, chapter 05, once).
os.environ["COURSE_NO_PROGRESS"] = "1"

import matplotlib  # noqa: E402

matplotlib.use("Agg")  # tests never open windows

if not os.environ.get("COURSE_DATA_DIR"):
    sibling = ROOT.parent / "shared" / "data"
    if (sibling / "tinyshakespeare.txt").is_file():
        os.environ["COURSE_DATA_DIR"] = str(sibling)


# Handed out first by pytest-xdist (tools/run_tests.py): the longest file, so that the unit tests run beside it
# instead of after it.
FIRST = ("test_run_all.py",)


def pytest_collection_modifyitems(session, config, items):
    if config.getoption("nbval", default=False):
        from nbval_inline import add_inline_items

        items[:] = add_inline_items(items)
    items.sort(key=lambda item: item.path.name not in FIRST)  # stable: the order within each group is kept
