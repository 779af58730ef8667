# The two commands of the README, and a few helpers.
SHELL := /bin/bash
VENV := .venv/bin
PATIENTS ?= 10000

.PHONY: setup demo test lint lock lab-down clean

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

lint: setup
	@$(VENV)/ruff check .
	@$(VENV)/lint-imports --no-cache

lock:
	@$(VENV)/uv pip compile -q requirements.txt --override overrides.txt --python-version 3.11 -o requirements.lock

lab-down:
	@$(VENV)/bascule lab down

clean: lab-down
	rm -rf .airflow .lab
