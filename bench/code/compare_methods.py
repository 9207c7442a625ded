"""TextGrad vs zero-shot vs Reflexion on the same LLM-call budget, on visible and hidden tests.

Each problem gets a TextGrad run of `--iterations` updates (1 call for the first program + 2 per update, plus any
repair requests for unusable replies) and the two baselines with as many calls as that TextGrad run spent. Completion = all visible tests pass; the hidden pass rate is the
final verdict's. The engine comes from the same selection as the CLI (an OpenAI-compatible endpoint when
OPENAI_BASE_URL / OPENAI_API_KEY are set, else the embedded local model).

    python3 bench/code/compare_methods.py [--problems FILE] [--task-ids A,B] [--iterations 5] [--engine local]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from domains import code


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--problems")
    ap.add_argument("--task-ids")
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--engine", choices=["openai", "local"])
    ap.add_argument("--model")
    ap.add_argument("--out", default=str(Path(__file__).with_name("results_compare.json")))
    args = ap.parse_args()

    from tgdomains.engines.select import choose_engine

    engine, reason = choose_engine(args.engine, model=args.model)
    problems = code.load_problems(args.problems)
    if args.task_ids:
        problems = [code.find_problem(problems, i) for i in args.task_ids.split(",")]
    budget = 1 + 2 * args.iterations
    rows = []
    with tempfile.TemporaryDirectory() as runs:
        for problem in problems:
            t0 = time.perf_counter()
            tg = code.optimize(problem, engine=engine, iterations=args.iterations, progress=False,
                               run_dir=Path(runs) / problem.id.replace("/", "_"))
            t1 = time.perf_counter()
            # The same budget: TextGrad's calls as spent (repair requests for unusable replies included).
            spent = max(budget, int(tg.usage.get("llm_calls") or 0))
            # the baselines are strategies of the same run loop, stopped by the same LLM-call budget
            same_budget = dict(engine=engine, iterations=spent, llm_call_budget=spent, progress=False)
            zs = code.optimize(problem, strategy="zero-shot", run_dir=Path(runs) / f"{problem.id}-zs", **same_budget)
            t2 = time.perf_counter()
            rx = code.optimize(problem, strategy="reflexion", run_dir=Path(runs) / f"{problem.id}-rx", **same_budget)
            t3 = time.perf_counter()
            for method, run, wall in (("textgrad", tg, t1 - t0), ("zero-shot", zs, t2 - t1), ("reflexion", rx, t3 - t2)):
                passed, final, calls = run.passed, run.final, run.usage.get("llm_calls")
                rows.append({"problem": problem.id, "method": method, "visible_passed": passed,
                             "hidden_pass_rate": final.get("hidden_pass_rate"), "llm_calls": calls,
                             "wall_s": round(wall, 1)})
                print(json.dumps(rows[-1]), flush=True)
    summary = {}
    for method in ("textgrad", "zero-shot", "reflexion"):
        mine = [r for r in rows if r["method"] == method]
        hidden = [r["hidden_pass_rate"] for r in mine if r["hidden_pass_rate"] is not None]
        summary[method] = {"visible_completion": sum(r["visible_passed"] for r in mine) / len(mine),
                           "hidden_completion": sum(h == 1.0 for h in hidden) / len(hidden) if hidden else None,
                           "mean_hidden_pass_rate": sum(hidden) / len(hidden) if hidden else None}
    result = {"engine": reason, "iterations": args.iterations, "llm_call_budget": budget, "summary": summary,
              "rows": rows}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
