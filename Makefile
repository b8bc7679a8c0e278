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

.PHONY: help install up down status test lint

help:
	@echo "make install  create .venv from uv.lock (installs uv if missing)"
	@echo "make up       start PostgreSQL, the Prefect server and a worker; apply deployments/"
	@echo "make down     stop every process 'make up' started (data stays in PostgreSQL)"
	@echo "make status   show what runs and where"
	@echo "make test     run the tests (unit and integration)"
	@echo "make lint     ruff check, ruff format --check, mypy --strict"

# uv is a self-contained binary, so installing it into a system Python (PEP 668) is harmless.
install:
	@if command -v uv >/dev/null 2>&1; then \
		uv sync --frozen; \
	else \
		{ python3 -m pip install --quiet uv \
			|| python3 -m pip install --quiet --break-system-packages uv; } \
		&& python3 -m uv sync --frozen; \
	fi

up: install
	$(PYTHON) -m taskscheduler.platform up
	$(VENV)/bin/tasks apply deployments/

down:
	$(PYTHON) -m taskscheduler.platform down

status:
	$(PYTHON) -m taskscheduler.platform status

test: install
	$(VENV)/bin/pytest

lint: install
	$(VENV)/bin/ruff check
	$(VENV)/bin/ruff format --check
	$(VENV)/bin/mypy --strict src
