"""The LLM-guided Bayesian optimization against TPE over every seed: tables and plots from the committed results.

    python3 bench/quality/run.py --domain radiotherapy-bo --seed N        # N = 0..4: record (or --replay)
    python3 bench/quality/run.py --domain radiotherapy-tpe300 --seed N    # TPE alone, left to run
    python3 bench/quality/guided.py                                       # radiotherapy-bo.md and the plots

Reads results_radiotherapy-bo[_seedN].json and results_radiotherapy-tpe300[_seedN].json and writes
radiotherapy-bo.md (per case: evaluations until every goal is met, best score and goals met after 5/10/20/40
evaluations as means over the seeds, paired wins against TPE, the best plan's doses, LLM calls, wall seconds; the
seed-by-seed comparison at 10 and 20 evaluations; TPE at convergence) and radiotherapy-bo_CASE.png (best so far
against evaluations and against wall seconds, every seed). tests/radiotherapy/test_rt_guided_bench.py checks that
radiotherapy-bo.md is what the committed results give.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SUITE, CONVERGENCE = "radiotherapy-bo", "radiotherapy-tpe300"
SEEDS = range(5)
CHECKPOINTS = (5, 10, 20, 40)
PAIRED_AT = (10, 20)
BASELINE = "tpe"
OUT_MD = HERE / f"{SUITE}.md"


def load(suite: str, where: Path = HERE) -> dict[tuple[str, str, int], dict]:
    """Every recorded run of `suite` by (case, method, seed)."""
    runs = {}
    for seed in SEEDS:
        path = where / f"results_{suite}{'' if seed == 0 else f'_seed{seed}'}.json"
        if path.exists():
            for r in json.loads(path.read_text(encoding="utf-8"))["runs"]:
                runs[r["instance"], r["method"], seed] = r
    return runs


def at(curve: list[list], n: int) -> float | None:
    """A curve's value after `n` evaluations (a run that stopped earlier holds its last value)."""
    value = None
    for evaluations, y in curve:
        if evaluations > n:
            break
        value = y
    return value


def to_pass(run: dict) -> int | None:
    """Evaluations until every goal was met (the run stops there), or None when it never was."""
    return run["evaluations"] if run["best_passed"] else None


def _mean(xs: list[float | None]) -> float | None:
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def _f(x: float | None, digits: int = 4) -> str:
    return "–" if x is None else f"{x:.{digits}g}"


def _median_to_pass(values: list[int | None], budget: int) -> str:
    """The median over the seeds, a seed that never met every goal counted as more than the budget."""
    m = statistics.median([math.inf if v is None else v for v in values])
    return f">{budget}" if m == math.inf else f"{m:g}"


def wins(method: list[dict], baseline: list[dict], n: int) -> str:
    """Paired seeds where the method's best after `n` evaluations beats / ties / loses to the baseline's."""
    w = t = lo = 0
    for a, b in zip(method, baseline, strict=True):
        x, y = at(a["curve_evaluations"], n), at(b["curve_evaluations"], n)
        x, y = -math.inf if x is None else x, -math.inf if y is None else y
        w, t, lo = w + (x > y), t + (x == y), lo + (x < y)
    return f"{w}-{t}-{lo}"


