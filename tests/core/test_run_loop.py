"""The run loop: selection, stopping, run records, resume, replay."""

import json

import pytest
from arithmetic_domain import ArithmeticDomain, Target, tagged

from tgdomains.engines import RecordingEngine, ReplayEngine, ScriptedEngine
from tgdomains.run import optimize


def _quiet(**kw):
    return dict(progress=False, **kw)


def test_run_stops_when_passed_and_writes_its_record(tmp_path):
    engine = ScriptedEngine(["fb", tagged("3 * 5"), "fb", tagged("4 * 6"), "unused"])
    result = optimize(ArithmeticDomain(), Target("t", 24), engine=engine, run_dir=tmp_path / "r", **_quiet())
    assert result.best_value == "4 * 6" and result.passed and result.stop_reason == "passed"
    steps = [json.loads(line) for line in (tmp_path / "r" / "steps.jsonl").read_text().splitlines()]
    assert [s["iteration"] for s in steps] == [0, 1, 2] and steps[2]["parent"] == 1
    assert steps[1]["feedback"] == "fb" and steps[1]["usage"]["llm_calls"] == 2
    best = json.loads((tmp_path / "r" / "best.json").read_text())
    assert best["value"] == "4 * 6" and best["final"] == {"length": 5} and best["usage"]["llm_calls"] == 4
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    assert run["versions"]["prompts"]["tgd_step"] and run["constraints"] == ["use only integers, +, - and *"]


def test_best_so_far_survives_a_worse_later_candidate(tmp_path):
    engine = ScriptedEngine(["fb", tagged("20 + 3"), "fb", tagged("1"), tagged("2")])
    result = optimize(ArithmeticDomain(), Target("t", 24), engine=engine, run_dir=tmp_path / "r", iterations=3,
                      **_quiet())
    assert [s.score for s in result.steps] == [-22, -1, -23, -22]
    assert result.best_value == "20 + 3" and result.stop_reason.startswith("iteration budget")


def test_same_candidate_is_never_scored_twice(tmp_path):
    domain = ArithmeticDomain()
    # the repeat of the current value is re-asked; a re-ask that repeats again (and again) leaves it unchanged
    # (iteration 2 restarts: a new value written from the start's evaluation)
    engine = ScriptedEngine(["fb", tagged("1 + 1"), tagged("1 + 1"), tagged("1 + 1"), tagged("2 * 2")])
    result = optimize(domain, Target("t", 24), engine=engine, run_dir=tmp_path / "r", iterations=2, **_quiet())
    assert domain.evaluated == ["1 + 1", "2 * 2"]
    assert result.steps[1].status == "unchanged" and "still a repeat" in result.steps[1].problem


def test_unusable_replies_keep_the_value_and_are_counted(tmp_path):
    # the second iteration reuses the first one's feedback (same parent, same evaluation): no second backward call
    engine = ScriptedEngine(["fb", "no tags", "still no tags", tagged("4 * 6")])
    result = optimize(ArithmeticDomain(), Target("t", 24), engine=engine, run_dir=tmp_path / "r", **_quiet())
    assert result.steps[1].status == "failed" and result.steps[1].value == "1 + 1"
    assert result.usage["unusable_replies"] == 1 and result.passed


def test_resume_continues_from_the_last_complete_step(tmp_path):
    run_dir = tmp_path / "r"
    script = ["fb1", tagged("2 * 5"), "fb2", tagged("3 * 5"), "fb3", tagged("4 * 6")]
    optimize(ArithmeticDomain(), Target("t", 24), engine=ScriptedEngine(script[:4]), run_dir=run_dir,
             iterations=2, **_quiet())
    # a kill mid-write leaves a torn line: it must be dropped, not duplicated or fatal
    with open(run_dir / "steps.jsonl", "a") as f:
        f.write('{"iteration": 3, "value": "tor')
    with pytest.raises(FileExistsError):
        optimize(ArithmeticDomain(), Target("t", 24), engine=ScriptedEngine([]), run_dir=run_dir, **_quiet())
    engine = ScriptedEngine(script[4:])
    result = optimize(ArithmeticDomain(), Target("t", 24), engine=engine, run_dir=run_dir, resume=True,
                      iterations=5, **_quiet())
    assert [s.iteration for s in result.steps] == [0, 1, 2, 3] and result.passed
    # momentum was rebuilt from the record: the resumed prompt remembers the first two attempts
    step_prompt = engine.requests[1]["messages"][-1]["content"]
    assert "| 1 + 1 |" in step_prompt and "| 2 * 5 |" in step_prompt


def test_a_recorded_run_replays_identically(tmp_path):
    def replies(messages):  # a deterministic "model" whose answers depend on the prompt
        text = messages[-1]["content"]
        if "<FEEDBACK>" in text or "Feedback on it" in text:
            return tagged("3 * 8" if "3 * 7" in text else "3 * 7")
        return "make it bigger"

    cassette = tmp_path / "cassette.jsonl"
    recorded = optimize(ArithmeticDomain(), Target("t", 24), engine=RecordingEngine(ScriptedEngine(replies),
                        cassette), run_dir=tmp_path / "a", seed=3, **_quiet())
    replayed = optimize(ArithmeticDomain(), Target("t", 24), engine=ReplayEngine(cassette), run_dir=tmp_path / "b",
                        seed=3, **_quiet())
    assert [s.value for s in replayed.steps] == [s.value for s in recorded.steps] == ["1 + 1", "3 * 7", "3 * 8"]
    assert [s.feedback for s in replayed.steps] == [s.feedback for s in recorded.steps]


def test_llm_call_budget_counts_repairs_too(tmp_path):
    engine = ScriptedEngine(["fb", "no tags", tagged("3 * 5"), "fb", tagged("4 * 6")])
    result = optimize(ArithmeticDomain(), Target("t", 24), engine=engine, run_dir=tmp_path / "r", iterations=10,
                      llm_call_budget=3, **_quiet())
    assert len(engine.requests) == 3 and result.usage["llm_calls"] == 3
    assert result.stop_reason.startswith("LLM call budget spent") and result.best_value == "3 * 5"


def test_evaluation_budget_stops_the_chain(tmp_path):
    engine = ScriptedEngine(["fb", tagged("2 * 5"), "fb", tagged("3 * 5"), "fb", tagged("4 * 6")])
    result = optimize(ArithmeticDomain(), Target("t", 24), engine=engine, run_dir=tmp_path / "r",
                      evaluation_budget=2, **_quiet())
    assert result.usage["evaluations"] == 2 and result.stop_reason == "evaluation budget (2) reached"
