# The two commands of the README: `make run` and `make test`. Everything installs into .venv
# with the exact versions of constraints.txt (torch 2.13.0 CPU; see DEVELOPERS.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# One stamp per kind: `make run` installs what running needs, `make test` adds the dev tools.
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
HONE_DATA_DIR ?= hone-data
export HONE_TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: install install-dev browser run test test-long test-compose lint typecheck importlint pytest bench bench-quick clean

install: $(RUN_STAMP)

install-dev: $(DEV_STAMP)

$(RUN_STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and by exact version: an unpinned torch would pull the CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e .
	touch $(RUN_STAMP)

$(DEV_STAMP): $(RUN_STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(DEV_STAMP)

run: install
	$(BIN)/hone db upgrade --data-dir $(HONE_DATA_DIR)
	$(BIN)/hone up --data-dir $(HONE_DATA_DIR)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install-dev
	$(BIN)/mypy

importlint: install-dev
	$(BIN)/lint-imports

# The page's browser tests (tests/web) drive Debian's headless Chromium and its chromedriver.
browser:
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || \
		(apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null) || \
		echo "warning: could not install chromium and chromium-driver; tests/web will skip (fail in CI)"

pytest: install-dev browser
	$(BIN)/pytest -m "not long and not compose" -n 2 --dist loadgroup --durations=25

test: lint typecheck importlint pytest

test-long: install-dev
	$(BIN)/pytest -m long

# The compose stack built and run in Docker (starts an engine if none runs; needs root the
# first time to install docker.io, docker-compose and debootstrap). See tests/compose/run.sh.
test-compose: install-dev
	tests/compose/run.sh $(BIN)/python

bench: install-dev
	$(BIN)/python -m benchmarks.report

bench-quick: install-dev
	$(BIN)/python -m benchmarks.report --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
