#!/usr/bin/env bash
# Install everything the tests need (Python packages; SLURM + munge from Debian when root) and run them.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
if ! command -v slurmctld >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi
exec .venv/bin/python -m pytest "$@"
