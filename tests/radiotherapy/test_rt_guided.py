"""The LLM-guided Bayesian optimization (`guided-tpe`) and the configured TPE (`tpe`), on prostate-2d with a scripted
LLM: the schedule of LLM and TPE trials, the cap on LLM calls, what the LLM is shown, and exact resume."""

import json

import pytest

from domains.radiotherapy.plugin import RadiotherapyDomain
from tgdomains.engines.scripted import ScriptedEngine

pytest.importorskip("optuna")



def _plan_reply(messages) -> str:
    """A usable plan that depends only on the request (so a resumed run gets the same replies): the PTV weight
    grows with the prompt's length, so each request gives a new plan."""
    prompt = "".join(m["content"] for m in messages)
    plan = {"PTV": {"weight": 200 + len(prompt) % 997, "dose_Gy": 80},
            "rectum": {"weight": 20, "dose_Gy": 35}, "bladder": {"weight": 30, "dose_Gy": 40},
            "femoral_head_L": {"weight": 50, "dose_Gy": 25}, "femoral_head_R": {"weight": 50, "dose_Gy": 25},
            "body": {"weight": 40, "dose_Gy": 60}}
    return f"Raise the PTV weight.\n<IMPROVED_VARIABLE>{json.dumps(plan)}</IMPROVED_VARIABLE>"


def _origins(steps) -> str:
    """L for an LLM trial, T for a TPE trial, after the start."""
    return "".join("T" if s.feedback == "(TPE)" else "L" for s in steps[1:])


def _interleaved(**settings):
    """The bench's interleaved schedule (bench/quality/bench_strategies.py): LLM trials after every few TPE trials."""
    import importlib.util
    import sys
    from pathlib import Path

    here = Path(__file__).resolve().parents[2] / "bench" / "quality" / "bench_strategies.py"
    spec = importlib.util.spec_from_file_location("bench_strategies", here)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module.InterleavedGuidedTPE(**settings).check()


@pytest.mark.slow
def test_the_interleaved_schedule_runs_llm_trials_first_then_every_few_tpe_trials(domain, instance, tmp_path):
    from tgdomains.run import optimize

    engine = ScriptedEngine(_plan_reply)
    result = optimize(domain, instance, engine=engine, strategy=_interleaved(warm_start=2, every=3, llm_calls=4),
                      evaluation_budget=12, iterations=50, run_dir=tmp_path / "g", progress=False)
    assert _origins(result.steps) == "LLTTTLTTTLT"  # 2 warm-start trials, then one after every 3 TPE trials
    assert len(engine.requests) == 4 == result.usage["llm_calls"]
    assert result.usage["evaluations"] == 12
    # after the warm start the LLM steps from the study's best, shown the best other trials with their failures
    late = engine.requests[2]["messages"][-1]["content"]
    assert "Past attempts" in late and "fails: " in late
    assert json.loads(result.steps[6].value) and result.steps[6].parent == max(
        result.steps[:6], key=lambda s: s.rank()).id


def test_guided_tpe_by_default_asks_the_llm_for_the_first_two_trials_only(domain, instance, tmp_path):
    from tgdomains.run import optimize

    engine = ScriptedEngine(_plan_reply)
    result = optimize(domain, instance, engine=engine, strategy="guided-tpe", evaluation_budget=6, iterations=50,
                      run_dir=tmp_path / "g", progress=False)
    assert _origins(result.steps) == "LLTTT" and len(engine.requests) == 2


def test_guided_tpe_never_passes_its_llm_calls_even_with_re_asks(domain, instance, tmp_path):
    """Replies that repeat the start are re-asked (each re-ask one more call): the cap still holds, and the run goes
    on with TPE trials instead of stopping."""
    from tgdomains.run import optimize

    start = domain.initial(instance).value
    engine = ScriptedEngine(lambda messages: f"Same again.\n<IMPROVED_VARIABLE>{start}</IMPROVED_VARIABLE>")
    result = optimize(domain, instance, engine=engine, strategy="guided-tpe", evaluation_budget=6, iterations=50,
                      warm_start=4, llm_calls=4, run_dir=tmp_path / "g", progress=False)
    assert len(engine.requests) <= 4
    assert result.usage["llm_calls"] == len(engine.requests)
    assert result.usage["evaluations"] == 6 and "T" in _origins(result.steps)


@pytest.mark.slow
def test_a_killed_guided_run_resumes_to_the_same_steps(domain, instance, tmp_path):
    from tgdomains.run import optimize, resume

    settings = {"strategy": "guided-tpe", "iterations": 50, "warm_start": 3, "llm_calls": 3, "progress": False}
    whole = optimize(domain, instance, engine=ScriptedEngine(_plan_reply), evaluation_budget=9,
                     run_dir=tmp_path / "whole", **settings)
    optimize(domain, instance, engine=ScriptedEngine(_plan_reply), evaluation_budget=5, run_dir=tmp_path / "cut",
             **settings)
    resumed = resume(tmp_path / "cut", engine=ScriptedEngine(_plan_reply), evaluation_budget=9, progress=False)
    assert [s.value for s in resumed.steps] == [s.value for s in whole.steps]
    assert _origins(resumed.steps) == _origins(whole.steps) == "LLLTTTTT"


def test_an_llm_plan_outside_the_search_space_is_told_to_tpe_at_the_nearest_point(instance):
    from domains.radiotherapy.baselines import _distributions, _params

    distributions = _distributions(instance.case)
    plan = json.loads(RadiotherapyDomain().initial(instance).value)
    plan["rectum"]["weight"] = 0  # below TPE's log-uniform [1, 10000]
    assert _params(json.dumps(plan), distributions) is None  # `optuna` skips it
    assert _params(json.dumps(plan), distributions, clip=True)["rectum.weight"] == 1.0


def test_tpe_start_up_trials_grow_with_the_budget_up_to_optunas_ten():
    from domains.radiotherapy.baselines import startup_trials_for

    assert [startup_trials_for(n) for n in (5, 10, 40, 300)] == [3, 3, 8, 10]


def test_failing_goals_lists_every_failing_goal_on_one_line(domain, instance):
    from domains.radiotherapy.guided import failing_goals
    from tgdomains.records import Step, StepStatus

    evaluation = domain.evaluate(domain.initial(instance).value, instance)
    line = failing_goals(Step(id=0, iteration=0, value="", evaluation=evaluation, status=StepStatus.INITIAL))
    failed = [g for g in evaluation.details["goals"] if not g["met"]]
    assert line.startswith("fails: PTV D95") and line.count("(goal ") == len(failed) and "\n" not in line


def test_guided_tpe_settings_are_checked(domain):
    from tgdomains.strategies import make_strategy

    with pytest.raises(ValueError, match="llm_calls must be >= 0"):
        make_strategy("guided-tpe", domain, llm_calls=-1)
    with pytest.raises(ValueError, match="every must be >= 1"):
        _interleaved(every=0)


@pytest.mark.slow
def test_a_run_told_no_strategy_uses_the_domains_default(domain, tmp_path, capsys):
    """`tgdomains optimize radiotherapy` and `domains.radiotherapy.optimize` without a strategy run the domain's
    `default_strategy` (an LLM-free one needs no engine call)."""
    from domains import radiotherapy
    from tgdomains.cli import main

    assert main(["optimize", "radiotherapy", "--case", "prostate-2d", "--evaluation-budget", "2", "--run-dir",
                 str(tmp_path / "cli"), "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["strategy"] == domain.default_strategy
    result = radiotherapy.optimize("prostate-2d", evaluation_budget=2, run_dir=tmp_path / "api", progress=False)
    assert result.strategy == domain.default_strategy
