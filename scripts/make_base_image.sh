#!/usr/bin/env bash
# Makes a Debian bookworm base image with CPython 3.11 from Debian's packages (debootstrap + `docker import`),
# for machines that reach no image registry (this project's machines and CI). Debian bookworm's python3 is
# 3.11, the only CPython that the local torch==2.13.0+cpu wheel installs into. libnuma1 is vLLM's CPU
# worker's one native dependency outside its wheels. Needs root and debootstrap; about 4 minutes once.
#
# Usage: scripts/make_base_image.sh [TAG]   (default medsweep/debian-py311:bookworm; skipped when present)
# Env: DEBIAN_MIRROR (default http://deb.debian.org/debian), the docker CLI's own (DOCKER_HOST, ...).
set -euo pipefail
TAG=${1:-medsweep/debian-py311:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES=python3,python3-venv,libnuma1,ca-certificates

log() { printf '[base-image] %s\n' "$*" >&2; }
die() { printf '[base-image] error: %s\n' "$*" >&2; exit 2; }

if docker image inspect "$TAG" >/dev/null 2>&1; then
    log "$TAG is present"
    exit 0
fi
command -v debootstrap >/dev/null || die "debootstrap not installed: apt-get install debootstrap (or scripts/setup_test_tools.sh)"
[ "$(id -u)" = 0 ] || die "debootstrap needs root; or build with BASE_IMAGE=<an image you can pull>"
root=$(mktemp -d "${TMPDIR:-/tmp}/medsweep-base.XXXXXX")
trap 'rm -rf "$root"' EXIT
log "debootstrap bookworm ($PACKAGES) into $root"
debootstrap --variant=minbase --include="$PACKAGES" bookworm "$root" "$MIRROR" >"$root.log" 2>&1 \
    || { tail -5 "$root.log" >&2; die "debootstrap failed (full log: $root.log)"; }
rm -f "$root.log"
# The package lists and caches are not needed at run time; a smaller layer imports faster.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
log "docker import -> $TAG"
tar -C "$root" -c . | docker import --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' - "$TAG" >/dev/null
log "made $TAG"
