"""Faults in the shared parts: one engine shared by a batch's threads against the fault-injecting server, the async
path, an evaluator worker process killed mid-batch, a Ray worker killed mid-task.

Replies come from `kill_worker.reply` (a function of the request alone) where results are compared with a run
that met no fault.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))
from arithmetic_domain import ArithmeticDomain, Target  # noqa: E402
from fault_helpers import check_record  # noqa: E402
from fault_server import RETRYABLE, UNUSABLE, FaultServer  # noqa: E402
from kill_worker import reply  # noqa: E402
from killing_domain import KillingDomain  # noqa: E402

from tgdomains.batch import optimize_many  # noqa: E402
from tgdomains.engines import OpenAIEngine, RetryPolicy, ScriptedEngine  # noqa: E402
from tgdomains.records import RunRecord  # noqa: E402

TARGETS = [Target(f"t{n}", n) for n in (997, 991, 983)]  # primes: no run passes, each goes to its last iteration
TIMING = ("eval_s", "step_s", "elapsed_s")
RATIOS = {"ok": 10, "latency": 2, "429": 1, "500": 1, "503": 1, "cut": 1, "no_choices": 1, "truncated": 1,
          "untagged": 1, "empty": 1}


def comparable(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in s.to_dict().items() if k not in TIMING} for s in RunRecord(run_dir).read_steps()]


def batch(domain, out: Path, **kw):
    kw.setdefault("engine", ScriptedEngine(reply))
    return optimize_many(domain, TARGETS, out_dir=out, workers=3, progress=False, iterations=6, **kw)


def a_value_of(run_dir: Path, step: int) -> str:
    return RunRecord(run_dir).read_steps()[step].value


# -- evaluator worker processes ---------------------------------------------------------------------------------


def test_a_killed_evaluator_worker_costs_a_retry_and_the_batch_is_unchanged(tmp_path):
    batch(ArithmeticDomain(), tmp_path / "reference", eval_workers=2)
    kill_on = a_value_of(tmp_path / "reference" / "t991", 3)  # mid-batch, in the middle of one run
    marker = tmp_path / "killed"
    summary = batch(KillingDomain(kill_on, marker), tmp_path / "b", eval_workers=2)
    assert marker.exists(), "the evaluator worker was never killed"
    assert summary["overall"]["errors"] == 0
    for target in TARGETS:
        assert comparable(tmp_path / "b" / target.id) == comparable(tmp_path / "reference" / target.id), target.id


def test_a_candidate_that_kills_every_worker_is_reported_and_the_others_are_untouched(tmp_path):
    batch(ArithmeticDomain(), tmp_path / "reference", eval_workers=2)
    kill_on = a_value_of(tmp_path / "reference" / "t991", 3)
    summary = batch(KillingDomain(kill_on, tmp_path / "killed", always=True), tmp_path / "b", eval_workers=2)
    assert summary["overall"]["errors"] == 0
    steps = RunRecord(tmp_path / "b" / "t991").read_steps()
    bad = [s for s in steps if s.value == kill_on and s.evaluated]
    assert len(bad) == 1 and not bad[0].evaluation.valid
    assert "worker process died on this candidate twice" in bad[0].evaluation.text
    for target in TARGETS:
        if target.id != "t991" and kill_on not in [s.value for s in RunRecord(tmp_path / "b" / target.id).read_steps()]:
            assert comparable(tmp_path / "b" / target.id) == comparable(tmp_path / "reference" / target.id)


# -- one engine, many threads, a faulty endpoint ---------------------------------------------------------------


def test_a_batch_whose_threads_share_one_engine_survives_a_faulty_endpoint(tmp_path):
    with FaultServer(reply, ratios=RATIOS, seed=3, timeout_sleep_s=2.0, latency_s=0.02, max_requests=600) as server:
        engine = OpenAIEngine("gpt-4o-mini", base_url=server.base_url, api_key="test", timeout_s=0.5,
                              retry=RetryPolicy(attempts=6, base_delay_s=0.001, max_delay_s=0.01))
        summary = optimize_many(ArithmeticDomain(), TARGETS, engine=engine, out_dir=tmp_path / "b", workers=3,
                                progress=False, iterations=8)
    faults = sum(server.counts[k] for k in RETRYABLE + UNUSABLE + ("truncated",))
    assert faults >= 10, server.counts
    assert summary["overall"]["errors"] == 0
    usage = Counter()
    for target in TARGETS:
        steps, best = check_record(tmp_path / "b" / target.id, iterations=8)
        usage.update({k: best["usage"][k] for k in ("llm_calls", "prompt_tokens", "completion_tokens")})
        for s in steps:
            assert s["status"] != "failed" or s["value"] == steps[s["parent"]]["value"]
    # every reply the server delivered is counted once, in the run whose thread asked for it
    answered = sum(server.counts[k] for k in ("ok", "latency", *UNUSABLE))  # 200s with a message (no_choices has none)
    assert usage["llm_calls"] == answered == engine.usage.calls
    assert usage["prompt_tokens"] == server.delivered["prompt_tokens"]
    assert usage["completion_tokens"] == server.delivered["completion_tokens"]
    print(f"\nshared engine, 3 threads: {faults} faults in {len(server.served)} requests: {dict(server.counts)}")


def test_concurrent_async_calls_on_one_engine_survive_a_faulty_endpoint():
    prompts = [[{"role": "user", "content": f"Say <IMPROVED_VARIABLE>{i} * 7</IMPROVED_VARIABLE>."}] for i in range(24)]

    async def all_of_them(engine):
        return await asyncio.gather(*(engine.agenerate(p) for p in prompts))

    retryable = {"ok": 4, "429": 1, "500": 1, "503": 1, "cut": 1, "no_choices": 1, "truncated": 1, "latency": 1}
    with FaultServer(lambda m: m[-1]["content"], ratios=retryable, seed=5, latency_s=0.02,
                     max_requests=400) as server:
        engine = OpenAIEngine("gpt-4o-mini", base_url=server.base_url, api_key="test", timeout_s=0.5,
                              retry=RetryPolicy(attempts=10, base_delay_s=0.001, max_delay_s=0.01))
        completions = asyncio.run(all_of_them(engine))
    assert [c.text for c in completions] == [p[0]["content"] for p in prompts]  # each reply to its own request
    faults = len(server.served) - server.counts["ok"] - server.counts["latency"]
    assert faults >= 10 and engine.usage.failures == faults
    assert engine.usage.calls == 24 == server.counts["ok"] + server.counts["latency"]
    assert engine.usage.prompt_tokens == server.delivered["prompt_tokens"]
    print(f"\nasync: 24 concurrent calls, {faults} faults in {len(server.served)} requests")


# -- Ray --------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_ray_worker_killed_mid_task_is_retried_and_the_results_equal_the_local_run(tmp_path):
    ray = pytest.importorskip("ray")
    batch(ArithmeticDomain(), tmp_path / "local", eval_workers=1)
    kill_on = a_value_of(tmp_path / "local" / "t991", 3)
    marker = tmp_path / "killed"
    tests = Path(__file__).resolve().parents[1]
    path = os.pathsep.join([str(tests.parent), str(tests / "faults"), str(tests / "core")])  # for the workers
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    try:
        summary = batch(KillingDomain(kill_on, marker), tmp_path / "ray", ray_address="local")
    finally:
        ray.shutdown()
    assert marker.exists(), "the Ray worker was never killed"
    assert summary["overall"]["errors"] == 0
    for target in TARGETS:
        assert comparable(tmp_path / "ray" / target.id) == comparable(tmp_path / "local" / target.id), target.id
    killed_pid = int(marker.read_text())
    assert killed_pid > 0
    print(f"\nRay worker {killed_pid} killed mid-task; the retried task resumed its run directory")
    assert json.loads((tmp_path / "ray" / "batch.json").read_text())["overall"]["instances"] == 3
