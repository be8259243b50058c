# Two commands a newcomer needs: `make run` and `make test`. Everything else is a convenience.
# `make run` installs only what the service needs; `make test` (and lint, typecheck, bench) the
# development tools too. Each has its own stamp, redone when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint typecheck pytest bench install install-service clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(BIN)/.installed-service: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(BIN)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(BIN)/.installed-service

install-service: $(BIN)/.installed-service

install: $(BIN)/.installed-dev

# SIMULATOR_PORT, PORT, … given as `make run NAME=value` reach the service's environment.
run: install-service
	$(BIN)/alegra-sync run

test: install lint typecheck pytest

lint: install
	$(BIN)/ruff check sync receiver tests bench
	$(BIN)/lint-imports --no-cache

typecheck: install
	$(BIN)/mypy

# The end-to-end tests mostly wait on real processes and sockets: three processes share two cores.
PYTEST_WORKERS ?= 3
pytest: install
	$(BIN)/pytest -n $(PYTEST_WORKERS)

bench: install
	$(BIN)/python bench/receipts.py
	$(BIN)/python bench/webhooks.py
	$(BIN)/python bench/webhooks_wrk.py
	$(BIN)/python bench/backfill.py
	$(BIN)/python bench/metrics.py
	$(BIN)/python bench/companies.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/notifications.py

clean:
	rm -rf $(VENV) data .mypy_cache .ruff_cache .pytest_cache .hypothesis .schemathesis
