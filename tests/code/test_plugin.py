"""The code domain through the core: plug-in registration, a scripted-LLM optimization, baselines and the CLI."""

from __future__ import annotations

import json

import pytest

from domains import code
from domains.code.plugin import CodeDomain
from tgdomains.domain import ParseError, get_domain
from tgdomains.engines.scripted import ScriptedEngine

TRAP_WRONG = "def trap(height):\n    return sum(height)\n"
TRAP_RIGHT = ("def trap(height):\n"
              "    left, right = 0, len(height) - 1\n"
              "    best_left = best_right = water = 0\n"
              "    while left < right:\n"
              "        if height[left] < height[right]:\n"
              "            best_left = max(best_left, height[left])\n"
              "            water += best_left - height[left]\n"
              "            left += 1\n"
              "        else:\n"
              "            best_right = max(best_right, height[right])\n"
              "            water += best_right - height[right]\n"
              "            right -= 1\n"
              "    return water\n")


def tagged(program: str) -> str:
    return f"Here is the fix.\n<IMPROVED_VARIABLE>\n```python\n{program}```\n</IMPROVED_VARIABLE>"


@pytest.fixture()
def trap():
    return code.find_problem(code.load_problems(), "trapping-rain-water")


def all_text(engine: ScriptedEngine) -> str:
    return json.dumps(engine.requests)


def test_registered_as_the_code_domain():
    domain = get_domain("code")
    assert isinstance(domain, CodeDomain)
    assert domain.objectives(None) == {"visible_pass_rate": "max", "code_lines": "min"}


def test_the_domain_keeps_the_contract():
    from tgdomains.checks import check_domain

    engine = ScriptedEngine([tagged(TRAP_WRONG)])  # the problem has no starting code: a zero-shot first program
    assert check_domain(CodeDomain(), {"task_id": "trapping-rain-water"}, engine=engine)


def test_optimize_fixes_a_wrong_zero_shot_program(trap, tmp_path):
    engine = ScriptedEngine([f"```python\n{TRAP_WRONG}```",  # zero-shot first program
                             "It sums the heights instead of the water held between taller bars.",  # feedback
                             tagged(TRAP_RIGHT)])  # the step
    result = code.optimize(trap, engine=engine, strategy="chain", iterations=3, run_dir=tmp_path / "run",
                           progress=False)
    assert result.passed and result.best_value == TRAP_RIGHT
    assert [s.evaluation.passed for s in result.steps] == [False, True]
    assert "trap([0, 1, 0, 2, 1, 0, 1, 3, 2, 1, 2, 1]) expected 6, got 14" in result.steps[0].evaluation.text
    assert result.final["hidden_pass_rate"] == 1.0 and result.final["hidden_total"] == len(trap.hidden()) == 30
    assert len(engine.requests) == 3
    sent = all_text(engine)
    assert "Keep the signature `def trap(height: List[int]) -> int:`" in sent
    leaked = [t.call for t in trap.hidden() if t.call not in {v.call for v in trap.visible_tests} and t.call in sent]
    assert leaked == []


def test_a_signature_change_is_repaired_not_evaluated(trap, tmp_path):
    changed = TRAP_RIGHT.replace("def trap(height)", "def trap(heights, n)")
    engine = ScriptedEngine([TRAP_WRONG, "Compute the water, not the sum.", tagged(changed), tagged(TRAP_RIGHT)])
    result = code.optimize(trap, engine=engine, strategy="chain", iterations=1, run_dir=tmp_path / "run",
                           progress=False)
    assert result.passed
    repair = engine.requests[3]["messages"][-1]["content"]
    assert "changes the signature to `trap(heights, n)`; keep `trap(height)`" in repair


