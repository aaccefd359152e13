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

# pip's progress bars on a terminal; its plain lines (Collecting, Downloading, Installing) in CI
# logs and pipes, where a bar would only redraw into noise.
PIP_INSTALL = $(BIN)/python -m pip install \
	$$(if [ -t 1 ] && [ -z "$$CI" ]; then echo --progress-bar=on; else echo --progress-bar=off; fi)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || { echo "creating $(VENV) with $(PYTHON) ..."; $(PYTHON) -m venv $(VENV); }
	@echo "installing torch 2.13.0 (CPU build, about 200 MB: the first run takes a few minutes) ..."
	@$(PIP_INSTALL) torch==2.13.0
	@echo "installing tradeops with its dependencies and dev tools (pip install -e '.[dev]') ..."
	@$(PIP_INSTALL) -e '.[dev]'
	@touch $(STAMP)
	@echo "installed: $(BIN)/tradeops ($(VENV))"

demo: install ## run the scripted demo on the embedded stack
	$(BIN)/tradeops demo

test: install lint ## lint, then unit and integration tests against real nats-server / Postgres / MiniLM
	sh ops/tools/ensure-command.sh promtool prometheus
	sh ops/tools/ensure-command.sh npm nodejs npm
	$(BIN)/pytest
	TRADEOPS_CHAOS_SCALE=ci $(BIN)/pytest -m chaos tests/chaos -s

unit: install ## unit tests only
	$(BIN)/pytest tests/unit

integration: install ## integration tests only
	sh ops/tools/ensure-command.sh promtool prometheus
	sh ops/tools/ensure-command.sh npm nodejs npm
	$(BIN)/pytest tests/integration tests/system

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
