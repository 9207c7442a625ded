#!/usr/bin/env bash
# README's test command: lint, then the whole suite (slow integration tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 scripts/ready.py 2>/dev/null || bash scripts/setup.sh  # a fresh machine or clone: set up first
export OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
python3 -m ruff check tgdomains domains tests bench
python3 -m pytest -q -p no:cacheprovider --timeout=900 "$@"
