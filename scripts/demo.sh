#!/usr/bin/env bash
# README's "run the main job": optimize the 2-D prostate plan's objective weights against the clinical goals.
# Uses OPENAI_BASE_URL / OPENAI_API_KEY when set, else the embedded local model (offline). A few minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
export OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
run_dir="runs/demo-$(date +%Y%m%d-%H%M%S)"
tgdomains optimize radiotherapy --case prostate-2d --iterations "${ITERATIONS:-5}" --run-dir "$run_dir" "$@"
tgdomains report "$run_dir"
echo "report: $run_dir/report/summary.md"
