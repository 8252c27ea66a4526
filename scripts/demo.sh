#!/usr/bin/env bash
# `make demo`: serve SmolLM2-135M on the CPU, evaluate every task on the synthetic demo data, report.
set -euo pipefail
cd "$(dirname "$0")/.."
MEDSWEEP=.venv/bin/medsweep
PORT=${DEMO_PORT:-8011}
OUT=${DEMO_OUT:-results/demo}
export MEDSWEEP_STATE_DIR=.medsweep/demo
$MEDSWEEP serve --engine cpu --port "$PORT"
trap '$MEDSWEEP stop >/dev/null 2>&1 || true' EXIT
# Small on purpose: the CPU server answers about 2 requests/s. --limit caps items per task.
$MEDSWEEP eval --base-url "http://127.0.0.1:$PORT/v1" --data-dir demo_data --out "$OUT" \
  --concurrency 16 --limit "${DEMO_LIMIT:-3}"
$MEDSWEEP report --out "$OUT"
