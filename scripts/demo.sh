#!/usr/bin/env bash
# README's "run the main job": optimize the 2-D prostate plan's objective weights and dose levels against the
# clinical goals with the radiotherapy domain's default strategy (the method that won bench/quality's
# radiotherapy-bo table, see the domain's README), up to 40 plan evaluations, stopping at the first plan that meets
# every goal. Uses OPENAI_BASE_URL / OPENAI_API_KEY when set, else the embedded local model (Qwen2.5-Coder-1.5B,
# offline) for a strategy that asks an LLM. EVALUATIONS=N changes the evaluation budget; extra arguments go to
# `tgdomains optimize` (e.g. --strategy guided-tpe, --no-cache).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 scripts/ready.py 2>/dev/null || bash scripts/setup.sh  # a fresh machine or clone: set up first
export OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
export TGDOMAINS_LOCAL_THREADS="${TGDOMAINS_LOCAL_THREADS:-2}"
run_dir="runs/demo-$(date +%Y%m%d-%H%M%S)"
started=$(date +%s)
tgdomains optimize radiotherapy --case prostate-2d --evaluation-budget "${EVALUATIONS:-40}" --iterations 1000 \
    --run-dir "$run_dir" "$@"
tgdomains report "$run_dir" >/dev/null
python3 - "$run_dir" "$(( $(date +%s) - started ))" <<'PY'
import json, sys
from pathlib import Path

run, seconds = Path(sys.argv[1]), int(sys.argv[2])
steps = [json.loads(line) for line in (run / "steps.jsonl").read_text().splitlines() if line.strip()]
best = json.loads((run / "best.json").read_text())
def goals(step):
    return {g["goal"]: g["met"] for g in step["evaluation"].get("details", {}).get("goals", [])}
start, end = goals(steps[0]), goals(best)
now_pass = [g for g, met in end.items() if met and not start.get(g)]
usage = best["usage"]
print(f"{best['strategy']}: {usage['evaluations']} plans evaluated, {usage['llm_calls'] + usage['cache_hits']} LLM "
      f"calls, {seconds / 60:.1f} min; stopped: {best['stop_reason']}")
print(f"goals passed: {sum(start.values())}/{len(start)} -> {sum(end.values())}/{len(end)}"
      + (f"; now passing: {', '.join(now_pass)}" if now_pass else "")
      + (f"; still failing: {', '.join(g for g, met in end.items() if not met)}" if not all(end.values()) else ""))
print(f"score: {steps[0]['evaluation']['score']:.4f} (start) -> {best['evaluation']['score']:.4f} "
      f"(best, plan {best['id']} of {len(steps) - 1})")
print(f"report: {run / 'report' / 'summary.md'}")
PY
