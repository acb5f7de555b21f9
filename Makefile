# The two quick-start commands: `make fuzz` and `make test`. Both set up .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup fuzz test clean

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

clean:
	rm -rf $(VENV)
