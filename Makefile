# Herald — the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_DEV := $(VENV)/.installed-dev
PIP_COMPILE := $(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links --allow-unsafe

.PHONY: run test lint typecheck unit install install-dev lock bench clean chat

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP_RUN): $(BIN)/python requirements.lock pyproject.toml
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

$(STAMP_DEV): $(BIN)/python requirements-dev.lock pyproject.toml
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@ $(STAMP_RUN)

install: $(STAMP_RUN)
install-dev: $(STAMP_DEV)

## Start the service: SQLite under ./data and sandbox mode when no credentials are set.
run: $(STAMP_RUN)
	$(BIN)/herald db upgrade
	$(BIN)/herald run

## Play a recipient against the sandbox bot (in a second terminal, while `make run` is up).
chat: $(STAMP_RUN)
	$(BIN)/herald chat

## Lint, format check, strict type check and the whole test suite.
test: lint typecheck unit

lint: $(STAMP_DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP_DEV)
	$(BIN)/mypy

unit: $(STAMP_DEV)
	$(BIN)/pytest $(PYTEST_ARGS)

## Regenerate the lock files from pyproject.toml.
lock: $(BIN)/python
	$(BIN)/pip install --quiet pip-tools
	$(PIP_COMPILE) -o requirements.lock pyproject.toml requirements-build.in
	$(PIP_COMPILE) --extra dev -o requirements-dev.lock pyproject.toml requirements-build.in

## The benchmarks (PostgreSQL on 127.0.0.1:5432); each prints its figures and ratios.
bench: $(STAMP_DEV)
	$(BIN)/python -m bench.updates
	$(BIN)/python -m bench.broadcast
	$(BIN)/python -m bench.enqueue
	$(BIN)/python -m bench.channels
	$(BIN)/python -m bench.api

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