def case_table(runs: dict, case: str, methods: list[str], seeds: list[int], budget: int) -> list[str]:
    head = ["method", "all goals met (seeds)", "evals to all goals: median (per seed)",
            *(f"best @{n}" for n in CHECKPOINTS), *(f"goals @{n}" for n in CHECKPOINTS),
            *(f"wins vs TPE @{n}" for n in PAIRED_AT), "PTV D95 Gy", "rectum mean Gy", "bladder mean Gy",
            "LLM calls", "wall s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    base = [runs[case, BASELINE, s] for s in seeds]
    for m in methods:
        rs = [runs[case, m, s] for s in seeds]
        passes = [to_pass(r) for r in rs]
        cells = [m, f"{sum(p is not None for p in passes)}/{len(rs)}",
                 f"{_median_to_pass(passes, budget)} ({', '.join('–' if p is None else str(p) for p in passes)})",
                 *(_f(_mean([at(r["curve_evaluations"], n) for r in rs])) for n in CHECKPOINTS),
                 *(_f(_mean([at(r["curve_goals"], n) for r in rs]), 3) for n in CHECKPOINTS),
                 *(("–" if m == BASELINE else wins(rs, base, n)) for n in PAIRED_AT),
                 *(_f(_mean([r["metrics"].get(c) for r in rs]), 3)
                   for c in ("PTV_D95_Gy", "rectum_mean_Gy", "bladder_mean_Gy")),
                 _f(_mean([r["llm_calls"] for r in rs]), 2), _f(_mean([r["wall_s"] for r in rs]), 3)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def paired_table(runs: dict, case: str, methods: list[str], seeds: list[int]) -> list[str]:
    head = ["seed", *(f"{m} @{n}" for n in PAIRED_AT for m in methods)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in seeds:
        cells = [str(s)]
        for n in PAIRED_AT:
            best = {m: at(runs[case, m, s]["curve_evaluations"], n) for m in methods}
            top = max(v for v in best.values() if v is not None)
            cells += [f"**{_f(best[m])}**" if best[m] == top else _f(best[m]) for m in methods]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def convergence_table(runs: dict, budget: int) -> list[str]:
    """Per case and method: the seeds that met every goal, evaluations until then, and the best plan's score."""
    lines = ["| case | method | all goals met (seeds) | evals to all goals: median (per seed) | best score per seed | "
             "goals met per seed |", "|---|---|---|---|---|---|"]
    for case, method in dict.fromkeys((c, m) for c, m, _ in runs):
        rs = [runs[case, method, s] for s in SEEDS if (case, method, s) in runs]
        passes = [to_pass(r) for r in rs]
        lines.append(f"| {case} | {method} | {sum(p is not None for p in passes)}/{len(rs)} | "
                     f"{_median_to_pass(passes, budget)} ({', '.join('–' if p is None else str(p) for p in passes)}) | "
                     f"{', '.join(_f(r['best_score']) for r in rs)} | "
                     f"{', '.join(_f(r['metrics'].get('goals_passed'), 3) for r in rs)} |")
    return lines


def render(where: Path = HERE) -> str:
    runs = load(SUITE, where)
    sys.path.insert(0, str(HERE))
    from run import SUITES  # noqa: PLC0415 - the bench's own module, beside this file

    suite = SUITES[SUITE]
    out = [f"# LLM-guided Bayesian optimization against TPE ({SUITE})", "",
           f"Budget per run: {suite.evaluations} evaluations (the start included), at most {suite.llm_calls} LLM "
           "calls; a run stops at the first plan that meets every goal. Means over the seeds; a seed that never met "
           "every goal counts as more than the budget in the median. Wins vs TPE: seeds where the method's best "
           "after that many evaluations beats / ties / loses to TPE's on the same seed. LLM calls include replies "
           "served from the reply cache. Wall seconds are the recording's, on a shared 2-core machine: a reply "
           "served from the cache (the same request as an earlier run's) and a plan another run of the case had "
           "already evaluated cost no time there, so a run that shares its first trials with another (guided-tpe "
           "and guided-tpe-warm2 send the same first two requests) shows less than it would alone.", ""]
    for case in dict.fromkeys(k[0] for k in runs):
        methods = [m.name for m in suite.methods if all((case, m.name, s) in runs for s in SEEDS)]
        seeds = [s for s in SEEDS if all((case, m, s) in runs for m in methods)]
        if BASELINE not in methods or not seeds:
            continue
        out += [f"## {case} (seeds {', '.join(map(str, seeds))})", "",
                *case_table(runs, case, methods, seeds, suite.evaluations), "",
                f"Best score after {' and '.join(map(str, PAIRED_AT))} evaluations, seed by seed (bold: the best "
                "of the seed):", "", *paired_table(runs, case, methods, seeds), ""]
    converged = load(CONVERGENCE, where)
    if converged:
        out += [f"## TPE alone, left to run ({CONVERGENCE}: up to {SUITES[CONVERGENCE].evaluations} evaluations)",
                "", *convergence_table(converged, SUITES[CONVERGENCE].evaluations), ""]
    return "\n".join(out)


def plot(where: Path = HERE) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = load(SUITE, where)
    colors = {"tpe": "black"}
    palette = iter(matplotlib.colormaps["tab10"].colors)
    paths = []
    for case in dict.fromkeys(k[0] for k in runs):
        fig, axes = plt.subplots(1, 2, figsize=(12, 4))
        for (c, method, seed), r in sorted(runs.items()):
            if c != case:
                continue
            if method not in colors:
                colors[method] = next(palette)
            color = colors[method]
            label = method if seed == 0 else None
            for ax, key in zip(axes, ("curve_evaluations", "curve_wall_s"), strict=True):
                pts = [(x, y) for x, y in r[key] if y is not None]
                ax.step([p[0] for p in pts], [p[1] for p in pts], where="post", color=color, alpha=0.7,
                        linestyle=":" if method == BASELINE else "-", label=label)
                if r["best_passed"]:  # where the run met every goal and stopped
                    ax.plot(pts[-1][0], pts[-1][1], marker="o", color=color)
        axes[0].set_xlabel("evaluations")
        axes[1].set_xlabel("wall seconds of the recording (a cached reply or a reused evaluation cost none)")
        axes[1].set_xscale("log")
        for ax in axes:
            ax.set_ylabel("best score so far")
            ax.set_yscale("symlog", linthresh=0.01)
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=8)
        fig.suptitle(f"{case}: best so far, every seed (dot: all goals met, the run stops)")
        fig.tight_layout()
        path = where / f"{SUITE}_{case}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(str(path))
    return paths


if __name__ == "__main__":
    OUT_MD.write_text(render(), encoding="utf-8")
    print(OUT_MD.read_text(encoding="utf-8"))
    print("\n".join(plot()))
