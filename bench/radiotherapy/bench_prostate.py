"""Seconds per evaluation (plan + DVH + goals) of the prostate cases, and the one-time costs before the first.

Each evaluation plans a different random hyperparameter set (weights log-uniform in [1, 10000], dose levels
around the defaults; fixed seed), so none is answered from the evaluator's memo. Also times the Optuna baseline
on prostate-2d with the LLM loop's budget (11 evaluations).

    python bench/radiotherapy/bench_prostate.py [--n2d 20] [--n3d 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time


def random_values(case, n: int, seed: int) -> list[str]:
    import numpy as np

    from domains.radiotherapy.hyperparameters import default_hyperparameters, to_json

    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n):
        hp = default_hyperparameters(case)
        for entry in hp.values():
            entry["weight"] = float(10 ** rng.uniform(0, 4))
            entry["dose_Gy"] = float(entry["dose_Gy"] * rng.uniform(0.7, 1.08))
        values.append(to_json(hp, case))
    return values


def time_case(name: str, n: int) -> dict:
    from domains.radiotherapy.plugin import RadiotherapyDomain

    domain = RadiotherapyDomain()
    t = time.perf_counter()
    instance = domain.load({"case": name})  # builds (cold cache) or loads the matrix
    load_s = time.perf_counter() - t
    seconds, passed = [], 0
    for value in random_values(instance.case, n, seed=1):
        t = time.perf_counter()
        ev = domain.evaluate(value, instance)
        seconds.append(time.perf_counter() - t)
        passed += ev.passed
    m = instance.case.dose_influence
    return {
        "case": name,
        "voxels": m.shape[0],
        "beamlets": m.shape[1],
        "nnz": int(m.nnz),
        "load_s": round(load_s, 2),
        "evaluations": n,
        "median_s_per_evaluation": round(statistics.median(seconds), 3),
        "mean_s_per_evaluation": round(statistics.mean(seconds), 3),
        "max_s": round(max(seconds), 3),
        "random_sets_passing_all_goals": passed,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n2d", type=int, default=20)
    parser.add_argument("--n3d", type=int, default=5)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results_prostate.json"))
    args = parser.parse_args()
    # A cold matrix cache, so that load_s includes building the dose-influence matrices.
    os.environ["TGDOMAINS_CACHE_DIR"] = tempfile.mkdtemp(prefix="tgd-bench-")
    rows = [time_case("prostate-2d", args.n2d), time_case("prostate", args.n3d)]
    for row in rows:
        print(json.dumps(row))

    from domains import radiotherapy

    t = time.perf_counter()
    baseline = radiotherapy.optimize("prostate-2d", engine=None, strategy="optuna", evaluation_budget=11, seed=0,
                                     run_dir=tempfile.mkdtemp(prefix="tgd-optuna-"), progress=False)
    optuna = {
        "case": "prostate-2d",
        "trials": baseline.usage["evaluations"],
        "seconds": round(time.perf_counter() - t, 2),
        "best_passed": baseline.best_evaluation.passed,
        "best_goals_passed": baseline.best_evaluation.metrics.get("goals_passed"),
        "best_score": round(baseline.best_evaluation.score, 4),
    }
    print(json.dumps(optuna))
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared with other CPU-heavy jobs)",
        "cases": rows,
        "optuna_baseline": optuna,
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
