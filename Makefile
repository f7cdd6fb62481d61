# The course's commands. Each target creates .venv on first use.
#   make book     execute every chapter, write the plain edition (plain/) and render the Jupyter Book to _build/html
#   make test     the whole test suite (unit tests, exercises, pairing, nbval)
#   make lab      JupyterLab (with jupyterlab-myst) on notebooks/
#   make browser-test  the book and JupyterLab in headless Chromium (screenshots in _build/browser/)
#   make student  the student edition (solutions removed, outputs cleared) in _build/student
#   make plain    the plain edition for Colab, VS Code and GitHub (MyST turned into CommonMark) in plain/
#   make bench    the performance benchmarks (results in benchmarks/results/)
#   make scaling-grid   chapter 09's grid of training runs (about 40 minutes; benchmarks/results/scaling.json)
#   make assistant      retrain the shipped assistant of chapter 11 (course/checkpoints/assistant-char; TRAINING.md says how long)
#   make assistant-grid chapter 11's grid of instruction-tuning runs (about 3 hours; benchmarks/results/assistant.json)
#   make preference-grid chapter 12's grid: reward models, best-of-N, DPO, REINFORCE and GRPO (benchmarks/results/preferences.json)
#   make modern-grid    chapter 13's grid: block variants, GQA, MoE, long context, speculative decoding (benchmarks/results/modern.json)
#   make grade SUBMISSIONS=folder   grade students' notebooks (RUNS THEIR CODE: docs/GRADING.md)
#   make grade-sandboxed SUBMISSIONS=folder   the same inside a bubblewrap sandbox (Linux, bwrap installed)
#   make nbgrader the chapters as an nbgrader course folder in _build/nbgrader, nbgrader in _build/nbgrader-venv (docs/GRADING.md)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# torch first, with the exact pin from pyproject.toml: here it resolves to a local
# CPU wheel; a looser spec would download a multi-GB CUDA build.
TORCH_PIN := $(shell grep -o '"torch==[^"]*"' pyproject.toml | tr -d '"')

.PHONY: setup book execute render test lab browser-test student plain bench scaling-grid assistant assistant-grid preference-grid modern-grid grade grade-sandboxed nbgrader clean

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

# First the code blocks a chapter shows from solutions/ and course/ (tools/sync_solutions.py).
execute: $(STAMP)
	$(PY) tools/sync_solutions.py $(NOTEBOOKS)
	$(PY) tools/execute_notebooks.py --kernels $(KERNELS) $(NOTEBOOKS)

render: $(STAMP)
	$(PY) tools/build_book.py

book: execute plain render

# tests/ in parallel workers, then every chapter under nbval alone (tools/run_tests.py says why).
test: $(STAMP)
	$(PY) tools/run_tests.py $(PYTEST_ARGS)

# The course's JupyterLab settings (lab/overrides.json): a chapter's .md opens as a
# notebook (jupytext), no pop-up asks about news. browser_tests/test_lab.py uses these flags.
LAB_FLAGS := --LabApp.app_settings_dir=$(CURDIR)/lab

lab: $(STAMP)
	$(VENV)/bin/jupyter lab $(LAB_FLAGS) notebooks/

# The rendered book and JupyterLab in headless Chromium (browser_tests/; screenshots in
# _build/browser/). Needs Debian's chromium: installed here when missing and run as root.
browser-test: $(STAMP)
	@command -v chromium >/dev/null || [ -n "$$COURSE_CHROMIUM" ] || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO=sudo; \
	  else echo "browser-test needs Chromium: sudo apt-get install chromium (or set COURSE_CHROMIUM)"; exit 2; fi; \
	  echo "installing Debian's chromium"; \
	  ($$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null; }
	$(PY) -m pip install --quiet -e ".[browser]"
	test -f _build/html/index.html || $(MAKE) render
	$(PY) -m pytest browser_tests -p no:nbval -o addopts="-ra" $(PYTEST_ARGS)

student: $(STAMP)
	$(PY) tools/make_student.py --out _build/student

# The executed chapters with their markdown in CommonMark + HTML, which Colab, VS Code and
# GitHub render (they show MyST directives as code). Committed: run it after `make execute`.
plain: $(STAMP)
	$(PY) tools/make_plain.py

bench: $(STAMP)
	@for f in $(wildcard benchmarks/bench_*.py); do echo "== $$f"; $(PY) $$f || exit 1; done

# Chapter 09's scaling-law runs; continues an interrupted grid (FRESH=1 starts over)
scaling-grid: $(STAMP)
	$(PY) benchmarks/scaling_grid.py $(if $(FRESH),--fresh)

# Chapter 11's assistant, from the shipped character model (tools/train_assistant.py)
assistant: $(STAMP)
	$(PY) tools/train_assistant.py

# Chapter 11's grid: three seeds from the pretrained model and from scratch, the base model, the new rows' start,
# arithmetic by digits with the calculator on and off, the test split once; continues an interrupted grid (FRESH=1
# starts over)
assistant-grid: $(STAMP)
	$(PY) benchmarks/assistant_grid.py $(if $(FRESH),--fresh)

# Chapter 12's grid, from the shipped assistant; continues an interrupted run (FRESH=1 starts over)
preference-grid: $(STAMP)
	$(PY) benchmarks/preference_grid.py $(if $(FRESH),--fresh)

modern-grid: $(STAMP)
	$(PY) benchmarks/modern_grid.py $(if $(FRESH),--fresh)

# Each exercise of each student runs in its own process with a time limit (TIMEOUT
# seconds); JOBS at a time. Reports in $(GRADES): grades.csv, summary.md, summary.csv.
GRADES ?= _build/grades
TIMEOUT ?= 60
JOBS ?= 1

grade: $(STAMP)
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=folder [CHAPTERS=00,01 TIMEOUT=60 JOBS=1 GRADES=_build/grades]"; exit 2; }
	$(PY) tools/grade.py "$(SUBMISSIONS)" --out "$(GRADES)" --timeout $(TIMEOUT) --jobs $(JOBS) $(if $(CHAPTERS),--chapters $(CHAPTERS))

# The same in a bubblewrap sandbox: no network, an empty environment, the course and the submissions
# read-only, only $(GRADES) writable (tools/grade_sandboxed.sh; docs/GRADING.md).
grade-sandboxed: $(STAMP)
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade-sandboxed SUBMISSIONS=folder [CHAPTERS=00,01 TIMEOUT=60 JOBS=1 GRADES=_build/grades]"; exit 2; }
	PYTHON=$(PY) tools/grade_sandboxed.sh "$(SUBMISSIONS)" "$(GRADES)" --timeout $(TIMEOUT) --jobs $(JOBS) $(if $(CHAPTERS),--chapters $(CHAPTERS))

# An nbgrader course folder (docs/GRADING.md, "Using nbgrader"): one assignment per chapter in
# $(NBGRADER_OUT)/source/, answer and test cells from the exercises, 1 point each (POINTS=2 for more),
# and nbgrader itself in _build/nbgrader-venv, on top of .venv (which stays as it is). CHAPTERS=00,01 for some.
NBGRADER_OUT ?= _build/nbgrader

nbgrader: $(STAMP)
	$(PY) tools/nbgrader_export.py --out "$(NBGRADER_OUT)" --venv _build/nbgrader-venv $(if $(CHAPTERS),--chapters $(CHAPTERS)) $(if $(POINTS),--points $(POINTS))

clean:
	rm -rf _build
