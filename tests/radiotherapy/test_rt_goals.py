import numpy as np
import pytest

from domains.radiotherapy.goals import Goal, GoalFileError, check_goals, load_goals

STRUCTURES = ["PTV", "rectum", "bladder", "femoral_head_L", "femoral_head_R", "body"]


def test_default_prostate_goals_match_the_issue(case2d):
    goals = load_goals(case2d.default_goals, STRUCTURES)
    described = [g.describe() for g in goals.goals]
    assert "PTV D95 >= 78 Gy" in described
    assert "PTV D2 <= 83.46 Gy" in described
    assert "rectum V70 < 20%" in described
    assert "bladder V80 < 15%" in described
    assert "femoral_head_L V50 < 5%" in described
    assert len(goals.goals) == 13
    assert goals.prescription_Gy == 78


def _text(goal_lines: str) -> str:
    return "prescription_Gy: 78\ngoals:\n" + goal_lines


@pytest.mark.parametrize(
    "item, message",
    [
        ('  - {structure: rectun, metric: V70, comparator: "<", value: 20}\n', r"line 4 .*unknown structure 'rectun'"),
        ('  - {structure: rectum, metric: W70, comparator: "<", value: 20}\n', r"line 4 .*field 'metric': 'W70'"),
        ('  - {structure: rectum, metric: D120, comparator: "<", value: 20}\n', r"field 'metric'"),
        ('  - {structure: rectum, metric: V70, comparator: "=<", value: 20}\n', r"line 4 .*field 'comparator': '=<'"),
        ('  - {structure: rectum, metric: V70, comparator: "<", value: twenty}\n', r"field 'value' must be a finite number"),
        ('  - {structure: rectum, metric: V70, comparator: "<", value: .nan}\n', r"field 'value'"),
        ('  - {structure: rectum, metric: V70, comparator: "<"}\n', r"missing field\(s\) value"),
        ('  - {structure: rectum, metric: V70, comparator: "<", value: 20, unit: pct}\n', r"unknown field\(s\) unit"),
        ("  - rectum V70 < 20\n", r"a goal must be a mapping"),
    ],
)
def test_goal_file_typos_name_the_line_and_field(item, message):
    good = '  - {structure: PTV, metric: D95, comparator: ">=", value: 78}\n'
    with pytest.raises(GoalFileError, match=message):
        load_goals(_text(good + item), STRUCTURES)


@pytest.mark.parametrize(
    "text, message",
    [
        ("goals: [\n", "not valid YAML"),
        ("- a\n- b\n", "expected a mapping with a 'goals' list"),
        ("goals: []\n", "non-empty list"),
        ("goals:\n  - {}\nprescripton_Gy: 78\n", "unknown top-level key"),
        ("prescription_Gy: -5\ngoals:\n  - {}\n", "prescription_Gy must be"),
    ],
)
def test_malformed_goal_files(text, message):
    with pytest.raises(GoalFileError, match=message):
        load_goals(text, STRUCTURES)


def test_missing_goal_file_is_named(tmp_path):
    with pytest.raises(GoalFileError, match="does not exist"):
        load_goals(tmp_path / "nope.yaml")


def test_goal_names_units_and_verdicts():
    g = Goal("rectum", "V70", "<", 20.0)
    assert g.name == "rectum_V70_pct" and g.unit == "%"
    assert g.met(19.9) and not g.met(20.0)
    assert g.violation(20.0) > 0  # a strict bound hit exactly still fails
    assert g.violation(30.0) == pytest.approx(0.5)
    d = Goal("PTV", "D95", ">=", 78.0)
    assert d.name == "PTV_D95_Gy"
    assert d.met(78.0)
    assert d.violation(74.1) == pytest.approx(3.9 / 78)
    assert Goal("PTV", "HI", "<=", 0.1).name == "PTV_HI"


def test_check_goals_on_a_hand_made_dose(case2d, goals2d):
    dose = np.zeros(case2d.dose_influence.shape[0])
    dose[case2d.structures["PTV"]] = 80.0  # the rectum/bladder overlap gets 80 too
    results = {r.goal.name: r for r in check_goals(goals2d, case2d, dose)}
    assert results["PTV_D95_Gy"].met and results["PTV_D95_Gy"].measured == 80.0
    expected_v70 = case2d.overlap_pct("rectum", "PTV")
    assert results["rectum_V70_pct"].measured == pytest.approx(expected_v70)
    assert results["femoral_head_L_V50_pct"].measured == 0.0
