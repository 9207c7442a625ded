"""The reply cache keys on the request as the model saw it, and survives a corrupt or locked database.

Each test here failed before the fix it guards: a request without max_tokens was keyed without the engine's own
default (so a reply cached under one default was served under another), the grammar was not in the key, and a
damaged or locked database crashed the run.
"""

import sqlite3
import warnings

import pytest

from tgdomains.engines import CachedEngine, RecordingEngine, ReplayEngine, ScriptedEngine
from tgdomains.engines.cache import CacheWarning
from tgdomains.engines.local import LocalEngine
from tgdomains.grammar import reply_format

MSG = [{"role": "user", "content": "Say something."}]


class Configured(ScriptedEngine):
    """A scripted engine with settings of its own (as a local model's default max_tokens)."""

    def __init__(self, responses, **settings):
        super().__init__(responses, model="m")
        self._settings = settings

    def settings(self):
        return dict(self._settings)


def test_a_reply_cached_under_one_engine_default_is_not_served_under_another(tmp_path):
    path = tmp_path / "cache.sqlite"
    short = CachedEngine(Configured(["cut at 8 tokens"], default_max_tokens=8), path)
    assert short.generate(MSG).text == "cut at 8 tokens"
    long = CachedEngine(Configured(["the whole reply, 512 tokens"], default_max_tokens=512), path)
    assert long.generate(MSG).text == "the whole reply, 512 tokens" and long.usage.cache_hits == 0
    again = CachedEngine(Configured([], default_max_tokens=8), path)
    assert again.generate(MSG).text == "cut at 8 tokens" and again.usage.cache_hits == 1


def test_local_engine_settings_name_the_model_file_and_every_sampling_parameter(tmp_path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF" * 10)
    base = LocalEngine(gguf).settings()
    assert base["model_file"] == "m.gguf" and base["model_bytes"] == 40 and base["default_max_tokens"] == 512
    for change in ({"max_tokens": 64}, {"top_k": 1}, {"top_p": 0.5}, {"min_p": 0.0}, {"repeat_penalty": 1.1},
                   {"n_batch": 64}, {"chat_format": "chatml"}):
        assert LocalEngine(gguf, **change).settings() != base, change
    assert LocalEngine(gguf, n_threads=2).settings() == base  # threads do not change a reply


def test_the_grammar_is_part_of_the_key_and_of_the_cassette(tmp_path):
    grammar = reply_format()
    inner = ScriptedEngine(["free", "constrained"])
    cassette = tmp_path / "run.jsonl"
    engine = RecordingEngine(CachedEngine(inner, tmp_path / "cache.sqlite"), cassette)
    assert engine.generate(MSG).text == "free"
    assert engine.generate(MSG, reply_format=grammar).text == "constrained"
    assert engine.generate(MSG, reply_format=grammar).text == "constrained" and len(inner.requests) == 2
    assert inner.requests[1]["reply_format"]["grammar"] == grammar.grammar
    replay = ReplayEngine(cassette)
    assert replay.generate(MSG, reply_format=grammar).text == "constrained"
    assert replay.generate(MSG).text == "free"


def test_the_finish_reason_survives_the_cache(tmp_path):
    class Cut(ScriptedEngine):
        def _complete(self, request):
            from dataclasses import replace

            return replace(super()._complete(request), finish_reason="length")

    CachedEngine(Cut(["<IMPROVED_VARIABLE>half"]), tmp_path / "c.sqlite").generate(MSG)
    hit = CachedEngine(ScriptedEngine([]), tmp_path / "c.sqlite").generate(MSG)
    assert hit.cached and hit.finish_reason == "length"


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_corrupt_cache_is_moved_aside_and_rebuilt_never_a_crash_or_a_wrong_reply(tmp_path, damage):
    path = tmp_path / "cache.sqlite"
    if damage == "garbage":
        path.write_bytes(b"this is not a database" * 100)
    else:
        filler = CachedEngine(ScriptedEngine([f"old reply {i}" for i in range(300)]), path)
        for i in range(300):
            filler.generate([{"role": "user", "content": f"question {i} " + "x" * 500}])
        filler._db().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        filler._db().close()
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3] + b"\x00" * 512 + data[len(data) // 2:])  # a damaged middle
    engine = CachedEngine(ScriptedEngine(["fresh reply", "another"]), path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert engine.generate(MSG).text == "fresh reply"
    assert any(issubclass(w.category, CacheWarning) and "moved it to" in str(w.message) for w in caught)
    assert list(tmp_path.glob("cache.sqlite.corrupt-*"))
    assert CachedEngine(ScriptedEngine([]), path).generate(MSG).text == "fresh reply"  # the new cache works


def test_a_locked_cache_is_skipped_with_a_warning_and_the_reply_comes_from_the_engine(tmp_path):
    path = tmp_path / "cache.sqlite"
    CachedEngine(ScriptedEngine(["stored"]), path).generate(MSG)
    holder = sqlite3.connect(path, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")  # another process writing, for longer than our timeout
    try:
        engine = CachedEngine(ScriptedEngine(["from the engine"]), path, timeout_s=0.2)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            reply = engine.generate([{"role": "user", "content": "not cached yet"}]).text
        assert reply == "from the engine"
        assert any(issubclass(w.category, CacheWarning) and "locked" in str(w.message) for w in caught)
    finally:
        holder.rollback()
        holder.close()
    assert CachedEngine(ScriptedEngine([]), path).generate(MSG).text == "stored"  # nothing was lost


def test_the_reply_cache_lives_under_the_one_cache_root_at_the_same_path_as_before(monkeypatch, tmp_path):
    from pathlib import Path

    from tgdomains.caches import cache_dir
    from tgdomains.engines.cache import default_cache_path

    monkeypatch.setenv("TGDOMAINS_CACHE_DIR", str(tmp_path))
    assert default_cache_path() == tmp_path / "llm_cache.sqlite"
    assert default_cache_path().parent == cache_dir("docking").parent
    monkeypatch.delenv("TGDOMAINS_CACHE_DIR")
    assert default_cache_path() == Path.home() / ".cache" / "tgdomains" / "llm_cache.sqlite"


def test_a_cassette_imported_into_an_empty_cache_answers_its_requests_without_the_model(tmp_path):
    """A new machine re-recording after a change: what the committed cassette asked comes from the cache."""
    cassette = tmp_path / "run.jsonl"
    recorder = RecordingEngine(CachedEngine(Configured(["first", "second"], default_max_tokens=8),
                                            tmp_path / "old.sqlite"), cassette)
    recorder.generate(MSG)
    recorder.generate(MSG, temperature=0.7, seed=3, reply_format=reply_format())
    with open(cassette, "a") as f:
        f.write('{"key": "cut by a kill')  # a recording killed mid-line: skipped

    fresh = CachedEngine(Configured([], default_max_tokens=8), tmp_path / "new.sqlite")
    assert fresh.import_cassette(cassette) == 2
    assert fresh.import_cassette(cassette) == 0  # safe to import twice
    assert fresh.generate(MSG).text == "first"
    assert fresh.generate(MSG, temperature=0.7, seed=3, reply_format=reply_format()).text == "second"
    assert fresh.usage.cache_hits == 2
    other = CachedEngine(Configured(["from the model"], default_max_tokens=512), tmp_path / "new.sqlite")
    assert other.generate(MSG).text == "from the model"  # recorded under other settings: never served
