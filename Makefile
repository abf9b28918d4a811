# Driftline — the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test quick check lint typecheck unit services-up services-down clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,local,postgres]'
	@touch $@

install: $(STAMP)

## The whole loop, live: services, a model, a worker and a retrainer, a drift, a promotion.
demo: install
	$(BIN)/driftline demo

## The whole suite: unit, docstring examples, integration (real Kafka + Redis, started by the
## fixtures), reliability and e2e. A service that cannot start fails the run; nothing is skipped.
test: install
	$(BIN)/pytest

## Day to day: the same suite without the long scenarios marked `slow` (soak, quick bench).
quick: install
	$(BIN)/pytest -m "not slow"

## Lint, format check, strict types, the unit tests and the docstring examples.
check: install lint typecheck unit

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest tests/unit streams models monitoring

services-up: install
	$(BIN)/driftline services up

services-down: install
	$(BIN)/driftline services down

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
