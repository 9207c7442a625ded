"""The methods recorded under more than one seed, side by side: how much of a table's difference is the seed.

    python3 bench/quality/seeds.py    # writes bench/quality/seeds.md from the committed results_DOMAIN[_seedN].json

A cell is the best score of each seed, seed 0 first ("0.667 / 1", "–" where that seed has no run); code adds the
problems solved on the hidden tests per seed, the other domains the mean best score per seed, each over the
instances that seed ran. Only methods recorded under some seed other than 0 are shown. Last, the paired table: the
TGD chain against zero-shot sampling at the same budget, run by run.
tests/core/test_quality_tables.py checks that seeds.md is what this writes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # run.py beside this file: its number format and the suites' order

from run import SUITES, _rank, fmt, parse_results_stem  # noqa: E402


def seed_results(suite: str) -> dict[int, list[dict]]:
    """Every committed results file of the suite, by seed."""
    found = {}
    for path in sorted(HERE.glob("results_*.json")):
        name, seed = parse_results_stem(path.stem)
        if name == suite:
            found[seed] = json.loads(path.read_text(encoding="utf-8"))["runs"]
    return dict(sorted(found.items()))


def suite_table(name: str, by_seed: dict[int, list[dict]]) -> str:
    suite, seeds = SUITES[name], list(by_seed)
    best = {(s, r["instance"], r["method"]): r for s, runs in by_seed.items() for r in runs}
    instances = list(dict.fromkeys(r["instance"] for r in by_seed[seeds[0]]))
    methods = sorted({r["method"] for r in by_seed[seeds[0]]}, key=lambda m: _rank(suite, {"method": m}))
    # a method recorded under another seed than 0, on any instance; "–" where a seed has no run of it
    methods = [m for m in methods if any(k[0] != seeds[0] and k[2] == m for k in best)]
    code = suite.domain == "code"
    summary = "solved (hidden), of the instances run" if code else "mean best, over the instances run"
    lines = [f"## {name} (seeds {' / '.join(map(str, seeds))})", "",
             "| method | " + " | ".join(instances) + f" | {summary} |", "|" + "---|" * (len(instances) + 2)]
    for m in methods:
        cells = [" / ".join(fmt(best[s, i, m]["best_score"]) if (s, i, m) in best else "–" for s in seeds)
                 for i in instances]
        runs = [[best[s, i, m] for i in instances if (s, i, m) in best] for s in seeds]
        if code:
            solved = [f"{sum(r['final'].get('hidden_pass_rate') == 1 for r in rs)}" for rs in runs]
            ran = {len(rs) for rs in runs}  # "9 / 7 of 14", or "9 of 14 / 2 of 3" where the seeds ran different sets
            cells.append(" / ".join(solved) + f" of {ran.pop()}" if len(ran) == 1 else
                         " / ".join(f"{n} of {len(rs)}" for n, rs in zip(solved, runs, strict=True)))
        else:
            scores = [[r["best_score"] for r in rs] for rs in runs]
            cells.append(" / ".join("–" if not x or None in x else fmt(round(sum(x) / len(x), 4)) for x in scores))
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# a method against the simplest alternative on the same instance, seed and budget
PAIRS = [("tgd-chain", "zero-shot")]


def outcome(run: dict, other: dict, code: bool) -> int:
    """+1 if `run` is better than `other`, -1 if worse, 0 if the same (code: solved on the hidden tests first)."""
    def key(r: dict) -> tuple:
        return (r["final"].get("hidden_pass_rate") == 1, r["best_score"]) if code else (r["best_score"],)
    return (key(run) > key(other)) - (key(run) < key(other))


def paired_table(pairs: list[tuple[str, str]], title: str, against: str) -> str:
    lines = [f"## {title}", "",
             f"| method vs {against} | domain | seed | better | worse | same |", "|---|---|---|---|---|---|"]
    total = [0, 0, 0]
    for a, b in pairs:
        for name, suite in SUITES.items():
            for seed, runs in seed_results(name).items():
                by = {(r["instance"], r["method"]): r for r in runs}
                code = suite.domain == "code"
                results = [outcome(by[i, a], by[i, b], code) for (i, m) in by if m == a and (i, b) in by]
                if results:
                    counts = [results.count(1), results.count(-1), results.count(0)]
                    total = [t + c for t, c in zip(total, counts, strict=True)]
                    lines.append(f"| {a} vs {b} | {name} | {seed} | " + " | ".join(map(str, counts)) + " |")
    lines.append("| all | | | " + " | ".join(f"**{t}**" for t in total) + " |")
    return "\n".join(lines)


def render() -> str:
    out = ["# Quality across seeds", "",
           "Best score per method, instance and seed (seed 0 first), from the committed results files; the same "
           "budgets and engine as the per-seed tables (results_DOMAIN.md, results_DOMAIN_seedN.md).", ""]
    for name in SUITES:
        by_seed = seed_results(name)
        if len(by_seed) > 1:
            out += [suite_table(name, by_seed), ""]
    out += [paired_table(PAIRS, "Paired runs: the TGD chain against zero-shot sampling", "sampling"), ""]
    return "\n".join(out)


if __name__ == "__main__":
    (HERE / "seeds.md").write_text(render(), encoding="utf-8")
    print(render())
