"""Generated hyperparameter texts and goal files each get a clear error or a valid result, never an
unhandled exception. Most examples only parse/validate (fast); a few go through the full planning evaluator."""

import json
import math

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domains.radiotherapy.goals import GoalFileError, GoalSet, load_goals
from domains.radiotherapy.hyperparameters import HyperparameterError, parse_hyperparameters

STRUCTURES = ["PTV", "rectum", "bladder", "femoral_head_L", "femoral_head_R", "body"]
FAST = settings(deadline=None, database=None, suppress_health_check=list(HealthCheck), derandomize=True)


def fast(n: int) -> settings:
    return settings(FAST, max_examples=n)

calls = {"hyperparameters": 0, "goals": 0}

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0, max_value=200),
    st.integers(min_value=-(10**30), max_value=10**30),
)
junk = st.one_of(st.none(), st.booleans(), st.text(max_size=8), st.lists(st.integers(), max_size=3), st.just({}))
field_values = st.one_of(numbers, numbers, junk)
structure_names = st.one_of(st.sampled_from(STRUCTURES), st.sampled_from(STRUCTURES), st.text(max_size=10))
entries = st.one_of(
    st.fixed_dictionaries({"weight": field_values, "dose_Gy": field_values}),
    st.dictionaries(st.sampled_from(["weight", "dose_Gy", "dose", "w", "priority"]), field_values, max_size=4),
    junk,
)
hp_objects = st.one_of(
    st.fixed_dictionaries({s: entries for s in STRUCTURES}),
    st.dictionaries(structure_names, entries, max_size=8),
    st.lists(entries, max_size=3),
    numbers,
)


def _wrap(text: str, how: int) -> str:
    return [text, f"```json\n{text}\n```", f"My proposal: {text} -- done", text[: len(text) // 2]][how]


def _check_hyperparameters(text: str, case) -> None:
    calls["hyperparameters"] += 1
    try:
        hp = parse_hyperparameters(text, case)
    except HyperparameterError as exc:
        assert str(exc)  # a reason, never an empty message
        return
    assert set(hp) == set(STRUCTURES)
    for entry in hp.values():
        assert 0 <= entry["weight"] <= 10_000 and math.isfinite(entry["dose_Gy"]) and entry["dose_Gy"] >= 0


@fast(4500)
@given(obj=hp_objects, how=st.integers(0, 3))
def test_generated_hyperparameter_json(case2d, obj, how):
    _check_hyperparameters(_wrap(json.dumps(obj, allow_nan=True), how), case2d)


@fast(1500)
@given(text=st.text(alphabet=st.sampled_from('{}[]":,.-0123456789eE aNIfintyPTV_weightdose\n`'), max_size=80))
def test_generated_hyperparameter_garbage(case2d, text):
    _check_hyperparameters(text, case2d)


metric_names = st.one_of(
    st.sampled_from(["D95", "D2", "D98", "V70", "V50.5", "mean", "max", "min", "HI", "CI", "D0", "D101", "V", "Dx"]),
    st.text(max_size=6),
    numbers,
)
goal_items = st.one_of(
    st.fixed_dictionaries({
        "structure": structure_names,
        "metric": metric_names,
        "comparator": st.one_of(st.sampled_from(["<", "<=", ">", ">=", "=", "=<", "lt"]), junk),
        "value": field_values,
    }),
    st.dictionaries(st.sampled_from(["structure", "metric", "comparator", "value", "unit"]), field_values, max_size=5),
    junk,
)
goal_documents = st.one_of(
    st.fixed_dictionaries({"goals": st.lists(goal_items, max_size=4)}),
    st.fixed_dictionaries({"prescription_Gy": field_values, "goals": st.lists(goal_items, max_size=4)}),
    st.dictionaries(st.sampled_from(["goals", "case", "prescription_Gy", "gaols"]), junk, max_size=3),
    st.lists(goal_items, max_size=3),
)


def _check_goals(text: str) -> None:
    calls["goals"] += 1
    try:
        goals = load_goals(text + "\n", STRUCTURES)
    except GoalFileError as exc:
        assert str(exc).startswith("<goals text>")  # every message says which file
        return
    assert isinstance(goals, GoalSet) and goals.goals
    for g in goals.goals:
        assert g.structure in STRUCTURES and math.isfinite(g.value)


@fast(3000)
@given(doc=goal_documents)
def test_generated_goal_files(doc):
    _check_goals(yaml.safe_dump(doc, allow_unicode=True))


@fast(1200)
@given(text=st.text(alphabet=st.sampled_from("goals:- {}[],\"'<>=&*!|#\nPTVrectum D95 V70 value: 78 .nan\t"), max_size=120))
def test_generated_goal_garbage(text):
    _check_goals(text)


@fast(25)
@given(obj=hp_objects)
def test_generated_candidates_through_the_full_evaluator(case2d, goals2d, obj):
    from domains.radiotherapy.evaluator import PlanEvaluator

    ev = PlanEvaluator(case2d, goals2d).evaluate(json.dumps(obj, allow_nan=True))
    assert ev.text
    if ev.valid:
        assert math.isfinite(ev.score) and "goals_passed" in ev.metrics
    else:
        assert "no plan was made" in ev.text


def test_fuzz_volume():
    """Runs last in this file: the generators above produced at least 10,000 inputs together."""
    if calls["hyperparameters"] == 0 or calls["goals"] == 0:
        pytest.skip("run with the generator tests of this file")
    assert calls["hyperparameters"] + calls["goals"] >= 10_000
