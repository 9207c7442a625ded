"""Pareto selection over evaluations' metrics: the non-dominated front, crowding distance, and parent sampling.

Pure Python, no LLM and no third-party imports, so population search and reports can use it anywhere.

An evaluation is a step's ``evaluation`` dict (``Evaluation.to_dict()``) or an ``Evaluation``; `objectives` maps a
metric name to ``"max"`` or ``"min"`` (a domain's ``objectives``). The name ``"score"`` falls back to the
evaluation's own score when the metrics do not hold it, so ``{"score": "max"}`` works for every domain.
Invalid evaluations never reach the front; a valid one that lacks a metric counts as the worst on that metric.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

Vector = tuple[float, ...]


def check_objectives(objectives: Mapping[str, str]) -> dict[str, str]:
    """`objectives` as a plain dict; ValueError naming a direction that is neither "max" nor "min"."""
    if not objectives:
        raise ValueError("no objectives: give at least one metric name mapped to 'max' or 'min'")
    bad = {k: v for k, v in objectives.items() if v not in ("max", "min")}
    if bad:
        raise ValueError(f"objective directions must be 'max' or 'min', got {bad}")
    return dict(objectives)


def _field(evaluation: Mapping[str, Any] | Any, name: str) -> Any:
    if isinstance(evaluation, Mapping):
        return evaluation.get(name)
    return getattr(evaluation, name, None)


def with_score(objectives: Mapping[str, str]) -> dict[str, str]:
    """The objectives population search selects on: the domain's, plus the scalar score (maximized) unless named.

    With the score among the objectives the best candidate is always on the front, so the strongest line of
    edits is never dropped for the sake of spread.
    """
    return check_objectives({"score": "max", **dict(objectives or {})})


def objective_vector(evaluation: Mapping[str, Any] | Any, objectives: Mapping[str, str]) -> Vector | None:
    """The evaluation's objectives oriented so that larger is better everywhere; None when it is not a candidate
    for the front (invalid, or no finite score)."""
    score = _field(evaluation, "score")
    if not _field(evaluation, "valid") or score is None or not math.isfinite(score):
        return None
    metrics = _field(evaluation, "metrics") or {}
    out = []
    for name, direction in objectives.items():
        x = metrics.get(name, score if name == "score" else None)
        if x is None or not math.isfinite(x):
            out.append(-math.inf)  # a missing or broken metric is the worst value, never a free win
        else:
            out.append(float(x) if direction == "max" else -float(x))
    return tuple(out)


def dominates(a: Vector, b: Vector) -> bool:
    """True when `a` is at least as good as `b` on every objective and better on one (both oriented by
    `objective_vector`)."""
    return all(x >= y for x, y in zip(a, b, strict=True)) and any(x > y for x, y in zip(a, b, strict=True))


def front_of(vectors: Sequence[Vector | None]) -> list[int]:
    """Indices of the non-dominated vectors (None entries are skipped). Equal vectors are all kept: neither
    dominates the other. O(n^2), fine for the hundreds of candidates a run evaluates."""
    live = [i for i, v in enumerate(vectors) if v is not None]
    return [i for i in live if not any(dominates(vectors[j], vectors[i]) for j in live if j != i)]


def pareto_front(evaluations: Sequence[Mapping[str, Any] | Any], objectives: Mapping[str, str]) -> list[int]:
    """Indices of the evaluations on the Pareto front under `objectives`."""
    objectives = check_objectives(objectives)
    return front_of([objective_vector(e, objectives) for e in evaluations])


def nondominated_ranks(vectors: Sequence[Vector | None]) -> list[int | None]:
    """Each vector's front number (0 = the Pareto front, 1 = the front once that one is removed, ...); None for
    vectors that are not candidates."""
    ranks: list[int | None] = [None] * len(vectors)
    remaining = [i for i, v in enumerate(vectors) if v is not None]
    rank = 0
    while remaining:
        layer = [remaining[k] for k in front_of([vectors[i] for i in remaining])]
        for i in layer:
            ranks[i] = rank
        remaining = [i for i in remaining if ranks[i] is None]
        rank += 1
    return ranks


def crowding_distance(vectors: Sequence[Vector]) -> list[float]:
    """NSGA-II crowding distance of each vector within its set: the extremes of every objective get infinity, the
    rest the normalized gap between their neighbours, summed over objectives. Larger = a lonelier point, which
    keeps the front spread instead of letting one region crowd it."""
    n = len(vectors)
    if n <= 2:
        return [math.inf] * n
    distance = [0.0] * n
    for k in range(len(vectors[0])):
        column = [v[k] for v in vectors]
        finite = [x for x in column if math.isfinite(x)]
        if not finite:
            continue
        floor = min(finite)  # a missing metric (-inf) sits at the bottom without making the range infinite
        column = [x if math.isfinite(x) else floor for x in column]
        order = sorted(range(n), key=lambda i: column[i])
        span = column[order[-1]] - column[order[0]]
        if span <= 0:
            continue  # every point equal here: this objective says nothing about spread
        distance[order[0]] = distance[order[-1]] = math.inf
        for a, i, b in zip(order, order[1:], order[2:], strict=False):
            distance[i] += (column[b] - column[a]) / span
    return distance


def sample_parents(front: Sequence[int], vectors: Sequence[Vector], k: int, rng: random.Random,
                   keep: Sequence[int] = ()) -> list[int]:
    """Up to `k` distinct members of `front` (candidate ids, `vectors` aligned with it), in `front`'s order.

    The whole front when it fits. Otherwise the ids in `keep` (e.g. the best-scoring candidate, so the strongest
    line is always continued) and then a draw without replacement weighted by crowding distance: every member can
    be drawn, the extremes and lonely points twice as likely as the most crowded ones.
    """
    if k <= 0 or not front:
        return []
    if len(front) <= k:
        return list(front)
    chosen = [i for i in dict.fromkeys(keep) if i in front][:k]
    crowd = crowding_distance(list(vectors))
    finite = [d for d in crowd if math.isfinite(d) and d > 0]
    cap = max(finite) if finite else 1.0
    weight = {i: 1.0 + min(d, cap) / cap for i, d in zip(front, crowd, strict=True)}
    pool = [i for i in front if i not in chosen]
    while len(chosen) < k and pool:
        pick = rng.choices(pool, weights=[weight[i] for i in pool])[0]
        chosen.append(pick)
        pool.remove(pick)
    order = {i: n for n, i in enumerate(front)}
    return sorted(chosen, key=order.__getitem__)
