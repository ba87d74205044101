# The two commands of the README: `make run` and `make test`. Everything installs into .venv
# with the exact versions of constraints.txt (torch 2.13.0 CPU; see DEVELOPERS.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HONE_DATA_DIR ?= hone-data
export HONE_TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: install run test test-long lint typecheck importlint pytest bench bench-quick clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and by exact version: an unpinned torch would pull the CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

run: install
	$(BIN)/hone db upgrade --data-dir $(HONE_DATA_DIR)
	$(BIN)/hone up --data-dir $(HONE_DATA_DIR)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

importlint: install
	$(BIN)/lint-imports

pytest: install
	$(BIN)/pytest -m "not long" -n 2 --dist loadgroup --durations=25

test: lint typecheck importlint pytest

test-long: install
	$(BIN)/pytest -m long

bench: install
	$(BIN)/python -m benchmarks.report

bench-quick: install
	$(BIN)/python -m benchmarks.report --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
