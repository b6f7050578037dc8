# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
# Installed first so a CPU machine never pulls a multi-GB CUDA build; override for GPUs.
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
JOBS ?= 2

.PHONY: demo serve test lint format venv venv-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.core: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.demo: $(VENV)/.core
	$(BIN)/python -m pip install -q -e ".[demo]"
	touch $@

$(VENV)/.app: $(VENV)/.demo
	$(BIN)/python -m pip install -q -e ".[app]"
	touch $@

$(VENV)/.dev: $(VENV)/.core
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

venv: $(VENV)/.core
venv-dev: $(VENV)/.dev

demo: $(VENV)/.demo
	$(BIN)/unires demo --out demo-output

serve: $(VENV)/.app
	$(BIN)/unires serve --examples demo-output

lint: $(VENV)/.dev
	$(BIN)/ruff check unires tests
	$(BIN)/ruff format --check unires tests

format: $(VENV)/.dev
	$(BIN)/ruff format unires tests
	$(BIN)/ruff check --fix unires tests

test: lint
	$(BIN)/python -m pytest -n $(JOBS) -q

clean:
	rm -rf $(VENV) demo-output .pytest_cache
