# OneVoice — every target installs what it needs into .venv first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test test-fast tools lint format demo migrate topics bench bench-large clean help

help:
	@echo "make run       start OneVoice on http://127.0.0.1:8000 (embedded log + SQLite in ./data)"
	@echo "make demo      load a multi-department story through the API of a running service"
	@echo "make test      run the whole test suite in TEST_WORKERS=2 processes (installs PostgreSQL, kcat, Java, Maven when missing)"
	@echo "make test-fast unit tests and the embedded backend only (no Kafka, no PostgreSQL), for the edit-test loop"
	@echo "make lint      ruff (lint + format check) and mypy --strict"
	@echo "make migrate   apply database migrations"
	@echo "make topics    create the interactions topic (infinite retention) if missing"
	@echo "make bench     throughput/latency vs raw limits on Kafka+PostgreSQL (BENCH_ARGS=--quick)"
	@echo "make bench-large  the scaling table: 200k events/10k accounts, then 1M/100k (about an hour)"

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(PY) -m services run

migrate: $(STAMP)
	$(PY) -m services migrate

topics: $(STAMP)
	$(PY) -m services topics

demo: $(STAMP)
	$(PY) -m services demo

# The real-backend tests need PostgreSQL, kcat, Java and Maven: installed through apt when
# missing and running as root (CI machines); elsewhere the script says what to install.
tools:
	bash deploy/local/ensure-tools.sh

# Two worker processes by default (TEST_WORKERS=0 runs the suite in one process): each worker
# starts its own broker and PostgreSQL; tests are handed out as workers free up.
TEST_WORKERS ?= 2

test: $(STAMP) tools
	$(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal

test-fast: $(STAMP)
	ONEVOICE_TEST_FAST=1 $(PY) -m pytest -q -x -n $(TEST_WORKERS)

bench: $(STAMP) tools
	$(PY) -m bench $(BENCH_ARGS)

# Two bench runs (projection, replay, query, view) at 200,000 events / 10,000 accounts and at
# 1,000,000 / 100,000, then bench-results/scaling-<ts>.md: how each figure grows.
bench-large: $(STAMP) tools
	$(PY) -m bench.scaling $(BENCH_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check services tests migrations bench
	$(VENV)/bin/ruff format --check services tests migrations bench
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format services tests migrations
	$(VENV)/bin/ruff check --fix services tests migrations

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
