# HyperDAPO — every command a user needs. `make help` lists them.
PY      := .venv/bin/python
PIP     := .venv/bin/pip
PYTEST  := $(PY) -m pytest

.PHONY: help install test demo bench lint clean tables thesis ablations

help:
	@grep -E '^[a-z]+:.*##' Makefile | sed 's/:.*##/\t/'

install: ## create .venv, install torch==2.13.0 (CPU) first, then the package with dev + qwen_vocab extras
	python3 -m venv .venv
	$(PIP) install --upgrade pip
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[dev,qwen_vocab]'

test: ## run the whole test suite (the command CI runs)
	$(PYTEST) -q

bench: ## run every benchmark; each prints a last line `RESULT name=value`
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

lint: ## ruff check
	$(PY) -m ruff check hyperdapo tests benchmarks experiments *.py

demo: ## prepare synthetic data, train (SFT -> DAPO), evaluate, write tables and figures (CPU)
	@echo "make demo: not built yet (needs the training and evaluation issues)"; exit 1

tables: ## tables and figures from finished runs
	@echo "make tables: not built yet (needs the evaluation issue)"; exit 1

thesis: ## all four assets with experiment=thesis_<asset>
	@echo "make thesis: not built yet (needs the experiment-framework issue)"; exit 1

ablations: ## DAPO ablation table in a CPU-sized configuration
	@echo "make ablations: not built yet (needs the experiment-framework issue)"; exit 1

clean: ## remove caches and generated data (keeps .venv)
	rm -rf .pytest_cache .ruff_cache data/cache outputs/*/ benchmarks/.out
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
