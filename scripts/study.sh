#!/usr/bin/env bash
# The whole study on the embedded offline default: the four experiments of configs/experiments on
# SmolLM2-135M + the bundled cake_bake organism, 2 seeds, offline judge, CPU, planned into one engine
# pass per seed. Extra arguments are passed to `logitdiff study`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/logitdiff study --model smollm2_135M --organism cake_bake --mode diffing --seeds 42,1042 "$@"
