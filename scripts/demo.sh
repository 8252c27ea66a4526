#!/usr/bin/env bash
# `make demo`: the study in miniature on the CPU. SmolLM2-135M-Instruct (general) and its MeQSum LoRA
# fine-tune (biomedical: servers/smollm2-135m-meqsum-lora.toml) on ONE CPU vLLM server, both evaluated on every
# task of the synthetic demo data, then the paired report with the per-sample viewer (--samples: the demo data
# is synthetic, so its outputs may be shown). Training the adapter is `make lora`, never part of this.
set -euo pipefail
cd "$(dirname "$0")/.."
MEDSWEEP=.venv/bin/medsweep
PORT=${DEMO_PORT:-8011}
OUT=${DEMO_OUT:-results/demo}
GENERAL=smollm2-135m-instruct
BIOMEDICAL=smollm2-135m-meqsum-lora
export MEDSWEEP_STATE_DIR=${DEMO_STATE_DIR:-.medsweep/demo}
started=$SECONDS
# Serving the adapter's entry starts its base's server with the base's adapters: both models on one server.
$MEDSWEEP serve --model "$BIOMEDICAL" --port "$PORT"
trap '$MEDSWEEP stop >/dev/null 2>&1 || true' EXIT
# Small on purpose: the CPU server answers a few requests a second. --limit caps the items of each task
# (DEMO_LIMIT, default 3); the demonstrations are not counted. DEMO_TASKS (comma-separated) keeps only those
# tasks (default: every task of the demo data).
tasks=()
[[ -n "${DEMO_TASKS:-}" ]] && tasks=(--task "$DEMO_TASKS")
for model in "$GENERAL" "$BIOMEDICAL"; do
  $MEDSWEEP eval --base-url "http://127.0.0.1:$PORT/v1" --model "$model" --data-dir demo_data --out "$OUT" \
    --concurrency 16 --limit "${DEMO_LIMIT:-3}" "${tasks[@]}"
done
$MEDSWEEP stop
trap - EXIT
$MEDSWEEP report --out "$OUT" --samples
echo "make demo: $((SECONDS - started)) s (demo scores mean nothing: synthetic data, a 135M model, 3 items a task)"
