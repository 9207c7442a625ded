"""Engine wrappers: cache keys, the cache switch, record/replay, usage."""

import pytest

from tgdomains.engines import (
    CachedEngine,
    CassetteMiss,
    RecordingEngine,
    ReplayEngine,
    Request,
    ScriptedEngine,
)

MSG = [{"role": "user", "content": "hello"}]


def test_cache_key_covers_every_sampling_parameter():
    base = Request.build("m", MSG, temperature=0.0, seed=1)
    assert base.key == Request.build("m", MSG, temperature=0.0, seed=1).key
    for other in [Request.build("m", MSG, temperature=0.7, seed=1), Request.build("m", MSG, temperature=0.0, seed=2),
                  Request.build("m2", MSG, temperature=0.0, seed=1), Request.build("m", MSG, max_tokens=5, seed=1),
                  Request.build("m", [{"role": "user", "content": "hello!"}], seed=1)]:
        assert other.key != base.key


def test_cache_serves_repeats_and_separates_seeds(tmp_path):
    inner = ScriptedEngine(["a", "b", "c"])
    engine = CachedEngine(inner, tmp_path / "cache.sqlite")
    assert engine.generate(MSG, seed=1).text == "a"
    hit = engine.generate(MSG, seed=1)
    assert hit.text == "a" and hit.cached
    assert engine.generate(MSG, seed=2).text == "b"
    assert engine.generate(MSG, seed=1, temperature=0.5).text == "c"
    assert len(inner.requests) == 3 and engine.usage.cache_hits == 1 and engine.usage.calls == 3
    # a new process (new wrapper, same file) still hits
    again = CachedEngine(ScriptedEngine([]), tmp_path / "cache.sqlite")
    assert again.generate(MSG, seed=2).text == "b"


def test_cache_can_be_turned_off(tmp_path):
    inner = ScriptedEngine(["a", "b"])
    engine = CachedEngine(inner, tmp_path / "cache.sqlite", enabled=False)
    assert [engine.generate(MSG, seed=1).text for _ in range(2)] == ["a", "b"]
    assert engine.usage.cache_hits == 0 and not (tmp_path / "cache.sqlite").exists()


def test_recording_replays_byte_for_byte(tmp_path):
    cassette = tmp_path / "run.jsonl"
    rec = RecordingEngine(ScriptedEngine(["first ünïcode", "second", "third"]), cassette)
    asked = [[{"role": "user", "content": q}] for q in ("q1", "q2", "q1")]
    recorded = [rec.generate(m, seed=7).text for m in asked]
    replay = ReplayEngine(cassette)
    assert [replay.generate(m, seed=7).text for m in asked] == recorded
    assert replay.usage.prompt_tokens == rec.usage.prompt_tokens
    assert replay.misses == 0
    with pytest.raises(CassetteMiss):
        replay.generate([{"role": "user", "content": "never asked"}], seed=7)
    assert replay.misses == 1  # counted even where a run loop swallows the error as a failed step


def test_usage_is_metered_per_engine():
    engine = ScriptedEngine(["x" * 40])
    engine.generate([{"role": "user", "content": "y" * 400}])
    snap = engine.usage.snapshot()
    assert snap["llm_calls"] == 1 and snap["prompt_tokens"] == 100 and snap["completion_tokens"] == 10
