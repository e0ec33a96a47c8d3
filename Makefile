# TensorFleet: `make run` starts the whole platform on this machine, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum requirements.txt | cut -d' ' -f1)

.PHONY: setup run test test-unit test-integration lint format bench clean

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

setup: $(STAMP)  ## create the virtualenv and install pinned requirements

run: setup  ## start the fleet (API, workers, Flower, Redis) and train a demo job
	$(BIN)/python manage.py runfleet --demo

test: setup  ## unit and integration tests (needs PostgreSQL and Redis; see .ci/run)
	$(BIN)/python -m pytest

test-unit: setup
	$(BIN)/python -m pytest -m "not integration"

test-integration: setup
	$(BIN)/python -m pytest -m integration

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup  ## platform vs plain PyTorch, written to BENCHMARKS.md
	$(BIN)/python manage.py benchmark

clean:
	rm -rf var .pytest_cache
