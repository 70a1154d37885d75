# The two commands a newcomer needs: `make run` and `make test`. Both build their own
# virtualenv from the exact pins in requirements.lock.
PYTHON ?= python3
VENV   ?= .venv
PORT   ?= 8000
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck unit integration e2e bench clean

$(STAMP): setup.cfg pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/salon dev --port $(PORT)

# Three test processes (pytest-xdist): about half the suite's time is waiting (on workers,
# processes, timeouts), so they overlap well even on two cores. The end-to-end tests stay on
# one of them, one after another (tests/conftest.py). TEST_PROCESSES=0 runs them all in one.
TEST_PROCESSES ?= 3
test: $(STAMP) lint typecheck
	$(BIN)/pytest -n $(TEST_PROCESSES) --dist loadgroup

lint: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/ruff check .
	$(BIN)/ruff format --check api workers scheduler_jobs models salon tests

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit

integration: $(STAMP)
	$(BIN)/pytest tests/integration

e2e: $(STAMP)
	$(BIN)/pytest tests/e2e

# Needs the Debian `wrk` (apt-get install -y wrk); SCENARIO=slots|holds|generation|all.
SCENARIO ?= all
bench: $(STAMP)
	$(BIN)/python -m bench $(SCENARIO)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
