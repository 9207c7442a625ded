"""Every strategy under the one run loop: the same budgets, the same record, resume from the run directory alone, and
SIGKILL at random moments with no complete step lost or rewritten.

The LLM is scripted from the request alone (`strategy_worker.HashEngine`); the evaluator is the real
ArithmeticDomain.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import pytest

FAULTS = Path(__file__).resolve().parents[1] / "faults"
sys.path.insert(0, str(FAULTS))
import strategy_worker  # noqa: E402
from arithmetic_domain import ArithmeticDomain  # noqa: E402
from kill_loop import kill_until_done  # noqa: E402
from strategy_worker import STRATEGIES, TARGET, HashEngine  # noqa: E402

from tgdomains import strategies  # noqa: E402
from tgdomains.records import RunRecord, StepStatus  # noqa: E402
from tgdomains.run import optimize, resume  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
NAMES = list(STRATEGIES)


def settings(name: str) -> dict:
    return {k: v for k, v in STRATEGIES[name].items() if k != "iterations"}


def width(name: str) -> int:
    return strategies.make_strategy(name, **settings(name)).width()


def check_tree(steps) -> None:
    """ids are line indices; parents and originals of duplicates are earlier steps."""
    assert [s.id for s in steps] == list(range(len(steps)))
    assert steps[0].parent is None and steps[0].status is StepStatus.INITIAL
    for s in steps[1:]:
        assert 0 <= s.parent < s.id
        if s.duplicate_of is not None:
            assert steps[s.duplicate_of].value == s.value and steps[s.duplicate_of].evaluated
    distinct = [s.value for s in steps if s.evaluated]
    assert len(distinct) == len(set(distinct))


def test_the_core_strategies_are_named_and_unknown_names_are_clear_errors():
    assert set(NAMES) <= set(strategies.names())
    with pytest.raises(ValueError, match="unknown strategy 'annealing'.*chain"):
        strategies.make_strategy("annealing")
    with pytest.raises(TypeError, match="strategy 'reflexion' has no setting momentum"):
        strategies.make_strategy("reflexion", momentum=3)
    with pytest.raises(TypeError, match="has no setting populaton"):
        optimize(ArithmeticDomain(), TARGET, engine=HashEngine(False), strategy="population", populaton=3)


@pytest.mark.parametrize("name", NAMES)
def test_every_strategy_writes_the_same_record(name, tmp_path):
    domain = ArithmeticDomain()
    result = optimize(domain, TARGET, engine=HashEngine(False), strategy=name, run_dir=tmp_path / "r",
                      progress=False, **STRATEGIES[name])
    record = RunRecord(tmp_path / "r")
    steps, run, best = record.read_steps(repair=False), record.read_config(), record.read_best()
    assert [s.to_dict() for s in steps] == [s.to_dict() for s in result.steps]
    check_tree(steps)
    assert run["strategy"] == best["strategy"] == result.strategy == name
    assert best["usage"]["evaluations"] == len(domain.evaluated) == len(set(domain.evaluated))
    assert best["usage"]["llm_calls"] == sum(s.usage["llm_calls"] for s in steps)
    assert best["value"] == max(steps, key=lambda s: s.rank()).value == result.best_value
    assert result.stop_reason == f"iteration budget ({STRATEGIES[name]['iterations']}) reached"


@pytest.mark.parametrize("name", NAMES)
def test_every_strategy_keeps_the_llm_call_budget(name, tmp_path):
    engine = HashEngine(False)
    result = optimize(ArithmeticDomain(), TARGET, engine=engine, strategy=name, run_dir=tmp_path / "r",
                      progress=False, iterations=500, llm_call_budget=9, **settings(name))
    # checked before every call: concurrent calls of one iteration may each pass the check once
    assert 9 <= engine.usage.calls <= 9 + width(name) - 1
    assert result.stop_reason.startswith("LLM call budget spent")
    assert result.usage["llm_calls"] == engine.usage.calls  # calls a spent budget cut short are counted too


@pytest.mark.parametrize("name", NAMES)
def test_every_strategy_keeps_the_token_budget(name, tmp_path):
    engine = HashEngine(False)
    result = optimize(ArithmeticDomain(), TARGET, engine=engine, strategy=name, run_dir=tmp_path / "r",
                      progress=False, iterations=500, token_budget=3000, **settings(name))
    spent = engine.usage.prompt_tokens + engine.usage.completion_tokens
    assert 3000 <= spent <= 3000 + width(name) * 1000  # no call of this script is near 1000 tokens
    assert result.stop_reason.startswith("token budget spent")
    assert result.usage["prompt_tokens"] + result.usage["completion_tokens"] == spent


@pytest.mark.parametrize("name", NAMES)
def test_every_strategy_keeps_the_evaluation_budget(name, tmp_path):
    domain = ArithmeticDomain()
    result = optimize(domain, TARGET, engine=HashEngine(False), strategy=name, run_dir=tmp_path / "r",
                      progress=False, iterations=500, evaluation_budget=7, **settings(name))
    assert len(domain.evaluated) == result.usage["evaluations"] <= 7
    assert result.stop_reason in ("evaluation budget (7) reached", "iteration budget (500) reached")


@pytest.mark.parametrize("name", NAMES)
def test_every_strategy_stops_at_the_time_budget_between_iterations(name, tmp_path):
    domain = ArithmeticDomain()

    def slow(value):
        time.sleep(0.03)
        return domain.evaluate(value, TARGET)

    result = optimize(domain, TARGET, engine=HashEngine(False), strategy=name, run_dir=tmp_path / "r",
                      progress=False, iterations=10_000, time_budget_s=0.3, evaluate=slow, **settings(name))
    assert result.stop_reason == "time budget (0.3 s) reached"
    assert all(s.evaluation.text for s in result.steps)  # every recorded step ran to its end


@pytest.mark.parametrize("name", NAMES)
def test_resume_from_the_run_directory_alone(name, tmp_path):
    first = optimize(ArithmeticDomain(), TARGET, engine=HashEngine(False), strategy=name, run_dir=tmp_path / "r",
                     progress=False, **{**STRATEGIES[name], "iterations": 2})
    domain = ArithmeticDomain()  # not registered: resume is told the domain; the instance comes from the directory
    more = resume(tmp_path / "r", engine=HashEngine(False), domain=domain, iterations=4, progress=False)
    whole = optimize(ArithmeticDomain(), TARGET, engine=HashEngine(False), strategy=name, run_dir=tmp_path / "w",
                     progress=False, **{**STRATEGIES[name], "iterations": 4})
    assert more.strategy == name and more.steps[:len(first.steps)] == first.steps
    assert [s.to_dict() | {"eval_s": 0, "step_s": 0, "elapsed_s": 0} for s in more.steps] == \
        [s.to_dict() | {"eval_s": 0, "step_s": 0, "elapsed_s": 0} for s in whole.steps]
    assert not set(domain.evaluated) & {s.value for s in first.steps}  # nothing evaluated twice


def test_another_strategy_can_continue_a_record(tmp_path):
    optimize(ArithmeticDomain(), TARGET, engine=HashEngine(False), run_dir=tmp_path / "r", iterations=3,
             progress=False)
    more = resume(tmp_path / "r", engine=HashEngine(False), domain=ArithmeticDomain(), strategy="population",
                  iterations=5, progress=False)
    check_tree(more.steps)
    assert more.strategy == "population" and more.steps[-1].iteration == 5


# -- kill at any point ----------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_sigkill_and_resume_lose_no_step(name, tmp_path):
    rng = random.Random(f"kill-{name}")
    # each start is killed after 0-4 new steps plus a jitter, sometimes at once (kill_loop.wait_to_kill)
    kills = kill_until_done([str(FAULTS / "strategy_worker.py"), str(tmp_path / "killed"), name],
                            tmp_path / "killed" / "steps.jsonl", rng, deadline_s=180, starts=60,
                            most_new_steps=4, jitter_s=0.05)
    steps = RunRecord(tmp_path / "killed").read_steps(repair=False)
    check_tree(steps)
    best = RunRecord(tmp_path / "killed").read_best()
    assert best["value"] == max(steps, key=lambda s: s.rank()).value
    assert steps[-1].iteration == STRATEGIES[name]["iterations"]
    assert len(kills) >= 3, kills
    if width(name) == 1:  # one proposal per iteration: nothing in flight is half-written, so the whole run is
        reference = strategy_worker.run(str(tmp_path / "reference"), name, jitter=False)  # the unkilled one
        timing = {"eval_s": 0, "step_s": 0, "elapsed_s": 0}
        assert [s.to_dict() | timing for s in steps] == [s.to_dict() | timing for s in reference.steps]
