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

## The Oracle suite against two real databases and GoldenGate (docs/oracle-live.md): the read-only checks, then
## the whole night (which refuses to run unless BASCULE_ORACLE_NIGHT_DISPOSABLE=yes); without them, says what it needs.
## The list is bascule_lab.testing.oracle_live.NIGHT_VARS (tests/unit/lab/test_oracle_live_settings.py keeps them equal).
ORACLE_LIVE_VARS := BASCULE_ORACLE_SOURCE_DSN BASCULE_ORACLE_SOURCE_APP_DSN BASCULE_ORACLE_TARGET_DSN \
	BASCULE_ORACLE_TARGET_APP_DSN BASCULE_GG_URL BASCULE_GG_USER BASCULE_GG_PASSWORD
ORACLE_LIVE_TESTS := tests/integration/engines/test_oracle_live.py tests/integration/replication/test_goldengate_live.py \
	tests/integration/runbook/test_oracle_night_live.py
test-oracle:
	@missing=""; for v in $(ORACLE_LIVE_VARS); do [ -n "$${!v}" ] || missing="$$missing $$v"; done; \
	if [ -n "$$missing" ]; then \
	  echo "test-oracle: skipped: set$$missing (two disposable Oracle 19c databases, the migration and application users on each, a GoldenGate Microservices deployment; see docs/oracle-live.md)"; \
	  exit 0; fi; \
	$(MAKE) -s setup && $(VENV)/python -m pytest -m oracle_live -p no:cacheprovider --tb=short $(ORACLE_LIVE_TESTS) $(PYTEST_ARGS)

lint: setup
	@$(VENV)/ruff check .
	@$(VENV)/lint-imports --no-cache

lock:
	@$(VENV)/uv pip compile -q requirements.txt --override overrides.txt --python-version 3.11 -o requirements.lock

lab-down:
	@$(VENV)/bascule lab down

clean: lab-down
	rm -rf .airflow .lab