def test_given_starting_code_needs_no_llm_call(trap):
    trap.starting_code = TRAP_RIGHT
    engine = ScriptedEngine([])
    start = CodeDomain().initial(trap, engine)
    assert start.value == TRAP_RIGHT and engine.requests == []
    trap.starting_code = None
    with pytest.raises(ValueError, match="no starting code"):
        CodeDomain().initial(trap, None)


def test_parse_rejects_a_reply_without_the_entry_point(trap):
    with pytest.raises(ParseError, match="does not define the entry point `trap`"):
        CodeDomain().parse("def solve(h):\n    return 0\n", trap)


def test_zero_shot_baseline_samples_within_its_call_budget(trap, tmp_path):
    engine = ScriptedEngine([TRAP_WRONG, TRAP_WRONG, tagged(TRAP_RIGHT), TRAP_WRONG])
    result = code.optimize(trap, engine=engine, strategy="zero-shot", iterations=10, llm_call_budget=4,
                           run_dir=tmp_path / "zs", progress=False)
    assert result.passed and result.usage["llm_calls"] == 3 and len(engine.requests) == 3
    assert [r["temperature"] for r in engine.requests] == [0.0, 0.8, 0.8]  # the first is the domain's initial
    assert result.final["hidden_pass_rate"] == 1.0
    assert [s.status for s in result.steps] == ["initial", "duplicate", "updated"]


def test_reflexion_baseline_reflects_on_the_failing_tests(trap, tmp_path):
    engine = ScriptedEngine([TRAP_WRONG, "The sum is wrong. " + tagged(TRAP_WRONG.replace("sum", "max")),
                             "Still wrong; use two pointers. " + tagged(TRAP_RIGHT)])
    result = code.optimize(trap, engine=engine, strategy="reflexion", iterations=10, llm_call_budget=5,
                           run_dir=tmp_path / "rx", progress=False)
    assert result.passed and result.usage["llm_calls"] == 3
    reflect_prompt = engine.requests[1]["messages"][-1]["content"]
    assert "expected 6, got 14" in reflect_prompt
    assert result.final["hidden_passed"] == result.final["hidden_total"] == 30
    spent = code.optimize(trap, engine=ScriptedEngine([TRAP_WRONG] * 3), strategy="reflexion", iterations=10,
                          llm_call_budget=3, run_dir=tmp_path / "spent", progress=False)
    assert not spent.passed and spent.usage["llm_calls"] == 3
    assert spent.stop_reason.startswith("LLM call budget spent")


def test_cli_evaluate_prints_the_evaluation(tmp_path, capsys):
    from tgdomains.cli import main

    program = tmp_path / "trap.py"
    program.write_text(TRAP_WRONG)
    assert main(["evaluate", "code", "--task-id", "trapping-rain-water", "--candidate", str(program), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["score"] == 0.0 and out["metrics"]["visible_total"] == 2 and "expected 9, got 16" in out["text"]


def test_load_errors_are_clear(tmp_path):
    domain = CodeDomain()
    with pytest.raises(ValueError, match="--task-id is needed"):
        domain.load({"problems": None})
    with pytest.raises(KeyError, match="no problem with id 'nope'"):
        domain.load({"task_id": "nope"})
    with pytest.raises(FileNotFoundError, match="--candidate .*no such file"):
        domain.load({"task_id": "trapping-rain-water", "candidate": str(tmp_path / "missing.py")})
    assert len(domain.load_many({"task_ids": "trapping-rain-water,burst-balloons"})) == 2


def test_report_draws_the_progress_plot(trap, tmp_path):
    pytest.importorskip("matplotlib")
    engine = ScriptedEngine([TRAP_WRONG, "feedback", tagged(TRAP_RIGHT)])
    result = code.optimize(trap, engine=engine, strategy="chain", iterations=1, run_dir=tmp_path / "run",
                           progress=False)
    (png,) = CodeDomain().report(str(result.run_dir), str(tmp_path / "report"))
    assert png.endswith(".png") and (tmp_path / "report" / "code_progress.png").stat().st_size > 1000
