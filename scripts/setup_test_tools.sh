#!/usr/bin/env bash
# Installs the Debian tools that the tests drive, once: docker-compose (1.29, validates compose files without
# a Docker engine), chromium (headless screenshots of the HTML report) and chromium-driver (chromedriver: the
# report's sample viewer is driven over WebDriver), slurm-wlm and munge (a one-node Slurm cluster the sweep
# tests start in a temp folder), docker.io (dockerd 20.10: the real-Docker tests start a private one) and
# debootstrap (makes the CPU image's base where no image registry is reachable). Needs root (CI runs as
# root); without it, the tests that need these tools skip and say why.
# A tool whose component MEDSWEEP_REQUIRE names (docker, slurm, chromium; tests/support/require.py) must end
# up installed: if it cannot be, this script exits 1 with one line naming the tool and the component.
set -euo pipefail
# command, Debian package, component (MEDSWEEP_REQUIRE's name for what the tool serves)
tools=(
  "docker-compose docker-compose docker"
  "dockerd docker.io docker"
  "debootstrap debootstrap docker"
  "chromium chromium chromium"
  "chromedriver chromium-driver chromium"
  "slurmctld slurm-wlm slurm"
  "munged munge slurm"
)
required=",${MEDSWEEP_REQUIRE:-},"
missing=()
for tool in "${tools[@]}"; do
  read -r cmd package _ <<<"$tool"
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "note: ${missing[*]} not installed (needs root and apt-get); the tests that use them will skip" >&2
  else
    echo "installing ${missing[*]} (Debian packages, once)..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || echo "note: apt-get update failed" >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
      echo "note: apt-get install ${missing[*]} failed" >&2
  fi
fi
status=0
for tool in "${tools[@]}"; do
  read -r cmd package component <<<"$tool"
  if ! command -v "$cmd" >/dev/null 2>&1 && [[ $required == *",$component,"* ]]; then
    echo "error: $cmd (Debian package $package) could not be installed, and MEDSWEEP_REQUIRE names $component" >&2
    status=1
  fi
done
exit $status
