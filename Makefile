# The checks CI runs (.ci/run), for a developer's machine; needs the venv of the README.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: check lint test format

check: lint test

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python tools/check_imports.py

test:
	$(BIN)/pytest

format:
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
