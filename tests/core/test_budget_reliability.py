"""Budgets hold: tokens and cost overshoot by at most the one call that crossed them; wall time stops between steps.

The truth is the wrapped engine's own meter (what was really spent), not the run record.
"""

from __future__ import annotations

import itertools
import json
import sys
import threading
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))
from arithmetic_domain import ArithmeticDomain, Target, tagged  # noqa: E402
from fault_helpers import check_record, is_optimizer_request  # noqa: E402

from tgdomains.engines import Completion, Request, ScriptedEngine, Usage  # noqa: E402
from tgdomains.engines.budget import BudgetExceeded, RunEngine  # noqa: E402
from tgdomains.run import optimize  # noqa: E402

TARGET = Target("t997", 997)




class MeteredEngine(ScriptedEngine):
    """A ScriptedEngine with a price, that also remembers the largest single call (tokens and dollars)."""

    def __init__(self, responses, usd_per_token: float = 1e-5) -> None:
        super().__init__(responses)
        self.usd_per_token = usd_per_token
        self.largest_tokens = 0
        self.largest_cost = 0.0

    def cost(self, usage: Usage) -> float:
        return usage.total_tokens * self.usd_per_token

    def _complete(self, request: Request) -> Completion:
        c = super()._complete(request)
        self.largest_tokens = max(self.largest_tokens, c.usage.total_tokens)
        self.largest_cost = max(self.largest_cost, self.cost(c.usage))
        return c

    def spent(self) -> tuple[int, float]:
        return self.usage.prompt_tokens + self.usage.completion_tokens, self.usage.cost_usd


def replies(feedback_words: list[int], repair_every: int = 0):
    counter = itertools.count(1)

    def reply(messages):
        n = next(counter)
        if not is_optimizer_request(messages):
            return "more " * feedback_words[n % len(feedback_words)]
        if repair_every and n % repair_every == 0:
            return "no tags"
        return tagged(f"{n} * 3")

    return reply


def run(tmp: Path, engine, **kw):
    return optimize(ArithmeticDomain(), TARGET, engine=engine, run_dir=tmp, progress=False, **kw)


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(budget=st.integers(1, 6000), words=st.lists(st.integers(0, 300), min_size=1, max_size=5),
       repair_every=st.sampled_from([0, 2, 3, 5]), strategy=st.sampled_from(["chain", "reflexion"]))
def test_token_budget_is_overshot_by_at_most_one_call(tmp_path_factory, budget, words, repair_every, strategy):
    engine = MeteredEngine(replies(words, repair_every))
    result = run(tmp_path_factory.mktemp("tok"), engine, iterations=200, token_budget=budget, strategy=strategy)
    tokens, _ = engine.spent()
    assert tokens <= budget + engine.largest_tokens
    if result.stop_reason.startswith("token budget spent"):
        assert tokens >= budget
    else:  # 200 iterations within budget: only possible for big budgets
        assert result.stop_reason == "iteration budget (200) reached" and tokens < budget


@settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(budget=st.floats(0.0005, 0.05), words=st.lists(st.integers(0, 300), min_size=1, max_size=5))
def test_cost_budget_is_overshot_by_at_most_one_call(tmp_path_factory, budget, words):
    engine = MeteredEngine(replies(words), usd_per_token=1e-5)
    d = tmp_path_factory.mktemp("cost")
    result = run(d, engine, iterations=300, cost_budget=budget)
    _, cost = engine.spent()
    assert cost <= budget + engine.largest_cost + 1e-12
    assert result.stop_reason.startswith("cost budget spent")
    best = json.loads((d / "best.json").read_text())
    assert best["stop_reason"] == result.stop_reason


def test_a_budget_spent_before_the_first_step_stops_at_once(tmp_path):
    engine = MeteredEngine(replies([50]))
    result = run(tmp_path / "r", engine, iterations=10, token_budget=1)
    # iteration 1's feedback call crossed the budget; its step call was refused; nothing after
    assert len(engine.requests) == 1 and result.stop_reason.startswith("token budget spent")
    assert [s.iteration for s in result.steps] == [0]
    check_record(tmp_path / "r")


