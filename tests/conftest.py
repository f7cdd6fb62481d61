"""Shared test setup.

Tests find Tiny Shakespeare through ``COURSE_DATA_DIR`` (CI points it at
``../shared/data``). When it is not set, a sibling ``shared/data`` folder with a
copy is used if there is one, so ``make test`` works the same in a checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # tests never open windows

ROOT = Path(__file__).resolve().parent.parent

if not os.environ.get("COURSE_DATA_DIR"):
    sibling = ROOT.parent / "shared" / "data"
    if (sibling / "tinyshakespeare.txt").is_file():
        os.environ["COURSE_DATA_DIR"] = str(sibling)
