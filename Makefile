# The handful of commands of this project; `make up` then open http://127.0.0.1:4200.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv ships its own certificate store; point it at the system one where there is one, so
# registries behind a local CA still verify.
ifneq ($(wildcard /etc/ssl/certs/ca-certificates.crt),)
export SSL_CERT_FILE ?= /etc/ssl/certs/ca-certificates.crt
endif

VENV := .venv
PYTHON := $(VENV)/bin/python
# The system's own Python 3.11 (Debian's), not one under a user's home: the process and fast
# lanes run as a system user of their own, and an interpreter under /root (mode 0700) is out
# of its reach. `make install` installs it when missing (python3.11 from Debian's archive).
SYSTEM_PYTHON := /usr/bin/python3.11
export UV_PYTHON := $(SYSTEM_PYTHON)
export UV_PYTHON_DOWNLOADS := never

.PHONY: help install system-packages up down status test lint bench images test-images browser compose-config

help:
	@echo "make install  create .venv from uv.lock (installs uv if missing)"
	@echo "make up       start PostgreSQL, the Prefect server and a worker; apply deployments/"
	@echo "make down     stop every process 'make up' started (data stays in PostgreSQL)"
	@echo "make status   show what runs and where"
	@echo "make test     lint, then run the tests (unit and integration)"
	@echo "make lint     ruff check, ruff format --check, mypy --strict"
	@echo "make images   start Docker if needed; build the job image unless it exists"
	@echo "make browser  install Debian's chromium and chromedriver for the web page's tests"
	@echo "make bench    benchmark on throwaway databases (BENCH_ARGS='--profile full' for the targets)"

# uv is a self-contained binary, so installing it into a system Python (PEP 668) is harmless.
install: system-packages
	@if command -v uv >/dev/null 2>&1; then \
		uv sync --frozen --extra server; \
	else \
		{ python3 -m pip install --quiet uv \
			|| python3 -m pip install --quiet --break-system-packages uv; } \
		&& python3 -m uv sync --frozen --extra server; \
	fi

# What the platform runs on besides the lock file: the system Python and bubblewrap, which puts
# every process- and fast-lane job in a sandbox of its own (see docs/security.md). Installing
# needs root, as CI runs; elsewhere sudo is used when present.
system-packages:
	@if [ ! -x $(SYSTEM_PYTHON) ] || ! command -v bwrap >/dev/null 2>&1; then \
		sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		$$sudo apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq python3.11 python3.11-venv bubblewrap; \
	fi

up: install
	$(PYTHON) -m taskscheduler.platform up
	$(VENV)/bin/tasks apply deployments/

down:
	$(PYTHON) -m taskscheduler.platform down

status:
	$(PYTHON) -m taskscheduler.platform status

# The docker tests need the engine and the job image; building them (minutes on a fresh
# machine) happens here, not inside a test's time limit. A failure stops the run, saying why.
# Lint comes first: CI runs only `make test`, and a red lint must fail it (half a minute).
test: lint test-images browser
	$(VENV)/bin/pytest

lint: install
	$(VENV)/bin/ruff check
	$(VENV)/bin/ruff format --check
	$(VENV)/bin/mypy --strict src

# The benchmark starts its own platforms on throwaway databases, prints a table and writes
# bench/results/latest.{json,png,txt}. The short profile takes a few minutes; the full one
# (BENCH_ARGS="--profile full") checks the targets of docs/performance.md in under 30 minutes.
BENCH_ARGS ?=
bench: install
	$(PYTHON) -m bench.cli
	$(PYTHON) -m bench.lanes
	$(PYTHON) -m bench $(BENCH_ARGS)

images:
	docker/ensure.sh all

# The job image plus local stand-ins for the compose stack's postgres, redis and nginx images.
test-images:
	docker/ensure.sh test

# The web page's tests drive Debian's Chromium through its chromedriver (nothing downloaded
# at run time). Installing needs root, as CI runs; elsewhere sudo is used when present.
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		$$sudo apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq chromium chromium-driver; \
	fi

compose-config:
	compose="docker compose"; $$compose version >/dev/null 2>&1 || compose=docker-compose; \
		POSTGRES_PASSWORD=check TASKS_ADMIN_TOKEN=check PREFECT_AUTH_STRING=check:check \
		TASKS_PREFECT_DB_PASSWORD=check TASKS_API_DB_PASSWORD=check TASKS_GATE_KEY=check $$compose -f docker-compose.yml config -q
