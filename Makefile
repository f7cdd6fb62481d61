# The course's commands. Each target creates .venv on first use.
#   make book     execute every chapter and render the Jupyter Book to _build/html
#   make test     the whole test suite (unit tests, exercises, pairing, nbval)
#   make lab      JupyterLab (with jupyterlab-myst) on notebooks/
#   make student  the student edition (solutions removed, outputs cleared) in _build/student
#   make bench    the performance benchmarks (results in benchmarks/results/)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# torch first, with the exact pin from pyproject.toml: here it resolves to a local
# CPU wheel; a looser spec would download a multi-GB CUDA build.
TORCH_PIN := $(shell grep -o '"torch==[^"]*"' pyproject.toml | tr -d '"')

.PHONY: setup book execute render test lab student bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_PIN)"
	$(PY) -m pip install --quiet -e ".[book,lab,test]"
	touch $(STAMP)

# Chapters are executed under the "reference" CPU kernels and tested under others
# (tools/kernels.py). `make book KERNELS=native` executes faster, but its notebooks
# are not the ones to commit (tests/test_pairing.py says so).
KERNELS ?= reference

execute: $(STAMP)
	$(PY) tools/execute_notebooks.py --kernels $(KERNELS) $(NOTEBOOKS)

render: $(STAMP)
	$(PY) tools/build_book.py

book: execute render

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

student: $(STAMP)
	$(PY) tools/make_student.py --out _build/student

bench: $(STAMP)
	@for f in $(wildcard benchmarks/bench_*.py); do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf _build
