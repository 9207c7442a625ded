"""Pareto selection: the front on a hand-made set, crowding distance, parent sampling."""

import math
import random

import pytest

from tgdomains import pareto
from tgdomains.evaluation import Evaluation


def ev(score, valid=True, **metrics):
    return Evaluation(score, metrics, valid=valid).to_dict() if valid else Evaluation.invalid("bad").to_dict()


# quality (max) against cost (min), as a domain would declare them
OBJ = {"quality": "max", "cost": "min"}
SET = [
    ev(1.0, quality=5, cost=5),    # 0: dominated by 1
    ev(2.0, quality=6, cost=4),    # 1: front
    ev(0.5, quality=9, cost=9),    # 2: front (best quality)
    ev(0.1, quality=1, cost=1),    # 3: front (cheapest)
    ev(0.2, quality=1, cost=2),    # 4: dominated by 3
    ev(0.0, valid=False),          # 5: invalid: never on the front
    ev(3.0, quality=6, cost=4),    # 6: same metrics as 1: neither dominates, both on the front
    ev(9.0, quality=100),          # 7: no cost metric -> worst cost; still the best quality -> front
    ev(1.0, quality=2, cost=4),    # 8: dominated by 1
]


def test_the_front_of_a_hand_made_set():
    assert pareto.pareto_front(SET, OBJ) == [1, 2, 3, 6, 7]
    ranks = pareto.nondominated_ranks([pareto.objective_vector(e, OBJ) for e in SET])
    assert ranks == [1, 0, 0, 0, 1, None, 0, 0, 1]  # 8 is beaten only by members of the front


def test_invalid_and_broken_evaluations_never_reach_the_front():
    invalid_but_shiny = {"score": None, "metrics": {"quality": 1e9, "cost": 0}, "valid": False}
    no_score = {"score": None, "metrics": {"quality": 1e9, "cost": 0}, "valid": True}
    assert pareto.pareto_front([invalid_but_shiny, no_score, ev(0, quality=0, cost=10)], OBJ) == [2]
    nan_metric = ev(0, quality=math.nan, cost=0)  # stored as null: counts as the worst quality, not a free win
    assert pareto.objective_vector(nan_metric, OBJ) == (-math.inf, 0.0)


def test_score_is_read_from_the_evaluation_and_added_by_with_score():
    assert pareto.with_score(OBJ) == {"score": "max", **OBJ}
    assert pareto.with_score({"score": "max", "length": "min"}) == {"score": "max", "length": "min"}
    # with the score as an objective the best-scoring candidate is always on the front; 6 now beats its twin 1, and
    # 4 (outscoring 3) joins it
    assert pareto.pareto_front(SET, pareto.with_score(OBJ)) == [2, 3, 4, 6, 7]
    assert pareto.pareto_front([Evaluation(1.0), Evaluation(2.0)], {"score": "max"}) == [1]  # Evaluation objects too


def test_bad_objective_directions_are_named():
    with pytest.raises(ValueError, match="'max' or 'min'"):
        pareto.pareto_front(SET, {"quality": "maximize"})
    with pytest.raises(ValueError, match="no objectives"):
        pareto.check_objectives({})


def test_crowding_distance_prefers_extremes_and_lonely_points():
    vectors = [(0.0, 10.0), (1.0, 9.0), (2.0, 8.5), (10.0, 0.0)]
    d = pareto.crowding_distance(vectors)
    assert d[0] == d[3] == math.inf
    assert d[1] == pytest.approx((2 - 0) / 10 + (10 - 8.5) / 10)
    assert d[2] == pytest.approx((10 - 1) / 10 + (9 - 0) / 10)
    assert pareto.crowding_distance([(1.0,), (2.0,)]) == [math.inf, math.inf]
    assert pareto.crowding_distance([(0.0, -math.inf), (1.0, 1.0), (2.0, 2.0)])[1] == pytest.approx(2.0)


def test_parent_sampling_is_seeded_distinct_and_keeps_the_best():
    front = [10, 11, 12, 13, 14, 15]
    vectors = [(float(i), float(-i)) for i in range(6)]
    assert pareto.sample_parents(front[:3], vectors[:3], 4, random.Random(0)) == [10, 11, 12]  # all fit
    picks = [pareto.sample_parents(front, vectors, 3, random.Random(seed), keep=[13]) for seed in range(30)]
    assert all(len(p) == len(set(p)) == 3 and 13 in p for p in picks)
    assert all(p == sorted(p) for p in picks)  # in the front's order
    assert pareto.sample_parents(front, vectors, 3, random.Random(5), keep=[13]) == picks[5]  # seeded
    assert len({tuple(p) for p in picks}) > 1  # and not a fixed choice
    # extremes (infinite crowding) are drawn more often than the crowded middle
    counts = {i: sum(i in p for p in picks) for i in front}
    assert counts[10] + counts[15] > counts[11] + counts[12]
    assert pareto.sample_parents([], [], 3, random.Random(0)) == []
