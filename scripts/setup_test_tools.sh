#!/usr/bin/env bash
# Installs the Debian tools that the tests drive, once: docker-compose (1.29, validates compose files without
# a Docker engine), chromium (headless screenshots of the HTML report) and chromium-driver (chromedriver: the
# report's sample viewer is driven over WebDriver), slurm-wlm and munge (a one-node Slurm cluster the sweep
# tests start in a temp folder), docker.io (dockerd 20.10: the real-Docker tests start a private one) and
# debootstrap (makes the CPU image's base where no image registry is reachable). Needs root (CI runs as
# root); without it, the tests that need these tools skip and say why.
set -euo pipefail
missing=()
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v slurmctld >/dev/null 2>&1 || missing+=(slurm-wlm)
command -v munged >/dev/null 2>&1 || missing+=(munge)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "note: ${missing[*]} not installed (needs root and apt-get); the tests that use them will skip" >&2
  exit 0
fi
echo "installing ${missing[*]} (Debian packages, once)..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
