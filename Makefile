# The two commands a newcomer needs:  make demo   and   make test
# Both create .venv (once) with everything installed, then run.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

## demo: track a scikit-learn training run from a notebook executed for real (offline, no account)
demo: $(STAMP)
	mkdir -p .nbops/executed
	$(BIN)/papermill --log-level WARNING notebooks/quickstart.ipynb .nbops/executed/quickstart.ipynb
	$(BIN)/nbops runs list --project quickstart
	$(BIN)/nbops runs show latest

## test: lint, then the whole test suite (real kernels, real W&B offline files)
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy nbops
	$(BIN)/python -m pytest

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