def test_the_run_record_counts_the_call_that_crossed_the_budget(tmp_path):
    engine = MeteredEngine(replies([50]))
    run(tmp_path / "r", engine, iterations=10, token_budget=1)
    best = json.loads((tmp_path / "r" / "best.json").read_text())
    tokens, _ = engine.spent()
    assert best["usage"]["prompt_tokens"] + best["usage"]["completion_tokens"] == tokens
    assert best["usage"]["llm_calls"] == engine.usage.calls


def test_a_resumed_run_keeps_its_budget(tmp_path):
    budget = 2000
    first = MeteredEngine(replies([40]))
    run(tmp_path / "r", first, iterations=3, token_budget=budget)  # stopped early (as if killed) with budget left
    assert first.spent()[0] < budget
    second = MeteredEngine(replies([40]))
    run(tmp_path / "r", second, iterations=100, token_budget=budget, resume=True)
    largest = max(first.largest_tokens, second.largest_tokens)
    assert first.spent()[0] + second.spent()[0] <= budget + largest


def test_time_budget_stops_between_steps_and_says_why(tmp_path):
    domain = ArithmeticDomain()

    def slow_evaluate(value):
        time.sleep(0.05)
        return domain.evaluate(value, TARGET)

    budget = 0.4
    engine = ScriptedEngine(replies([5]))
    result = optimize(domain, TARGET, engine=engine, run_dir=tmp_path / "r", evaluate=slow_evaluate,
                      iterations=1000, time_budget_s=budget, progress=False)
    steps, best = check_record(tmp_path / "r")
    assert result.stop_reason == best["stop_reason"] == f"time budget ({budget} s) reached"
    assert best["wall_s"] >= budget
    # every step ran to its end (scored, recorded): the budget is checked between steps, never inside one
    assert all(s["evaluation"]["text"] and s["eval_s"] >= 0.05 for s in steps)
    assert len(steps) < 1000


def test_a_step_longer_than_the_time_budget_is_finished_not_cut(tmp_path):
    domain = ArithmeticDomain()

    def slow_evaluate(value):
        time.sleep(0.3)
        return domain.evaluate(value, TARGET)

    engine = ScriptedEngine(replies([5]))
    result = optimize(domain, TARGET, engine=engine, run_dir=tmp_path / "r", evaluate=slow_evaluate,
                      iterations=10, time_budget_s=0.1, progress=False)
    assert [s.iteration for s in result.steps] == [0] and engine.requests == []
    assert result.steps[0].eval_s >= 0.3 and result.stop_reason == "time budget (0.1 s) reached"
    check_record(tmp_path / "r")


class SlowScripted(ScriptedEngine):
    def _complete(self, request):
        time.sleep(0.2)  # every call in flight while the others check the budget
        return super()._complete(request)


def test_concurrent_calls_never_exceed_the_call_budget():
    """Best-of-4 sends its samples at once: before, all four passed the check of a budget with two calls left."""
    started = threading.Barrier(4, timeout=5)
    inner = SlowScripted(lambda messages: "reply")
    engine = RunEngine(inner, call_budget=2)
    outcomes = []

    def call():
        started.wait()
        try:
            outcomes.append(engine.generate([{"role": "user", "content": "hi"}]).text)
        except BudgetExceeded as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(inner.requests) == 2 == engine.usage.calls
    assert sorted(outcomes)[:2] == ["LLM call budget spent (0 made and 2 in flight >= 2)"] * 2
    assert outcomes.count("reply") == 2


def test_concurrent_samples_stay_inside_the_call_budget(tmp_path):
    samples = iter(range(10_000))
    engine = SlowScripted(lambda messages: tagged(f"{next(samples)} + 1"))
    result = optimize(ArithmeticDomain(), Target("t", 997), engine=engine, strategy="zero-shot", samples=4,
                      run_dir=tmp_path / "r", iterations=5, llm_call_budget=6, progress=False)
    assert len(engine.requests) == 6 and result.usage["llm_calls"] == 6
