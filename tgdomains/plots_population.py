"""Plots of a population run (steps.jsonl with ``id``/``parent``): the Pareto front and the best candidate's lineage.

`tgdomains report` calls these for runs whose run.json config holds ``population``. matplotlib is imported inside
the functions (with the Agg backend), so importing this module costs nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tgdomains import pareto
from tgdomains.runner import rank_key


def _distinct(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each evaluated candidate once: duplicates, unchanged and failed children point at an earlier step."""
    return [s for s in steps if s.get("duplicate_of") is None]


def _metric(step: dict[str, Any], name: str) -> float:
    ev = step["evaluation"]
    x = ev.get("metrics", {}).get(name, ev.get("score") if name == "score" else None)
    return math.nan if x is None else float(x)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_front(steps: list[dict[str, Any]], objectives: Mapping[str, str], path: str | Path) -> Path:
    """Every valid distinct candidate on the first two objectives (the score makes the second when the domain names
    one), coloured by iteration; the Pareto front the search selected parents from (the objectives plus the score,
    as `pareto.with_score`) ringed in red, the best candidate starred."""
    plt = _pyplot()
    path = Path(path)
    names = [n for n in objectives if n != "score"][:2]
    if len(names) < 2:
        names = [*names, "score"][:2] if names else ["score"]
    search_objectives = pareto.with_score(objectives)
    candidates = _distinct(steps)
    front_positions = set(pareto.pareto_front([c["evaluation"] for c in candidates], search_objectives))
    keep = [k for k, c in enumerate(candidates) if pareto.objective_vector(c["evaluation"], search_objectives) is not None]
    valid = [candidates[k] for k in keep]
    on_front = [k in front_positions for k in keep]
    fig, ax = plt.subplots(figsize=(7, 5))
    if len(names) == 1:  # one objective only: plot it against the candidate's number
        xs = [c.get("id", i) for i, c in enumerate(valid)]
        xlabel = "candidate id"
    else:
        xs = [_metric(c, names[0]) for c in valid]
        xlabel = f"{names[0]} ({'higher' if objectives.get(names[0], 'max') == 'max' else 'lower'} is better)"
    ylabel_name = names[-1]
    ys = [_metric(c, ylabel_name) for c in valid]
    direction = search_objectives.get(ylabel_name, "max")
    ylabel = f"{ylabel_name} ({'higher' if direction == 'max' else 'lower'} is better)"
    iterations = [c["iteration"] for c in valid]
    if valid:
        points = ax.scatter(xs, ys, c=iterations, cmap="viridis", s=28, zorder=2, label="candidate")
        from matplotlib.ticker import MaxNLocator

        fig.colorbar(points, ax=ax, label="iteration", ticks=MaxNLocator(integer=True))
        front = sorted((x, y) for x, y, f in zip(xs, ys, on_front, strict=True) if f)
        if front:
            ax.scatter(*zip(*front, strict=True), s=110, facecolors="none", edgecolors="tab:red", linewidths=1.8,
                       zorder=3, label=f"Pareto front ({len(front)})")
        best = max(valid, key=rank_key)
        ax.plot(xs[valid.index(best)], ys[valid.index(best)], "*", color="gold", markersize=18,
                markeredgecolor="k", zorder=4, label=f"best #{best.get('id', '?')}")
    invalid = len(candidates) - len(valid)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{len(valid)} candidates" + (f", {invalid} invalid (not shown)" if invalid else "")
                 + "; front over " + ", ".join(search_objectives), fontsize=9)
    if valid:
        ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    from tgdomains.report import save_figure

    return save_figure(fig, path)


def lineage(steps: list[dict[str, Any]], leaf: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The ancestry chain of `leaf` (default: the best distinct candidate), root first."""
    candidates = _distinct(steps)
    if not candidates:
        return []
    node = leaf if leaf is not None else max(candidates, key=rank_key)
    by_id = {s.get("id", i): s for i, s in enumerate(steps)}
    chain = [node]
    while node.get("parent") is not None and node["parent"] in by_id and len(chain) <= len(steps):
        node = by_id[node["parent"]]
        chain.append(node)
    return chain[::-1]


def plot_lineage(steps: list[dict[str, Any]], path: str | Path) -> Path:
    """Score against iteration for every candidate with its parent edge (the family tree, faint), and the best
    candidate's line of ancestors in bold with each ancestor's id and score."""
    plt = _pyplot()
    path = Path(path)
    by_id = {s.get("id", i): s for i, s in enumerate(steps)}
    fig, ax = plt.subplots(figsize=(8, 4.5))

    def score(s: dict[str, Any]) -> float:
        return math.nan if s["evaluation"]["score"] is None else float(s["evaluation"]["score"])

    for s in _distinct(steps):
        parent = by_id.get(s.get("parent"))
        if parent is not None:
            ax.plot([parent["iteration"], s["iteration"]], [score(parent), score(s)], "-", color="0.8", lw=0.8,
                    zorder=1)
    distinct = _distinct(steps)
    ax.plot([s["iteration"] for s in distinct], [score(s) for s in distinct], "o", color="0.6", ms=4, zorder=2,
            label="candidate")
    chain = lineage(steps)
    if chain:
        ax.plot([s["iteration"] for s in chain], [score(s) for s in chain], "-o", color="tab:green", lw=2, ms=7,
                zorder=3, label="lineage of the best")
        for s in chain:
            sc = score(s)
            label = f"#{s.get('id', '?')}\n{'invalid' if math.isnan(sc) else f'{sc:.3g}'}"
            ax.annotate(label, (s["iteration"], 0 if math.isnan(sc) else sc), textcoords="offset points",
                        xytext=(0, 8), ha="center", fontsize=7)
            if s.get("merge_with") is not None and s["merge_with"] in by_id:
                other = by_id[s["merge_with"]]
                ax.plot([other["iteration"], s["iteration"]], [score(other), sc], "--", color="tab:purple", lw=1,
                        zorder=2)
        if chain[-1]["evaluation"].get("passed"):
            ax.plot(chain[-1]["iteration"], score(chain[-1]), "*", color="gold", ms=16, markeredgecolor="k", zorder=4)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("iteration")
    ax.set_ylabel("score (higher is better)")
    ax.set_title(f"family tree of {len(distinct)} candidates; lineage of the best: {len(chain)} generations",
                 fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    from tgdomains.report import save_figure

    return save_figure(fig, path)
