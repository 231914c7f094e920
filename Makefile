# Herald — the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_DEV := $(VENV)/.installed-dev
PIP_COMPILE := $(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links --allow-unsafe

.PHONY: run test lint typecheck unit install install-dev lock bench clean chat chromium translations screenshots

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

unit: $(STAMP_DEV) chromium
	$(BIN)/pytest $(PYTEST_ARGS)

## The browser tests drive Debian's Chromium (never a downloaded browser build).
chromium:
	@test -x /usr/bin/chromium || { echo "installing Debian's chromium for the browser tests"; \
		apt-get update -qq && apt-get install -y -qq chromium; }

## Refresh the console's string catalogs after changing texts (then translate the new entries).
translations: $(STAMP_DEV)
	$(BIN)/pybabel extract -F babel.cfg -k tr:2 --no-location --sort-output --omit-header \
		-o admin_api/console/translations/messages.pot .
	$(BIN)/pybabel update -i admin_api/console/translations/messages.pot \
		-d admin_api/console/translations --no-fuzzy-matching

## Screenshots of the console's main pages (docs/screenshots/), taken by the browser tests.
screenshots: $(STAMP_DEV) chromium
	HERALD_CONSOLE_SCREENSHOTS=1 $(BIN)/pytest -n0 tests/test_console_browser.py \
		-k "end_to_end and sqlite"

## Regenerate the lock files from pyproject.toml.
lock: $(BIN)/python
	$(BIN)/pip install --quiet pip-tools
	$(PIP_COMPILE) -o requirements.lock pyproject.toml requirements-build.in
	$(PIP_COMPILE) --extra dev -o requirements-dev.lock pyproject.toml requirements-build.in

## The benchmarks (PostgreSQL on 127.0.0.1:5432); each prints its figures and ratios.
bench: $(STAMP_DEV)  # a script that misses its target says so; the others still run
	-$(BIN)/python -m bench.updates
	-$(BIN)/python -m bench.broadcast
	-$(BIN)/python -m bench.enqueue
	-$(BIN)/python -m bench.channels
	-$(BIN)/python -m bench.api
	-$(BIN)/python -m bench.console
	-$(BIN)/python -m bench.scale

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
