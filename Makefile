# The two quick-start commands: `make fuzz` and `make test`. Both set up .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup fuzz test lint clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

# A real campaign on the built-in defaults (random engine, 60 s, artifacts in ./artifacts).
fuzz: $(STAMP)
	$(BIN)/pmdswap-fuzz run

test: $(STAMP)
	$(BIN)/python -m pytest

# ruff and mypy, settings in pyproject.toml (.ci/run runs this too)
lint: $(STAMP)
	$(BIN)/ruff check models fuzz tests tools
	tools/typecheck.sh

clean:
	rm -rf $(VENV)
