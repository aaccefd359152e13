# tradeops — `make demo` runs the main job, `make test` runs lint and every test.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help

.PHONY: help install demo test unit integration lint format bench bench-quick chaos up down status clean

help: ## show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

install: $(STAMP) ## create .venv when missing; torch==2.13.0 (CPU) first, then the project with dev extras

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: install ## run the scripted demo on the embedded stack
	$(BIN)/tradeops demo

test: install lint ## lint, then unit and integration tests against real nats-server / Postgres / MiniLM
	sh ops/monitoring/ensure-promtool.sh
	$(BIN)/pytest
	TRADEOPS_CHAOS_SCALE=ci $(BIN)/pytest -m chaos tests/chaos -s

unit: install ## unit tests only
	$(BIN)/pytest tests/unit

integration: install ## integration tests only
	sh ops/monitoring/ensure-promtool.sh
	$(BIN)/pytest tests/integration

lint: install ## ruff and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install ## benchmarks: hop vs raw nats-py vs FastStream (and more as they land)
	$(BIN)/python -m ops.bench

bench-quick: install ## the benchmarks in quick mode
	$(BIN)/python -m ops.bench --quick

chaos: install ## crash/restart suite at full size (300 intents/s for 60 s); TRADEOPS_CHAOS_SCALE=ci: 100/s for 20 s
	TRADEOPS_CHAOS_SCALE=$${TRADEOPS_CHAOS_SCALE:-full} $(BIN)/pytest -m chaos tests/chaos -s

up: install ## start the embedded stack in the background
	$(BIN)/tradeops up --detach

down: ## stop the embedded stack
	$(BIN)/tradeops down

status: ## show the embedded stack
	$(BIN)/tradeops status

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
