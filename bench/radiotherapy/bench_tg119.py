"""Our fluence optimizer against pyRadPlan's own, on the same TG-119 dose-influence matrix and objectives.

Both start from zero fluence, run scipy's L-BFGS-B with bounds x >= 0 and the same iteration cap (pyRadPlan's
default, 500), one BLAS thread each. The final objective of both fluences is recomputed with one function
(float64 matrix) so the values are comparable; pyRadPlan's own last reported objective is printed beside ours
as a check that both solve the same problem. Run with the pyRadPlan extra installed:

    OPENBLAS_NUM_THREADS=1 python bench/radiotherapy/bench_tg119.py [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # a benchmark script, not the package: set before numpy loads

import numpy as np  # noqa: E402


def objective_value(matrix, structures, objectives, fluence) -> float:
    from domains.radiotherapy.fluence import objective_terms

    dose = matrix @ np.asarray(fluence, dtype=np.float64)
    return float(sum(o.weight * objective_terms(dose, structures[o.structure], o)[0] for o in objectives))


def run_ours(matrix, structures, objectives):
    """Our optimizer from zero fluence with pyRadPlan's iteration cap; also (seconds, objective) per iteration."""
    from domains.radiotherapy.fluence import fluence_optimize

    trace: list[tuple[float, float]] = []
    start = time.perf_counter()
    result = fluence_optimize(matrix, structures, objectives, x0=np.zeros(matrix.shape[1]), max_iterations=500,
                              callback=lambda f: trace.append((time.perf_counter() - start, f)))
    return result, time.perf_counter() - start, trace


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results_tg119.json"))
    args = parser.parse_args()

    from domains.radiotherapy.tg119 import optimization_structures, pyradplan_objectives, pyradplan_setup

    t = time.perf_counter()
    setup = pyradplan_setup()
    dij_s = time.perf_counter() - t
    import pyRadPlan
    import scipy.sparse as sp

    matrix64 = sp.csr_matrix(setup["dij"].physical_dose.flat[0], dtype=np.float64)
    structures = optimization_structures(setup)
    objectives = pyradplan_objectives()
    print(f"dose-influence matrix {matrix64.shape}, {matrix64.nnz} non-zeros, computed in {dij_s:.1f} s")

    rows = []
    for repeat in range(args.repeats):
        info: dict = {}
        t = time.perf_counter()
        theirs = np.asarray(
            pyRadPlan.fluence_optimization(setup["ct"], setup["cst"], setup["stf"], setup["dij"], setup["pln"],
                                           opt_info=info)
        )
        their_s = time.perf_counter() - t
        ours, our_s, trace = run_ours(matrix64, structures, objectives)
        their_objective = objective_value(matrix64, structures, objectives, theirs)
        reached = next((s for s, f in trace if f <= their_objective), None)
        row = {
            "repeat": repeat,
            "pyradplan_s": round(their_s, 2),
            "pyradplan_iterations": info.get("num_iter"),
            "pyradplan_reported_objective": round(float(info["obj_history"][-1]), 4) if info.get("obj_history") else None,
            "pyradplan_objective": round(objective_value(matrix64, structures, objectives, theirs), 4),
            "ours_s": round(our_s, 2),
            "ours_iterations": ours.iterations,
            "ours_objective": round(objective_value(matrix64, structures, objectives, ours.fluence), 4),
        }
        row["time_ratio"] = round(our_s / their_s, 3)
        # Ours reaches pyRadPlan's final objective before its own iteration cap: the time to get there.
        row["ours_s_to_pyradplan_objective"] = round(reached, 2) if reached is not None else None
        row["time_ratio_to_same_objective"] = round(reached / their_s, 3) if reached is not None else None
        rows.append(row)
        print(json.dumps(row))
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared with other CPU-heavy jobs)",
        "pyradplan": pyRadPlan.__version__,
        "matrix": {"shape": list(matrix64.shape), "nnz": int(matrix64.nnz)},
        "dij_seconds": round(dij_s, 1),
        "runs": rows,
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
