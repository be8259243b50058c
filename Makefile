# Two commands a newcomer needs: `make run` and `make test`. Everything else is a convenience.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint typecheck pytest bench install clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/.installed

run: install
	$(BIN)/alegra-sync run

test: install lint typecheck pytest

lint: install
	$(BIN)/ruff check sync receiver tests bench

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest

bench: install
	$(BIN)/python bench/receipts.py
	$(BIN)/python bench/webhooks.py
	$(BIN)/python bench/backfill.py
	$(BIN)/python bench/metrics.py

clean:
	rm -rf $(VENV) data .mypy_cache .ruff_cache .pytest_cache
