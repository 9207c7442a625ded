"""OpenAIEngine and whole runs against a fault-injecting OpenAI-compatible server (tests/faults/fault_server.py).

Every request loop here is bounded: RetryPolicy attempts, the server's max_requests and lifetime, the run's iterations.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))
from arithmetic_domain import ArithmeticDomain, Target  # noqa: E402
from fault_helpers import arithmetic_replies, check_record, is_optimizer_request  # noqa: E402
from fault_server import RETRYABLE, UNUSABLE, FaultServer  # noqa: E402

from tgdomains.engines import EngineError, OpenAIEngine, RetryPolicy  # noqa: E402
from tgdomains.run import optimize  # noqa: E402
from tgdomains.strategies.tgd import Chain  # noqa: E402

MESSAGES = [{"role": "user", "content": "Say <IMPROVED_VARIABLE>4 * 6</IMPROVED_VARIABLE>."}]
FAST = RetryPolicy(attempts=8, base_delay_s=0.001, max_delay_s=0.01)
TARGET = Target("t997", 997)  # prime: `k * 10` never reaches it, so runs stop at their iteration budget




def engine_for(server: FaultServer, retry: RetryPolicy = FAST, timeout_s: float = 0.3, **kw) -> OpenAIEngine:
    return OpenAIEngine("gpt-4o-mini", base_url=server.base_url, api_key="test", timeout_s=timeout_s, retry=retry,
                        **kw)


def echo(messages):
    return messages[-1]["content"]


# -- the engine alone -------------------------------------------------------------------------------------------


def test_transient_faults_are_retried_counted_and_usage_is_metered():
    script = ["timeout", "429", "500", "502", "503", "cut", "no_choices", "latency"]
    with FaultServer(echo, script=script, timeout_sleep_s=2.0, latency_s=0.02, max_requests=20) as server:
        engine = engine_for(server, timeout_s=0.25)
        completion = engine.generate(MESSAGES)
    assert completion.text == MESSAGES[0]["content"]
    assert server.served == script
    u = engine.usage.snapshot()
    assert u["llm_failures"] == 7 and u["llm_calls"] == 1
    assert (u["prompt_tokens"], u["completion_tokens"]) == (server.delivered["prompt_tokens"],
                                                            server.delivered["completion_tokens"])
    assert u["cost_usd"] > 0  # gpt-4o-mini has a price


def test_retry_after_is_honoured_and_capped():
    with FaultServer(echo, script=["429", "429"], retry_after_s=0.4) as server:
        # base delay 1 ms: only Retry-After explains a wait
        engine = engine_for(server, retry=RetryPolicy(attempts=3, base_delay_s=0.001, max_delay_s=5.0))
        t0 = time.monotonic()
        engine.generate(MESSAGES)
        waited = time.monotonic() - t0
    assert waited >= 0.8 and engine.usage.failures == 2
    with FaultServer(echo, script=["429"], retry_after_s=30) as server:
        engine = engine_for(server, retry=RetryPolicy(attempts=3, base_delay_s=0.001, max_delay_s=0.05))
        t0 = time.monotonic()
        engine.generate(MESSAGES)
        assert time.monotonic() - t0 < 10  # capped at max_delay_s, not 30 s


def test_backoff_grows_without_retry_after():
    with FaultServer(echo, script=["500", "500", "500"]) as server:
        engine = engine_for(server, retry=RetryPolicy(attempts=4, base_delay_s=0.05, max_delay_s=1.0))
        t0 = time.monotonic()
        engine.generate(MESSAGES)
        waited = time.monotonic() - t0
    # delays 0.05, 0.1, 0.2 s, each jittered to between half and all of it
    assert waited >= (0.05 + 0.1 + 0.2) / 2 and server.served == ["500", "500", "500", "ok"]


def test_bad_request_fails_at_once_with_the_servers_message():
    with FaultServer(echo, script=["400"]) as server:
        engine = engine_for(server)
        with pytest.raises(EngineError, match=r"refused the request \(400\).*bad request \(injected\)"):
            engine.generate(MESSAGES)
    assert server.served == ["400"] and engine.usage.failures == 0 and engine.usage.calls == 0


def test_an_endpoint_that_keeps_failing_raises_after_the_last_attempt():
    with FaultServer(echo, ratios={"503": 1}, max_requests=50) as server:
        engine = engine_for(server, retry=RetryPolicy(attempts=3, base_delay_s=0.001, max_delay_s=0.01))
        with pytest.raises(EngineError, match=r"failed 3 times; last error: .*503"):
            engine.generate(MESSAGES)
    assert server.served == ["503"] * 3 and engine.usage.failures == 3


def test_unusable_200_replies_come_back_as_text_for_the_optimizer_to_judge():
    with FaultServer(echo, script=["empty", "null", "untagged", "unclosed", "wrong_format"]) as server:
        engine = engine_for(server)
        texts = [engine.generate(MESSAGES).text for _ in range(5)]
    assert texts == ["", "", "Say 4 * 6.", "Say <IMPROVED_VARIABLE>4 * 6", server.wrong_format]
    assert engine.usage.failures == 0 and engine.usage.calls == 5


def test_truncated_json_is_retried():
    with FaultServer(echo, script=["truncated"]) as server:
        engine = engine_for(server)
        assert engine.generate(MESSAGES).text == MESSAGES[0]["content"]
    assert server.served == ["truncated", "ok"] and engine.usage.failures == 1


def test_the_fault_server_is_bounded():
    with pytest.raises(ValueError, match="unknown fault kind"):
        FaultServer(script=["teapot"])
    with FaultServer(echo, max_requests=2) as server:
        engine = engine_for(server)
        engine.generate(MESSAGES)
        engine.generate(MESSAGES)
        with pytest.raises(EngineError, match=r"request limit \(2\) reached"):
            engine.generate(MESSAGES)
    server = FaultServer(echo, lifetime_s=0.2).start()
    server._threads[0].join(timeout=5)  # serve_forever returns once the watchdog stopped it
    assert not server._threads[0].is_alive()


# -- whole runs -------------------------------------------------------------------------------------------------

# One scripted iteration after another: the optimizer's requests (step, then repair) get these behaviours; the
# critic's requests are all answered. Expected step status and problem for each iteration.
PLAN = [
    (["ok"], "updated", ""),
    (["untagged", "ok"], "repaired", "no <IMPROVED_VARIABLE>"),
    (["429", "ok"], "updated", ""),
    (["wrong_format", "empty"], "failed", "not an integer arithmetic expression"),
    (["timeout", "500", "ok"], "updated", ""),
    (["unclosed", "ok"], "repaired", "is not closed"),
    (["503", "502", "cut"], "failed", "engine error: EngineError"),  # every attempt failed
    (["null", "null"], "failed", "after repair: no <IMPROVED_VARIABLE>"),
    (["400"], "failed", "refused the request (400)"),
    (["latency"], "updated", ""),
]
PLAN_FAILURES = 1 + 2 + 3  # retried faults: the 429, the timeout and 500, the three 5xx/cut of iteration 7


class EditsOnly(Chain):
    """The chain without its restarts: every iteration is a TGD step (feedback, step, repair), so each planned fault
    meets one (the product's chain answers a failed step with a new value from scratch)."""

    @staticmethod
    def _stalled(run) -> bool:
        return False


@pytest.fixture(scope="module")
def scripted_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("scripted") / "run"
    script = [kind for kinds, _, _ in PLAN for kind in kinds]
    with FaultServer(arithmetic_replies(), script=script, applies=is_optimizer_request, timeout_sleep_s=2.0,
                     latency_s=0.02, max_requests=100) as server:
        engine = engine_for(server, retry=RetryPolicy(attempts=3, base_delay_s=0.001, max_delay_s=0.01))
        result = optimize(ArithmeticDomain(), TARGET, engine=engine, run_dir=run_dir, iterations=len(PLAN),
                          strategy=EditsOnly(), progress=False)
    return result, server, engine, run_dir


def test_scripted_faults_run_finishes_and_its_record_says_what_happened(scripted_run):
    result, server, engine, run_dir = scripted_run
    assert not server.script, "the run did not meet every scripted fault"
    steps, best = check_record(run_dir, iterations=len(PLAN))
    assert result.stop_reason == f"iteration budget ({len(PLAN)}) reached" == best["stop_reason"]
    assert [s["status"] for s in steps[1:]] == [status for _, status, _ in PLAN]
    for step, (_, _, problem) in zip(steps[1:], PLAN, strict=True):
        assert problem in step["problem"]
        if step["status"] == "failed":  # the last good value is kept
            assert step["value"] == steps[step["parent"]]["value"]
    assert best["usage"]["unusable_replies"] == sum(status in ("failed", "repaired") for _, status, _ in PLAN)
    # every reply the client could read is one counted call with the tokens the server reported
    assert best["usage"]["llm_calls"] == server.delivered["replies"] == engine.usage.calls
    assert best["usage"]["prompt_tokens"] == server.delivered["prompt_tokens"]
    assert best["usage"]["completion_tokens"] == server.delivered["completion_tokens"]
    assert engine.usage.failures == PLAN_FAILURES


def test_scripted_faults_run_record_counts_endpoint_failures(scripted_run):
    result, server, engine, run_dir = scripted_run
    best = json.loads((run_dir / "best.json").read_text())
    assert best["usage"]["llm_failures"] == PLAN_FAILURES


RATIOS = {"ok": 14, "latency": 2, "timeout": 1, "429": 2, "500": 1, "502": 1, "503": 1, "cut": 1, "no_choices": 1,
          "truncated": 1, "empty": 1, "null": 1, "untagged": 2, "unclosed": 1, "wrong_format": 2}


def test_random_faults_run_keeps_its_best_and_accounts_for_every_reply(tmp_path):
    iterations = 20
    with FaultServer(arithmetic_replies(), ratios=RATIOS, seed=11, timeout_sleep_s=2.0, latency_s=0.02,
                     max_requests=400) as server:
        engine = engine_for(server, retry=RetryPolicy(attempts=4, base_delay_s=0.001, max_delay_s=0.01))
        result = optimize(ArithmeticDomain(), TARGET, engine=engine, run_dir=tmp_path / "r", iterations=iterations,
                          progress=False)
    steps, best = check_record(tmp_path / "r", iterations=iterations)
    served = server.counts
    assert sum(served[k] for k in RETRYABLE + UNUSABLE) >= 10, served  # the seed really injects faults
    assert result.stop_reason == best["stop_reason"] == f"iteration budget ({iterations}) reached"
    # the best is what the real evaluator says of the best value
    assert ArithmeticDomain().evaluate(best["value"], TARGET).to_dict() == best["evaluation"]
    assert result.best_value == best["value"]
    statuses = [s["status"] for s in steps[1:]]
    assert set(statuses) <= {"updated", "repaired", "failed", "duplicate", "unchanged"}
    for s in steps[1:]:
        if s["status"] in ("failed", "repaired"):
            assert s["problem"], s
        if s["status"] == "failed":
            assert s["value"] == steps[s["parent"]]["value"]
    unusable_to_optimizer = sum(kind in UNUSABLE for kind, req in zip(server.served, server.requests, strict=True)
                                if is_optimizer_request(req["messages"]))
    repaired_or_failed = sum(st in ("repaired", "failed") for st in statuses)
    assert repaired_or_failed == best["usage"]["unusable_replies"] >= 1
    assert statuses.count("repaired") <= unusable_to_optimizer
    assert best["usage"]["llm_calls"] == server.delivered["replies"] == engine.usage.calls
    assert best["usage"]["prompt_tokens"] == server.delivered["prompt_tokens"]
    print(f"\nfaults served: {dict(served)}; statuses: {dict(Counter(statuses))}; record usage: {best['usage']}")


def test_a_reply_with_half_an_emoji_does_not_kill_the_run(tmp_path):
    def reply(messages):
        if is_optimizer_request(messages):
            return "<IMPROVED_VARIABLE>4 * 6</IMPROVED_VARIABLE>"
        return "Nearly there \ud83d"  # the JSON escape \ud83d without its pair decodes to a lone surrogate

    with FaultServer(reply, max_requests=20) as server:
        result = optimize(ArithmeticDomain(), Target("t", 24), engine=engine_for(server), run_dir=tmp_path / "r",
                          iterations=3, progress=False)
    assert result.passed
    check_record(tmp_path / "r")
