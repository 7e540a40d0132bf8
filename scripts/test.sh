#!/usr/bin/env bash
# The whole test suite (the README's test command; .ci/run calls this too).
# Two pytest workers on a 2-core machine; slow tests included; the 30 slowest are listed.
set -euo pipefail
cd "$(dirname "$0")/.."
export JAX_PLATFORMS=cpu
python -m pytest -n 2 --dist=loadfile -q --durations=30 "$@"
