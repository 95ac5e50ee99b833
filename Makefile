# The two commands a newcomer needs:  make demo   and   make test
# Both create .venv (once) with everything installed, then run.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test test-quick lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

## demo: run the example pipeline (prepare -> train -> evaluate -> model card), offline
demo: $(STAMP)
	$(BIN)/nbops dag
	$(BIN)/nbops run --jobs 2
	$(BIN)/nbops runs list
	@echo "Model card: model_card.md (and model_card.html); run 'make demo' again: every stage is cached."

## test: lint, then the whole test suite (real kernels, real W&B offline files)
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy nbops
	$(BIN)/python -m pytest

## test-quick: the suite without the slow groups (browser, PostgreSQL, Prometheus, slow)
test-quick: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not browser and not postgres and not prometheus"

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy nbops

## bench: speed figures against wandb and MLflow (installs the peers into .venv-bench)
bench:
	$(PYTHON) -m venv .venv-bench
	.venv-bench/bin/python -m pip install --quiet --upgrade pip
	.venv-bench/bin/python -m pip install --quiet -e ".[dev]" mlflow
	.venv-bench/bin/python benchmarks/run.py

clean:
	rm -rf $(VENV) .venv-bench .nbops wandb
