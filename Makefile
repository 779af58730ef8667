# The two commands of the README, and a few helpers.
SHELL := /bin/bash
VENV := .venv/bin
PATIENTS ?= 10000

.PHONY: setup demo test test-oracle lint lock lab-down clean

setup:
	@bash scripts/setup.sh

## Command A: set everything up and run bascule's main job on the built-in lab.
demo: setup
	@$(VENV)/bascule demo --patients $(PATIENTS)

## Command B: set everything up and pass the tests.
test: setup
	@$(VENV)/ruff check .
	@$(VENV)/lint-imports --no-cache
	@$(VENV)/python -m pytest $(PYTEST_ARGS)

## The Oracle suite against a real database and GoldenGate (docs/oracle-live.md); without them, says what it needs.
ORACLE_LIVE_VARS := BASCULE_ORACLE_DSN BASCULE_GG_URL BASCULE_GG_USER BASCULE_GG_PASSWORD
test-oracle:
	@missing=""; for v in $(ORACLE_LIVE_VARS); do [ -n "$${!v}" ] || missing="$$missing $$v"; done; \
	if [ -n "$$missing" ]; then \
	  echo "test-oracle: skipped: set$$missing (a 19c database and a GoldenGate Microservices deployment; see docs/oracle-live.md)"; \
	  exit 0; fi; \
	$(MAKE) -s setup && $(VENV)/python -m pytest -m oracle_live -p no:cacheprovider \
	  tests/integration/engines/test_oracle_live.py tests/integration/replication/test_goldengate_live.py $(PYTEST_ARGS)

lint: setup
	@$(VENV)/ruff check .
	@$(VENV)/lint-imports --no-cache

lock:
	@$(VENV)/uv pip compile -q requirements.txt --override overrides.txt --python-version 3.11 -o requirements.lock

lab-down:
	@$(VENV)/bascule lab down

clean: lab-down
	rm -rf .airflow .lab
