#!/usr/bin/env bash
# `make lora`'s environment: .venv-train with scripts/requirements-train.txt (torch 2.13.0 CPU, transformers,
# peft). Idempotent: a stamp holds the requirements' checksum, so a second run is instant.
# Env: PYTHON (default python3.11: the local torch wheel is for CPython 3.11), TRAIN_VENV (default .venv-train),
#      PIP_EXTRA (extra pip args, e.g. "--extra-index-url https://download.pytorch.org/whl/cpu" elsewhere).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
VENV=${TRAIN_VENV:-.venv-train}
REQS=scripts/requirements-train.txt
# shellcheck disable=SC2206
PIP_EXTRA_ARGS=(${PIP_EXTRA:-})
log() { printf '[setup-train] %s\n' "$*"; }
die() { printf '[setup-train] error: %s\n' "$*" >&2; exit 1; }

if [[ ! -x "$VENV/bin/python" ]]; then
    command -v "$PYTHON" >/dev/null || die "$PYTHON not found; install CPython 3.11 or set PYTHON=/path/to/python3.11"
    ver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    [[ "$ver" == "3.11" ]] || die "$PYTHON is Python $ver; the torch 2.13.0 CPU wheel here is for 3.11"
    log "creating $VENV with $PYTHON"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q -U pip
fi
want=$(sha256sum "$REQS" | cut -d' ' -f1)
if [[ "$(cat "$VENV/.requirements" 2>/dev/null)" != "$want" ]]; then
    log "installing $REQS (torch CPU, transformers, peft; about 2 minutes)"
    "$VENV/bin/pip" install -q "${PIP_EXTRA_ARGS[@]}" -r "$REQS"
    "$VENV/bin/python" -c 'import peft, torch, transformers' || die "$VENV: peft/torch/transformers do not import"
    printf '%s\n' "$want" > "$VENV/.requirements"
fi
