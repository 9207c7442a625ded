"""Single chain vs population search on the same evaluation budget: best score reached and wall time.

Every (strategy, seed) runs in its own subprocess, so no evaluator memo, docking cache or loaded model is shared
between runs (the radiotherapy evaluator memoizes plans per process; docking gets a fresh cache directory per run).

Strategies (B = --budget distinct evaluations, the start included):
  chain       TextGrad's loop (bench/textgrad_loop.py: the chain without restarts), iterations = B - 1
  chain-gate  a hill climber: each step edits the best so far (bench/textgrad_loop.py)
  population  tgdomains.run.optimize(strategy="population"), population=4, proposals=2, evaluation_budget=B

Engines:
  scripted  an LLM stand-in that ignores the feedback and proposes a seeded random perturbation of the value it is
            asked to improve (radiotherapy: weights x {0.5, 0.8, 1.25, 2}, dose levels +-2 Gy; molecules: one
            mol-ga Graph-GA mutation), so the comparison measures the search strategy alone
  local     tgdomains.engines.local.LocalEngine (SmolLM2-135M in-process)

    python bench/population/bench_population.py --domain radiotherapy --budget 25 --seeds 0 1 2
    python bench/population/bench_population.py --domain molecules --budget 9 --seeds 0 1
    python bench/population/bench_population.py --domain radiotherapy --engine local --budget 5 --seeds 0
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # bench/textgrad_loop.py
STRATEGIES = ("chain", "chain-gate", "population")


# -- the scripted engine --------------------------------------------------------------------------------------


def _perturb_plan(value: str, rng: random.Random) -> str:
    plan = json.loads(value)
    for entry in plan.values():
        entry["weight"] = round(min(10_000.0, max(0.0, entry["weight"] * rng.choice([0.5, 0.8, 1.25, 2.0]))), 3)
        entry["dose_Gy"] = round(min(156.0, max(0.0, entry["dose_Gy"] + rng.choice([-2, 0, 2]))), 1)
    if all(entry["weight"] == 0 for name, entry in plan.items() if name.upper().startswith("PTV")):
        plan["PTV"]["weight"] = 1.0  # keep a target weighted, as the domain requires
    return json.dumps(plan)


def _perturb_smiles(value: str, rng: random.Random) -> str:
    from mol_ga.graph_ga.gen_candidates import mutate
    from rdkit import RDLogger

    RDLogger.DisableLog("rdApp.*")
    for _ in range(50):  # a Graph-GA mutation can fail or leave the molecule as it was: draw again
        child = mutate(value, rng)
        if child and child != value:
            return child
    return value


class PerturbingEngine:
    """Replies to feedback requests with a fixed line and to step requests with a seeded random perturbation of the
    variable (seeded by the run seed, the value and the request's seed, so concurrent calls stay reproducible)."""

    def __new__(cls, domain: str, run_seed: int):
        from tgdomains.engines.base import BaseEngine, Completion, Usage, estimate_tokens

        perturb = _perturb_plan if domain == "radiotherapy" else _perturb_smiles

        class _Engine(BaseEngine):
            model = f"scripted-perturbation-{domain}"

            def _complete(self, request):
                prompt = request.messages[-1][1]
                found = re.search(r"<VARIABLE>\n(.*?)\n</VARIABLE>", prompt, re.S)
                if "Feedback on it" in prompt and found:
                    rng = random.Random(f"{run_seed}|{found.group(1)}|{request.seed}")
                    reply = f"<IMPROVED_VARIABLE>{perturb(found.group(1), rng)}</IMPROVED_VARIABLE>"
                else:
                    reply = "(scripted: no feedback)"
                tokens = sum(estimate_tokens(c) for _, c in request.messages)
                return Completion(reply, Usage(tokens, estimate_tokens(reply)))

        return _Engine()


# -- one run (in a subprocess) ----------------------------------------------------------------------------------


def run_one(spec: dict) -> dict:
    from tgdomains.domain import get_domain

    domain = get_domain(spec["domain"])
    work = Path(spec["work"])
    if spec["domain"] == "radiotherapy":
        instance = domain.load({"case": "prostate-2d"})
    else:
        instance = domain.load({"target": "DRD2", "start": "benzene", "backend": "vina", "exhaustiveness": 1,
                                "docking_cache": str(work / "docking-cache"), "docking_workers": 2})
    if spec["engine"] == "scripted":
        engine = PerturbingEngine(spec["domain"], spec["seed"])
    else:
        from tgdomains.engines.local import LocalEngine

        engine = LocalEngine()
    budget = spec["budget"]
    pool = None
    evaluate = None
    if spec.get("eval_processes"):  # as `tgdomains batch` does: CPU-bound evaluators in worker processes
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(spec["eval_processes"])
        evaluate = lambda value: pool.submit(domain.evaluate, value, instance).result()  # noqa: E731
    common = dict(engine=engine, run_dir=work / "run", seed=spec["seed"], progress=False,
                  max_tokens=spec.get("max_tokens"), evaluate=evaluate)
    started = time.monotonic()
    from tgdomains.run import optimize

    if spec["strategy"] == "population":
        # iterations bounded as the chain's: an engine whose replies are all unusable adds no evaluation, and the
        # evaluation budget alone would never stop it
        result = optimize(domain, instance, strategy="population", population=4, proposals=2,
                          evaluation_budget=budget, iterations=budget - 1, **common)
    else:
        # edits only: a scripted random edit and a restart would be the same kind of proposal here
        from textgrad_loop import EditsOnly, HillClimb

        strategy = HillClimb() if spec["strategy"] == "chain-gate" else EditsOnly()
        result = optimize(domain, instance, strategy=strategy, iterations=budget - 1, **common)
    wall = time.monotonic() - started
    if pool is not None:
        pool.shutdown()
    distinct, seen = [], set()
    for s in result.steps:  # the order candidates were first evaluated in (invalid ones included)
        if s.value not in seen:
            seen.add(s.value)
            distinct.append(s)
    best_score = result.best_evaluation.score
    first_best = next((i + 1 for i, s in enumerate(distinct) if s.evaluation.score == best_score), None)
    metrics = {k: result.best_evaluation.metrics.get(k) for k in domain.objectives(instance)}
    return {**{k: spec.get(k) for k in ("domain", "engine", "strategy", "seed", "budget", "eval_processes")},
            "best_score": round(best_score, 5) if math.isfinite(best_score) else None,
            "start_score": result.steps[0].score, "best_objectives": metrics,
            "passed": result.passed, "evaluations": len(distinct),
            "evaluations_to_best": first_best, "llm_calls": result.usage["llm_calls"],
            "unusable_replies": result.usage["unusable_replies"], "eval_s": result.usage["eval_s"],
            "wall_s": round(wall, 2), "stop_reason": result.stop_reason}


# -- the driver -------------------------------------------------------------------------------------------------


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--domain", choices=("radiotherapy", "molecules"), default="radiotherapy")
    p.add_argument("--engine", choices=("scripted", "local"), default="scripted")
    p.add_argument("--budget", type=int, default=25, help="distinct evaluations per run, the start included")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES))
    p.add_argument("--max-tokens", type=int, default=None, help="completion cap per LLM call (local engine)")
    p.add_argument("--eval-processes", type=int, default=0,
                   help="evaluate in this many worker processes (both strategies; default: in the run's process)")
    p.add_argument("--out", default=None, help="results JSON (default bench/population/results_DOMAIN_ENGINE.json)")
    p.add_argument("--run", help=argparse.SUPPRESS)  # internal: one run's spec as JSON, result on stdout
    args = p.parse_args()
    if args.run:
        print(json.dumps(run_one(json.loads(args.run))))
        return
    rows = []
    load = os.getloadavg()[0]
    for seed in args.seeds:
        for strategy in args.strategies:
            with tempfile.TemporaryDirectory(prefix="tgd-bench-pop-") as work:
                spec = {"domain": args.domain, "engine": args.engine, "strategy": strategy, "seed": seed,
                        "budget": args.budget, "work": work, "max_tokens": args.max_tokens,
                        "eval_processes": args.eval_processes}
                done = subprocess.run([sys.executable, __file__, "--run", json.dumps(spec)], capture_output=True,
                                      text=True, cwd=HERE.parents[1])
                if done.returncode != 0:
                    sys.exit(f"{strategy} seed {seed} failed:\n{done.stderr[-3000:]}")
                row = json.loads(done.stdout.strip().splitlines()[-1])
                rows.append(row)
                print(json.dumps(row), flush=True)
    summary = {}
    for strategy in args.strategies:
        mine = [r for r in rows if r["strategy"] == strategy]
        scores = [r["best_score"] for r in mine if r["best_score"] is not None]
        summary[strategy] = {"mean_best_score": round(sum(scores) / len(scores), 5) if scores else None,
                             "mean_wall_s": round(sum(r["wall_s"] for r in mine) / len(mine), 2),
                             "passed": sum(r["passed"] for r in mine), "runs": len(mine)}
    out = Path(args.out) if args.out else HERE / f"results_{args.domain}_{args.engine}.json"
    out.write_text(json.dumps({"command": " ".join(sys.argv), "machine": f"{os.cpu_count()} cores, load average "
                               f"{load:.1f} at start", "rows": rows, "summary": summary}, indent=2) + "\n")
    print("\n| strategy | seed | best score | evaluations to best | evaluations | LLM calls | wall s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['strategy']} | {r['seed']} | {r['best_score']} | {r['evaluations_to_best']} | "
              f"{r['evaluations']} | {r['llm_calls']} | {r['wall_s']} |")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
