"""The sample-repair-select strategy with a scripted model and the real sandbox: it repairs a concrete visible failure
with the failing call in view and no critic call, asks for inputs once a program passes, keeps going after the first
visible pass until the passing programs agree, and returns the majority's program; a killed run resumes exactly."""

from __future__ import annotations

import json

import pytest

from domains.code.evaluator import Problem
from domains.code.plugin import CodeDomain
from domains.code.sample_repair_select import concrete_failure, generated_calls
from domains.code.sandbox import TestCase
from tests.code.conftest import FAST
from tgdomains.engines.scripted import ScriptedEngine
from tgdomains.run import optimize, resume

HIDDEN_CALL, HIDDEN_OUT = "f(-123457)", "123457"
ABS = Problem(id="abs", statement="Return the absolute value of x.", entry_point="f",
              signature="def f(x: int) -> int:",
              visible_tests=[TestCase("f(1)", "1"), TestCase("f(2)", "2"), TestCase("f(0)", "0")],
              hidden_tests=[TestCase(HIDDEN_CALL, HIDDEN_OUT), TestCase("f(-4)", "4"), TestCase("f(6)", "6")])

IDENTITY = "def f(x):\n    return x\n"  # passes the visible tests, fails the hidden negatives
ABS_1 = "def f(x):\n    return abs(x)\n"
ABS_2 = "def f(x):\n    return x if x >= 0 else -x\n"
OFF_BY_ONE = "def f(x):\n    return x + 1\n"


def program(code: str) -> str:
    return f"<IMPROVED_VARIABLE>\n```python\n{code}```\n</IMPROVED_VARIABLE>"


def critique_then(code: str) -> str:
    return "The function adds one; return x unchanged for non-negative x.\n" + program(code)


INPUTS_REPLY = "<CALLS>\nf(-3)\nf(7)\nassert f(-10) == 10\nf(__import__('os').getpid())\nprint(1)\nf(1)\n</CALLS>"


@pytest.fixture(scope="module")
def domain():
    d = CodeDomain(FAST)
    yield d
    d.close()


def run_abs(domain, tmp_path, replies, name="run", **settings):
    engine = ScriptedEngine(replies)
    result = optimize(domain, ABS, engine=engine, strategy="sample-repair-select", run_dir=tmp_path / name,
                      progress=False, **{"iterations": 20, "llm_call_budget": 8, **settings})
    return result, engine


def test_generated_calls_keep_literal_calls_of_the_entry_point_only():
    calls = generated_calls(INPUTS_REPLY + "\nf(*[1])\ng(3)\nf(x=2)\n```\nf( -3 )", ABS, 10)
    # the visible call f(1) and the repeat f( -3 ) are dropped; asserts give their call; code is never kept
    assert calls == ["f(-3)", "f(7)", "f(-10)", "f(x=2)"]
    assert generated_calls(INPUTS_REPLY, ABS, 2) == ["f(-3)", "f(7)"]


def test_concrete_failure_means_a_wrong_value_or_an_exception_not_a_timeout():
    assert concrete_failure("2 of 3 visible tests pass. Failing:\n- f(2) expected 2, got 3", True)
    assert concrete_failure("0 of 1 visible tests pass. Failing:\n- f(2) expected 2, but it raised "
                            "ZeroDivisionError at line 2", True)
    assert not concrete_failure("2 of 3 visible tests pass. Failing:\n- f(9) expected 9, but it timed out: 1 s", True)
    assert concrete_failure("The code does not compile: invalid syntax (line 2). No test ran.", False)
    assert not concrete_failure("The program could not be run: the sandbox worker died.", False)


