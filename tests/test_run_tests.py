"""`make test` (tools/run_tests.py): which pytest runs it starts, and how their exit codes add up."""

from __future__ import annotations

import re
import sys

import pytest

from notebook_utils import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import run_tests  # noqa: E402


@pytest.fixture
def calls(monkeypatch):
    """The pytest argument lists run_tests would run, each answered with the next of ``codes``."""
    made: list[list[str]] = []
    codes: list[int] = []

    def fake(args):
        made.append(list(args))
        return codes.pop(0) if codes else 0

    monkeypatch.setattr(run_tests, "pytest", fake)
    return made, codes


def test_the_makefile_runs_it():
    recipe = re.search(r"^test:.*\n\t(.+)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    assert recipe.strip() == "$(PY) tools/run_tests.py $(PYTEST_ARGS)"


def test_two_phases_tests_in_workers_then_the_chapters_alone(calls, monkeypatch):
    made, _ = calls
    monkeypatch.setenv("COURSE_TEST_WORKERS", "2")
    assert run_tests.main(["-q"]) == 0
    assert made == [["tests", "-n", "2", "--dist", "worksteal", "-q"], ["notebooks", "-q"]]


def test_no_workers_on_request(calls, monkeypatch):
    made, _ = calls
    monkeypatch.setenv("COURSE_TEST_WORKERS", "0")
    run_tests.main([])
    assert made == [["tests"], ["notebooks"]]
    monkeypatch.setenv("COURSE_TEST_WORKERS", "two")
    with pytest.raises(SystemExit, match="COURSE_TEST_WORKERS must be a whole number"):
        run_tests.main([])


def test_a_path_runs_pytest_once_on_it(calls):
    made, _ = calls
    run_tests.main(["tests/test_model.py", "-x"])
    run_tests.main(["tests/test_model.py::test_forward_shapes"])
    run_tests.main(["notebooks/05_pretraining.ipynb"])
    assert made == [["tests/test_model.py", "-x"], ["tests/test_model.py::test_forward_shapes"],
                    ["notebooks/05_pretraining.ipynb"]]


@pytest.mark.parametrize("codes, expected", [
    ([0, 0], 0),
    ([1, 0], 1),  # a failure in either phase fails the run, after both ran
    ([0, 1], 1),
    ([5, 0], 0),  # -k that selects only chapters: phase 1 collects nothing, which is not a failure
    ([0, 5], 0),
    ([5, 5], 5),  # nothing selected anywhere: pytest's own answer
    ([5, 2], 2),
])
def test_exit_codes(calls, monkeypatch, codes, expected):
    made, queue = calls
    monkeypatch.setenv("COURSE_TEST_WORKERS", "0")
    queue.extend(codes)
    assert run_tests.main(["-k", "something"]) == expected
    assert len(made) == 2
