# Two commands for a newcomer (see README.md):
#   make study   set up, materialize the data snapshot, run the whole pipeline
#   make test    set up, materialize the data snapshot, run every test and notebook
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The first supported interpreter found (3.11.5 or newer 3.11, 3.12, 3.13), or PYTHON=/path/to/python.
SUPPORTED := (3, 11, 5) <= sys.version_info[:3] < (3, 14)
ifndef PYTHON
PYTHON := $(firstword $(foreach p,python3.11 python3.12 python3.13 python3,$(if $(shell command -v $(p) >/dev/null 2>&1 && $(p) -c 'import sys; sys.exit(not ($(SUPPORTED)))' 2>/dev/null && echo ok),$(p))) python3)
endif
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum requirements.lock | cut -c1-12)

# Keep every tool's state inside the repository, never in $$HOME.
CACHE := $(CURDIR)/.cache
export KERAS_HOME := $(CACHE)/keras
export MPLCONFIGDIR := $(CACHE)/matplotlib
export IPYTHONDIR := $(CACHE)/ipython
export JUPYTER_CONFIG_DIR := $(CACHE)/jupyter/config
export JUPYTER_DATA_DIR := $(CACHE)/jupyter/data
export JUPYTER_RUNTIME_DIR := $(CACHE)/jupyter/runtime
export XDG_CACHE_HOME := $(CACHE)/xdg
export XDG_CONFIG_HOME := $(CACHE)/xdg-config
export KAGGLEHUB_CACHE := $(CACHE)/kagglehub
export HF_HOME := $(CACHE)/huggingface
export DVC_NO_ANALYTICS := 1
export TF_CPP_MIN_LOG_LEVEL := 2
export TF_ENABLE_ONEDNN_OPTS := 1
export PYTHONHASHSEED := 0
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help setup data study test exps plots lint strip-notebooks

help:
	@echo "make setup            - build .venv from requirements.lock and install this repository (editable)"
	@echo "make data             - setup, then dvc pull the demo snapshot (data/) from the in-repo remote"
	@echo "make study            - data, then run the whole study (dvc repro) on the demo corpus, ~8 min"
	@echo "make test             - data, then ruff, the tests and the notebooks at smoke size (what CI runs)"
	@echo "make exps             - the experiments (dvc exp show), the study's knobs beside the headline macro-AP"
	@echo "make plots            - dvc plots show: curves, comparison, per-genre AP and the report's figures"
	@echo "make lint             - format the code and fix what the linter can (ruff)"
	@echo "make strip-notebooks  - clear the source notebooks' outputs (they are committed without)"

setup: $(STAMP)

$(STAMP): requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(not ($(SUPPORTED)))' || \
	  { echo "error: the pinned environment needs Python 3.11 (3.11.5 or newer), 3.12 or 3.13 (found: $$($(PYTHON) --version 2>&1)); run 'make PYTHON=/path/to/python3.12 ...'" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

# The snapshot comes from the DVC remote committed inside the repository (demo-remote/).
data: setup
	$(BIN)/dvc pull --quiet data.dvc

study: data
	$(BIN)/dvc repro

test: data
	$(BIN)/ruff format --check --quiet .
	$(BIN)/ruff check --quiet .
	$(BIN)/python -m pytest

# `dvc exp show` lists every parameter, dependency and metric of the pipeline (DVC's design: far wider than a
# terminal); this is the study's view of its records: the knobs that differ and each run's headline macro-AP.
exps:
	PATH=$(BIN):$$PATH $(BIN)/python -m lib.apps.experiments show

plots:
	$(BIN)/dvc plots show

lint: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

strip-notebooks: setup
	$(BIN)/jupyter nbconvert --clear-output --inplace notebooks/*.ipynb