def test_selection_returns_the_programs_that_agree_not_the_first_visible_pass(domain, tmp_path):
    replies = [program(IDENTITY), INPUTS_REPLY, program(ABS_1), program(ABS_2)]
    result, engine = run_abs(domain, tmp_path, replies)

    steps = result.steps
    assert [s.value for s in steps if s.evaluated] == [IDENTITY, ABS_1, ABS_2]  # it went on after the first pass
    assert steps[1].feedback.splitlines()[1:] == ["f(-3)", "f(7)", "f(-10)"]  # the inputs, recorded in their step
    assert not steps[1].evaluated
    assert result.best_value == ABS_1 and result.stop_reason == "passed"
    selection = result.final["selection"]
    assert selection["first_pass_step"] == 0 and selection["chosen_step"] == 2
    assert selection["votes"] == [2, 1] and selection["inputs"] == 3 and selection["clear"]
    assert result.final["hidden_pass_rate"] == 1.0  # the first visible pass would have failed the negatives
    best = json.loads((result.run_dir / "best.json").read_text())
    assert best["id"] == 2 and best["selection"]["chosen_step"] == 2
    # the inputs request asks for calls, never shows a hidden test; no request does
    assert "test_inputs" in json.loads((result.run_dir / "run.json").read_text())["versions"]["prompts"]
    asked = json.dumps(engine.requests)
    assert "Write 8 different calls of `f`" in asked
    assert HIDDEN_CALL not in asked and HIDDEN_OUT not in asked


def test_a_sample_repeating_a_program_votes_for_it(domain, tmp_path):
    replies = [program(IDENTITY), INPUTS_REPLY, program(ABS_1), program(IDENTITY), program(ABS_2)]
    result, engine = run_abs(domain, tmp_path, replies)
    selection = result.final["selection"]
    assert result.steps[3].duplicate_of == 0  # not evaluated again, but counted
    assert selection["votes"] == [2, 1] and selection["chosen_step"] == 0 and selection["clear"]
    assert result.best_value == IDENTITY and len(engine.requests) == 4  # two votes of two: no fifth call


def test_repair_shows_the_failing_call_and_makes_no_critic_call(domain, tmp_path):
    replies = [program(OFF_BY_ONE), critique_then(IDENTITY), INPUTS_REPLY, program(ABS_1), program(ABS_1)]
    result, engine = run_abs(domain, tmp_path, replies)
    repair = engine.requests[1]["messages"][-1]["content"]
    assert "f(1) expected 1, got 2" in repair and "<VARIABLE>" in repair  # one call: the evaluation is the loss
    assert result.steps[1].feedback.startswith("(repair of step #0")
    assert result.steps[1].value == IDENTITY and result.steps[1].evaluation.passed
    assert len(engine.requests) == 5 and result.usage["llm_calls"] == 5
    assert result.best_value == ABS_1  # the repaired program passed the visible tests, then lost the vote


def test_agree_zero_stops_at_the_first_visible_pass(domain, tmp_path):
    result, engine = run_abs(domain, tmp_path, [program(IDENTITY)], agree=0)
    assert result.stop_reason == "passed" and len(engine.requests) == 1 and "selection" not in result.final


def test_no_usable_input_keeps_the_first_pass_and_says_so(domain, tmp_path):
    result, _ = run_abs(domain, tmp_path, [program(IDENTITY), "I cannot think of inputs."])
    assert result.stop_reason == "passed" and result.best_value == IDENTITY
    assert result.steps[1].problem == "no usable call of the entry point in the reply"
    assert result.final["selection"]["inputs"] == 0
    assert "first program that passed" in result.final["selection"]["agreement"]


def test_a_killed_run_resumed_writes_the_steps_of_an_unbroken_run(domain, tmp_path):
    replies = [program(OFF_BY_ONE), critique_then(IDENTITY), INPUTS_REPLY, program(ABS_2), program(OFF_BY_ONE),
               program(ABS_1)]
    whole, _ = run_abs(domain, tmp_path, replies, name="whole")
    cut, _ = run_abs(domain, tmp_path, replies[:3], name="cut", llm_call_budget=3)
    assert cut.stop_reason.startswith("LLM call budget") or "budget" in cut.stop_reason
    resumed = resume(cut.run_dir, engine=ScriptedEngine(replies[3:]), domain=domain, instance=ABS, progress=False,
                     llm_call_budget=8)
    def strip(steps):
        return [(s.value, s.parent, s.status, s.feedback, s.evaluation.passed) for s in steps]

    assert strip(resumed.steps) == strip(whole.steps)
    assert resumed.best_value == whole.best_value == ABS_2


