"""Batches: many instances at once, locally (threads + evaluator processes) and on a local Ray cluster."""

import os
from pathlib import Path

import pytest
from arithmetic_domain import ArithmeticDomain, Target, tagged

from tgdomains.batch import optimize_many
from tgdomains.engines import RecordingEngine, ReplayEngine, ScriptedEngine


def _model(messages):
    """A deterministic stand-in model: proposes `number * 1` once it has seen the target."""
    text = messages[-1]["content"]
    if "Feedback on it" in text:
        target = text.split("equal to ")[1].split(".")[0]
        return tagged(f"{target} * 1")
    return "aim for the target"


TARGETS = [Target(f"n{n}", n) for n in (5, 24, 99, 7)]


def test_local_batch_optimizes_every_instance(tmp_path):
    summary = optimize_many(ArithmeticDomain(), TARGETS, engine=ScriptedEngine(_model), out_dir=tmp_path,
                            workers=4, progress=False, iterations=3)
    assert summary["overall"]["completion_rate"] == 1.0 and summary["overall"]["errors"] == 0
    assert {r["instance"]: r["best_value"] for r in summary["instances"]} == {
        "n5": "5 * 1", "n24": "24 * 1", "n99": "99 * 1", "n7": "7 * 1"}
    assert all((tmp_path / t.id / "steps.jsonl").exists() for t in TARGETS)
    assert (tmp_path / "batch.json").exists()


def test_one_failing_instance_does_not_stop_the_batch(tmp_path):
    def model(messages):
        if "equal to 13" in messages[-1]["content"]:
            raise RuntimeError("endpoint down for this one")
        return _model(messages)

    summary = optimize_many(ArithmeticDomain(), [Target("n13", 13), Target("n5", 5)], engine=ScriptedEngine(model),
                            out_dir=tmp_path, workers=2, progress=False, iterations=2)
    rows = {r["instance"]: r for r in summary["instances"]}
    assert rows["n5"]["passed"] and not rows["n13"]["passed"]
    assert rows["n13"]["stop_reason"].startswith("iteration budget")  # the run survived its engine errors


@pytest.mark.slow
def test_ray_batch_matches_the_local_batch_on_a_replayed_cassette(tmp_path):
    ray = pytest.importorskip("ray")
    cassette = tmp_path / "cassette.jsonl"
    local = optimize_many(ArithmeticDomain(), TARGETS, engine=RecordingEngine(ScriptedEngine(_model), cassette),
                          out_dir=tmp_path / "local", workers=4, progress=False, iterations=3)
    # Ray workers are fresh interpreters: they find the test domain through PYTHONPATH.
    os.environ["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        remote = optimize_many(ArithmeticDomain(), TARGETS, engine=ReplayEngine(cassette), out_dir=tmp_path / "ray",
                               ray_address="local", progress=False, iterations=3)
    finally:
        ray.shutdown()
    strip = lambda s: [(r["instance"], r["best_value"], r["score"], r["iterations"]) for r in s["instances"]]  # noqa: E731
    assert strip(remote) == strip(local)
