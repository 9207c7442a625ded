"""The plan's value grammar and JSON schema: exactly the case's structures, weights and dose levels in bounds."""

import json

import jsonschema
import pytest
from gbnf import Grammar, llama_cpp_reads
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domains.radiotherapy.hyperparameters import MAX_WEIGHT, default_hyperparameters, max_dose_level, to_json
from domains.radiotherapy.plugin import RadiotherapyDomain
from domains.radiotherapy.value_format import value_format
from tgdomains.grammar import reply_format
from tgdomains.optimizer import extract_tagged


@pytest.fixture(scope="module")
def fmt(case2d):
    return value_format(case2d)


@pytest.fixture(scope="module")
def values(fmt):
    return Grammar(fmt.gbnf)


def plan(case, **changes):
    data = default_hyperparameters(case)
    for structure, entry in changes.items():
        data[structure] = entry
    return data


def test_the_canonical_value_and_compact_json_are_admitted(case2d, values, fmt):
    canonical = to_json(default_hyperparameters(case2d), case2d)
    assert values.matches(canonical, "value") and values.matches(f"\n{canonical}\n", "value")
    compact = json.dumps(default_hyperparameters(case2d), separators=(",", ":"))
    assert values.matches(compact, "value")
    jsonschema.validate(json.loads(canonical), fmt.json_schema)


def test_unknown_missing_and_out_of_bound_entries_are_rejected_by_grammar_and_schema(case2d, values, fmt):
    target = case2d.targets[0]
    organ = next(s for s in case2d.structures if s not in case2d.targets)
    top = max_dose_level(case2d)
    bad = {
        "unknown structure": {**default_hyperparameters(case2d), "Bladder2": {"weight": 1, "dose_Gy": 10}},
        "missing structure": {s: e for s, e in default_hyperparameters(case2d).items() if s != organ},
        "weight above the bound": plan(case2d, **{organ: {"weight": MAX_WEIGHT + 1, "dose_Gy": 10}}),
        "negative weight": plan(case2d, **{organ: {"weight": -1, "dose_Gy": 10}}),
        "dose above the bound": plan(case2d, **{target: {"weight": 100, "dose_Gy": top + 1}}),
        "extra field": plan(case2d, **{organ: {"weight": 1, "dose_Gy": 10, "priority": 2}}),
        "missing field": plan(case2d, **{organ: {"weight": 1}}),
    }
    for why, data in bad.items():
        assert not values.matches(json.dumps(data), "value"), why
        assert not values.matches(json.dumps(data, indent=2), "value"), why
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(data, fmt.json_schema)
    # a target switched off: the parser refuses a plan without any target dose, the grammar never writes one
    off = plan(case2d, **{t: {"weight": 0, "dose_Gy": 60} for t in case2d.targets})
    assert not values.matches(json.dumps(off), "value")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_plan_the_reply_grammar_admits_parses_inside_its_bounds(case2d, data):
    reply_grammar = Grammar(reply_format(value_format(case2d)).grammar)
    reply = data.draw(reply_grammar.strings(alphabet="a .\n", max_repeat=3))
    plan = RadiotherapyDomain().parse(extract_tagged(reply), type("I", (), {"case": case2d})())
    parsed = json.loads(plan)
    assert list(parsed) == list(case2d.structures)
    for structure, entry in parsed.items():
        assert 0 <= entry["weight"] <= MAX_WEIGHT and 0 <= entry["dose_Gy"] <= max_dose_level(case2d)
        if structure in case2d.targets:
            assert entry["weight"] >= 1


def test_llama_cpp_reads_the_plan_grammar(case2d):
    assert llama_cpp_reads(reply_format(value_format(case2d)).grammar)
