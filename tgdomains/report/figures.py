"""The core's report figures: the score trajectory of any run, and for population runs the Pareto front and the
best candidate's lineage. Domains draw their own (`Domain.report`). matplotlib is imported inside the functions
(with the Agg backend), so importing this module costs nothing; every figure is written by `save_figure`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from tgdomains import pareto
from tgdomains.records import Step


def _distinct(steps: list[Step]) -> list[Step]:
    """Each evaluated candidate once: duplicates, unchanged and failed children point at an earlier step."""
    return [s for s in steps if s.evaluated]


def _metric(step: Step, name: str) -> float:
    if name == "score":
        return math.nan if step.score is None else step.score
    return float(step.evaluation.metrics.get(name, math.nan))


def _score(s: Step) -> float:
    return math.nan if s.score is None else s.score


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_trajectory(steps: list[Step], path: Path, title: str = "") -> Path:
    """Every candidate's score by iteration, the best so far, passed candidates starred, invalid ones in red, and
    the chain's restarts (values written from scratch, not edits) as orange triangles."""

    plt = _pyplot()
    its = [s.iteration for s in steps]
    scores = [s.score for s in steps]
    fig, ax = plt.subplots(figsize=(7, 4))
    valid = [(i, sc) for i, sc in zip(its, scores, strict=True) if sc is not None]
    best, best_line = None, []
    for sc in scores:
        if sc is not None and (best is None or sc > best):
            best = sc
        best_line.append(best)
    if valid:
        ax.plot(*zip(*valid, strict=True), "o", color="tab:blue", label="candidate")
    restarts = [(s.iteration, s.score) for s in steps if s.evaluated and s.score is not None and s.restart]
    if restarts:
        ax.plot(*zip(*restarts, strict=True), "^", color="tab:orange", markersize=9, markeredgecolor="k",
                label="restart (from scratch)", zorder=3)
    ax.step(its, [b if b is not None else float("nan") for b in best_line], where="post", color="tab:green",
            label="best so far")
    for s in steps:
        if s.evaluation.passed:
            ax.plot(s.iteration, s.score, "*", color="gold", markersize=16, markeredgecolor="k")
        if s.score is None:
            ax.axvline(s.iteration, color="tab:red", alpha=0.3)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("iteration")
    ax.set_ylabel("score (higher is better)")
    ax.set_title(title + "   (★ passed, red: invalid candidate)")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def save_figure(fig, path: Path) -> Path:
    """Every report figure is written the same way, and closed so long batches do not pile up figures."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_front(steps: list[Step], objectives: Mapping[str, str], path: str | Path) -> Path:
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
    front_positions = set(pareto.pareto_front([c.evaluation for c in candidates], search_objectives))
    keep = [k for k, c in enumerate(candidates) if pareto.objective_vector(c.evaluation, search_objectives) is not None]
    valid = [candidates[k] for k in keep]
    on_front = [k in front_positions for k in keep]
    fig, ax = plt.subplots(figsize=(7, 5))
    if len(names) == 1:  # one objective only: plot it against the candidate's number
        xs = [c.id for c in valid]
        xlabel = "candidate id"
    else:
        xs = [_metric(c, names[0]) for c in valid]
        xlabel = f"{names[0]} ({'higher' if objectives.get(names[0], 'max') == 'max' else 'lower'} is better)"
    ylabel_name = names[-1]
    ys = [_metric(c, ylabel_name) for c in valid]
    direction = search_objectives.get(ylabel_name, "max")
    ylabel = f"{ylabel_name} ({'higher' if direction == 'max' else 'lower'} is better)"
    iterations = [c.iteration for c in valid]
    if valid:
        points = ax.scatter(xs, ys, c=iterations, cmap="viridis", s=28, zorder=2, label="candidate")
        from matplotlib.ticker import MaxNLocator

        fig.colorbar(points, ax=ax, label="iteration", ticks=MaxNLocator(integer=True))
        front = sorted((x, y) for x, y, f in zip(xs, ys, on_front, strict=True) if f)
        if front:
            ax.scatter(*zip(*front, strict=True), s=110, facecolors="none", edgecolors="tab:red", linewidths=1.8,
                       zorder=3, label=f"Pareto front ({len(front)})")
        best = max(valid, key=Step.rank)
        ax.plot(xs[valid.index(best)], ys[valid.index(best)], "*", color="gold", markersize=18,
                markeredgecolor="k", zorder=4, label=f"best #{best.id}")
    invalid = len(candidates) - len(valid)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{len(valid)} candidates" + (f", {invalid} invalid (not shown)" if invalid else "")
                 + "; front over " + ", ".join(search_objectives), fontsize=9)
    if valid:
        ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def lineage(steps: list[Step], leaf: Step | None = None) -> list[Step]:
    """The ancestry chain of `leaf` (default: the best distinct candidate), root first."""
    candidates = _distinct(steps)
    if not candidates:
        return []
    node = leaf if leaf is not None else max(candidates, key=Step.rank)
    by_id = {s.id: s for s in steps}
    chain = [node]
    while node.parent is not None and node.parent in by_id and len(chain) <= len(steps):
        node = by_id[node.parent]
        chain.append(node)
    return chain[::-1]


def plot_lineage(steps: list[Step], path: str | Path) -> Path:
    """Score against iteration for every candidate with its parent edge (the family tree, faint), and the best
    candidate's line of ancestors in bold with each ancestor's id and score."""
    plt = _pyplot()
    path = Path(path)
    by_id = {s.id: s for s in steps}
    score = _score
    fig, ax = plt.subplots(figsize=(8, 4.5))

    for s in _distinct(steps):
        parent = by_id.get(s.parent)
        if parent is not None:
            ax.plot([parent.iteration, s.iteration], [score(parent), score(s)], "-", color="0.8", lw=0.8,
                    zorder=1)
    distinct = _distinct(steps)
    ax.plot([s.iteration for s in distinct], [score(s) for s in distinct], "o", color="0.6", ms=4, zorder=2,
            label="candidate")
    chain = lineage(steps)
    if chain:
        ax.plot([s.iteration for s in chain], [score(s) for s in chain], "-o", color="tab:green", lw=2, ms=7,
                zorder=3, label="lineage of the best")
        for s in chain:
            sc = score(s)
            label = f"#{s.id}\n{'invalid' if math.isnan(sc) else f'{sc:.3g}'}"
            ax.annotate(label, (s.iteration, 0 if math.isnan(sc) else sc), textcoords="offset points",
                        xytext=(0, 8), ha="center", fontsize=7)
        if chain[-1].evaluation.passed:
            ax.plot(chain[-1].iteration, score(chain[-1]), "*", color="gold", ms=16, markeredgecolor="k", zorder=4)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("iteration")
    ax.set_ylabel("score (higher is better)")
    ax.set_title(f"family tree of {len(distinct)} candidates; lineage of the best: {len(chain)} generations",
                 fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)