def test_the_bench_row_gives_the_hidden_verdict_of_the_first_pass_the_selection_overruled(domain, tmp_path):
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "quality" / "run.py"
    spec = importlib.util.spec_from_file_location("quality_bench_srs", path)
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench  # dataclasses look their module up while the file executes
    spec.loader.exec_module(bench)
    result, _ = run_abs(domain, tmp_path, [program(IDENTITY), INPUTS_REPLY, program(ABS_1), program(ABS_2)])
    row = bench.selection_row(result.final["selection"], result.steps, result.final, domain.finalize, ABS)
    assert row["first_pass_step"] == 0 and row["chosen_step"] == 2
    assert row["first_pass_hidden_pass_rate"] == pytest.approx(1 / 3)  # the identity passes f(6) only
    assert row["chosen_hidden_pass_rate"] == 1.0
    table = bench.selection_table([{"instance": "abs", "method": "sample+select", "selection": row}])
    assert "| abs | sample+select | #0 | #2 | 2/1 | 3 | 0.333 | 1 |" in table
    assert all(m.domain in (None, "code") for m in bench.LLM_METHODS)
    assert "sample+select" in {m.name for m in bench.LLM_METHODS if m.domain == "code"}


TRAP_TWO_POINTERS = """def trap(height):
    left, right, best_left, best_right, water = 0, len(height) - 1, 0, 0, 0
    while left < right:
        if height[left] < height[right]:
            best_left = max(best_left, height[left])
            water += best_left - height[left]
            left += 1
        else:
            best_right = max(best_right, height[right])
            water += best_right - height[right]
            right -= 1
    return water
"""
TRAP_PREFIX = """def trap(height):
    n = len(height)
    if n == 0:
        return 0
    left, right = [0] * n, [0] * n
    left[0], right[-1] = height[0], height[-1]
    for i in range(1, n):
        left[i] = max(left[i - 1], height[i])
    for i in range(n - 2, -1, -1):
        right[i] = max(right[i + 1], height[i])
    return sum(min(l, r) - h for l, r, h in zip(left, right, height))
"""
TRAP_CRASHES_ON_EMPTY = TRAP_PREFIX.replace("    if n == 0:\n        return 0\n", "")


def test_on_a_shipped_problem_the_program_that_fails_a_generated_input_loses(domain, tmp_path):
    from domains.code.problems import find_problem, load_problems

    problem = find_problem(load_problems(), "trapping-rain-water")
    inputs = "trap([])\ntrap([5])\ntrap([2, 0, 2])\ntrap([3, 3, 3])"
    replies = [program(TRAP_CRASHES_ON_EMPTY), inputs, program(TRAP_TWO_POINTERS), program(TRAP_PREFIX)]
    result = optimize(domain, problem, engine=ScriptedEngine(replies), strategy="sample-repair-select",
                      run_dir=tmp_path / "trap", progress=False, iterations=10, llm_call_budget=8)
    selection = result.final["selection"]
    assert selection["first_pass_step"] == 0 and selection["inputs"] == 4
    assert selection["groups"] == [[2, 3], [0]] and selection["votes"] == [2, 1]
    assert result.best_value == TRAP_TWO_POINTERS


def test_without_hidden_tests_the_result_still_reports_the_agreement(domain, tmp_path):
    no_hidden = Problem(id="abs-visible-only", statement=ABS.statement, entry_point="f", signature=ABS.signature,
                        visible_tests=list(ABS.visible_tests))
    result = optimize(domain, no_hidden, engine=ScriptedEngine([program(ABS_1), INPUTS_REPLY, program(ABS_2)]),
                      strategy="sample-repair-select", run_dir=tmp_path / "r", progress=False, iterations=10)
    assert result.final["hidden_total"] == 0
    assert result.final["selection"]["agreement"] == "2 of 2 passing samples return the same on all 3 generated inputs"
