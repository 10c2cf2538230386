#!/usr/bin/env bash
# The main job on the embedded offline default: SmolLM2-135M + the bundled cake_bake organism,
# offline judge, CPU. Extra arguments are passed to `logitdiff topk-depth`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/logitdiff topk-depth --model smollm2_135M --organism cake_bake --mode diffing --seeds 42,1042 "$@"
