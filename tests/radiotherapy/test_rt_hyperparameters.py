import json

import pytest

from domains.radiotherapy.hyperparameters import (
    HyperparameterError,
    default_hyperparameters,
    parse_hyperparameters,
    to_json,
)


def _hp(case, **changes):
    hp = default_hyperparameters(case)
    for key, value in changes.items():
        structure, field = key.split("__")
        hp[structure][field] = value
    return hp


def test_defaults_are_all_100_and_round_trip(case2d):
    hp = default_hyperparameters(case2d)
    assert {v["weight"] for v in hp.values()} == {100.0}
    text = to_json(hp, case2d)
    assert parse_hyperparameters(text, case2d) == hp
    assert to_json(parse_hyperparameters(text, case2d), case2d) == text
    assert list(json.loads(text)) == case2d.structure_names


def test_fenced_and_bare_json_are_accepted(case2d):
    text = json.dumps(_hp(case2d, PTV__weight=250.5))
    fenced = f"Here is my proposal:\n```json\n{text}\n```\nThis raises coverage."
    assert parse_hyperparameters(fenced, case2d)["PTV"]["weight"] == 250.5
    assert parse_hyperparameters(f"new values: {text} done", case2d)["PTV"]["weight"] == 250.5


def test_canonical_text_rounds_and_orders(case2d):
    hp = _hp(case2d, rectum__weight=12.3456789)
    reordered = dict(reversed(list(hp.items())))
    assert to_json(reordered, case2d) == to_json(hp, case2d)
    assert '"rectum": {"weight": 12.35, "dose_Gy": 50}' in to_json(hp, case2d)


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "empty"),
        ("raise the PTV weight", "no JSON object"),
        ("{'PTV': 1}", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_not_json(case2d, text, reason):
    with pytest.raises(HyperparameterError, match=reason):
        parse_hyperparameters(text, case2d)


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda hp: hp["PTV"].update(weight=-1), r"PTV.weight: -1 is negative"),
        (lambda hp: hp["rectum"].update(dose_Gy=-3.5), r"rectum.dose_Gy: -3.5 is negative"),
        (lambda hp: hp["bladder"].update(weight=1e6), r"bladder.weight: 1e\+06 is above the allowed maximum"),
        (lambda hp: hp["bladder"].update(dose_Gy=500), r"bladder.dose_Gy: 500 is above the allowed maximum 156"),
        (lambda hp: hp["body"].update(weight="high"), r"body.weight: expected a number"),
        (lambda hp: hp["body"].update(weight=True), r"body.weight: expected a number"),
        (lambda hp: hp.update(rectun=hp.pop("rectum")), r"unknown structure\(s\) 'rectun'"),
        (lambda hp: hp.pop("bladder"), r"missing structure\(s\) bladder"),
        (lambda hp: hp["PTV"].pop("dose_Gy"), r"PTV: missing field\(s\) dose_Gy"),
        (lambda hp: hp["PTV"].update(priority=1), r"PTV: unknown field\(s\) priority"),
        (lambda hp: hp.update(PTV=100), r"PTV: expected"),
        (lambda hp: hp["PTV"].update(weight=0), r"every target .* has weight 0"),
    ],
)
def test_bad_hyperparameters_are_refused_with_reasons(case2d, mutate, reason):
    hp = default_hyperparameters(case2d)
    mutate(hp)
    with pytest.raises(HyperparameterError, match=reason):
        parse_hyperparameters(json.dumps(hp), case2d)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused(case2d, token):
    text = to_json(default_hyperparameters(case2d), case2d).replace('"weight": 100', f'"weight": {token}', 1)
    with pytest.raises(HyperparameterError, match="not a number|finite"):
        parse_hyperparameters(text, case2d)


def test_huge_integer_is_refused(case2d):
    text = to_json(default_hyperparameters(case2d), case2d).replace('"weight": 100', '"weight": 1' + "0" * 400, 1)
    with pytest.raises(HyperparameterError, match="too large"):
        parse_hyperparameters(text, case2d)


def test_bad_hyperparameters_never_start_a_planning_run(case2d, goals2d, monkeypatch):
    from domains.radiotherapy import evaluator as evaluator_module
    from domains.radiotherapy import planning

    def no_planning(*args, **kwargs):
        raise AssertionError("a planning run was started for invalid hyperparameters")

    ev = evaluator_module.PlanEvaluator(case2d, goals2d)
    monkeypatch.setattr(planning, "plan", no_planning)
    result = ev.evaluate('{"PTV": {"weight": -5, "dose_Gy": 78}}')
    assert not result.valid and not result.passed
    assert "no plan was made" in result.text and "missing structure" in result.text
