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

import matplotlib  # noqa: E402

matplotlib.use("Agg")  # tests never open windows

if not os.environ.get("COURSE_DATA_DIR"):
    sibling = ROOT.parent / "shared" / "data"
    if (sibling / "tinyshakespeare.txt").is_file():
        os.environ["COURSE_DATA_DIR"] = str(sibling)


def pytest_collection_modifyitems(session, config, items):
    if config.getoption("nbval", default=False):
        from nbval_inline import add_inline_items

        items[:] = add_inline_items(items)
