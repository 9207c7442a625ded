#!/usr/bin/env bash
# README's "run the main job": optimize the 2-D prostate plan's objective weights against the clinical goals.
# Uses OPENAI_BASE_URL / OPENAI_API_KEY when set, else the embedded local model (Qwen2.5-Coder-1.5B, offline).
# Two chain iterations (a critic call, then an optimizer call, each): measured 8.5 min with the local model on a
# 2-core machine at load 7-9 (first iteration 5 min, the second 3.4 min thanks to prefix reuse); one-call mode is
# half the calls but its first proposal made this plan worse. ITERATIONS=N changes the number of iterations;
# extra arguments go to `tgdomains optimize` (e.g. --no-cache to time it).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 scripts/ready.py 2>/dev/null || bash scripts/setup.sh  # a fresh machine or clone: set up first
export OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
export TGDOMAINS_LOCAL_THREADS="${TGDOMAINS_LOCAL_THREADS:-2}"
run_dir="runs/demo-$(date +%Y%m%d-%H%M%S)"
tgdomains optimize radiotherapy --case prostate-2d --iterations "${ITERATIONS:-2}" --run-dir "$run_dir" "$@"
tgdomains report "$run_dir" >/dev/null
python3 - "$run_dir" <<'PY'
import json, sys
from pathlib import Path

run = Path(sys.argv[1])
steps = [json.loads(line) for line in (run / "steps.jsonl").read_text().splitlines() if line.strip()]
best = json.loads((run / "best.json").read_text())
def goals(step):
    return {g["goal"]: g["met"] for g in step["evaluation"].get("details", {}).get("goals", [])}
start, end = goals(steps[0]), goals(best)
now_pass = [g for g, met in end.items() if met and not start.get(g)]
print(f"score: {steps[0]['evaluation']['score']:.4f} (start) -> {best['evaluation']['score']:.4f} "
      f"(best, iteration {best['iteration']} of {len(steps) - 1}); unusable replies: {best['usage']['unusable_replies']}")
print(f"goals passed: {sum(start.values())}/{len(start)} -> {sum(end.values())}/{len(end)}"
      + (f"; now passing: {', '.join(now_pass)}" if now_pass else "")
      + (f"; still failing: {', '.join(g for g, met in end.items() if not met)}" if not all(end.values()) else ""))
print(f"report: {run / 'report' / 'summary.md'}")
PY
