"""The Engine contract: one chat completion in, text and token usage out."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Completion:
    text: str
    usage: Usage = field(default_factory=Usage)
    cached: bool = False
    failures: int = 0  # failed attempts (timeouts, 429, 5xx) the engine retried before this reply
    # Why decoding stopped, as the engine said: "stop" (the reply is complete), "length" (cut off at max_tokens),
    # None when the engine does not say (scripted replies, old cassettes).
    finish_reason: str | None = None


@dataclass(frozen=True)
class TokenProgress:
    """How far one request has got while its reply is being made (what a streaming engine reports).

    prompt_done:  prompt tokens processed so far (a prefix a local engine reused counts as processed);
    prompt_total: the prompt's length in tokens, when the engine knows it before the reply ends;
    generated:    reply tokens made so far.
    """

    prompt_done: int = 0
    prompt_total: int | None = None
    generated: int = 0


ProgressCallback = Callable[[TokenProgress], None]


@dataclass(frozen=True)
class ReplyFormat:
    """The shape a reply must have, for engines that can constrain decoding to it (see tgdomains.grammar).

    grammar:      a llama.cpp GBNF grammar of the whole reply (rule `root`);
    value_schema: JSON Schema (as JSON text) of the value inside the tags when the value is JSON, else None;
    max_tokens:   the token limit that fits a whole reply of this format (used when a request gives none).
    """

    name: str
    grammar: str
    value_schema: str | None = None
    max_tokens: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "grammar": self.grammar, "value_schema": self.value_schema,
                "max_tokens": self.max_tokens}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ReplyFormat | None:
        return cls(**data) if data else None


@dataclass(frozen=True)
class Request:
    """Everything that determines a reply; its `key` is what caches and cassettes are indexed by."""

    model: str
    messages: tuple[tuple[str, str], ...]
    temperature: float = 0.0
    max_tokens: int | None = None
    seed: int | None = None
    stop: tuple[str, ...] | None = None
    reply_format: ReplyFormat | None = None  # constrained decoding, where the engine supports it

    @classmethod
    def build(cls, model: str, messages: list[Message], temperature: float = 0.0, max_tokens: int | None = None,
              seed: int | None = None, stop: list[str] | tuple[str, ...] | None = None,
              reply_format: ReplyFormat | None = None) -> Request:
        return cls(model, tuple((m["role"], m["content"]) for m in messages), float(temperature), max_tokens, seed,
                   tuple(stop) if stop else None, reply_format)

    def chat(self) -> list[Message]:
        return [{"role": r, "content": c} for r, c in self.messages]

    def to_dict(self) -> dict[str, Any]:
        out = {"model": self.model, "messages": self.chat(), "temperature": self.temperature,
               "max_tokens": self.max_tokens, "seed": self.seed, "stop": list(self.stop) if self.stop else None}
        if self.reply_format is not None:  # absent otherwise: requests without a grammar keep their old keys
            out["reply_format"] = self.reply_format.to_dict()
        return out

    def options(self) -> dict[str, Any]:
        """The keyword arguments of `Engine.generate` that reproduce this request (what wrappers forward)."""
        options: dict[str, Any] = {"temperature": self.temperature, "max_tokens": self.max_tokens, "seed": self.seed,
                                   "stop": list(self.stop) if self.stop else None}
        if self.reply_format is not None:  # only then: an engine outside this package may not take the argument
            options["reply_format"] = self.reply_format
        return options

    @property
    def key(self) -> str:
        return key_of(self.to_dict())


def key_of(data: dict[str, Any]) -> str:
    blob = json.dumps(data, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


@runtime_checkable
class Engine(Protocol):
    """`reply_format` is optional: callers pass it only when they have one, engines that cannot constrain decoding
    ignore it (the parser and the repair request still apply)."""

    model: str

    def generate(self, messages: list[Message], *, temperature: float = 0.0, max_tokens: int | None = None,
                 seed: int | None = None, stop: list[str] | None = None) -> Completion: ...

    async def agenerate(self, messages: list[Message], *, temperature: float = 0.0, max_tokens: int | None = None,
                        seed: int | None = None, stop: list[str] | None = None) -> Completion: ...


@dataclass
class UsageMeter:
    """Counts calls, cache hits, tokens and cost of one engine (thread-safe: batches call concurrently)."""

    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    failures: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, usage: Usage, cost: float = 0.0, cached: bool = False, failures: int = 0) -> None:
        with self._lock:
            self.failures += failures
            if cached:
                self.cache_hits += 1
            else:
                self.calls += 1
                self.prompt_tokens += usage.prompt_tokens
                self.completion_tokens += usage.completion_tokens
                self.cost_usd += cost

    def __getstate__(self) -> dict:  # engines travel to worker processes and Ray tasks; locks cannot
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def failed(self, n: int = 1) -> None:
        with self._lock:
            self.failures += n

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return {"llm_calls": self.calls, "cache_hits": self.cache_hits, "prompt_tokens": self.prompt_tokens,
                    "completion_tokens": self.completion_tokens, "cost_usd": round(self.cost_usd, 6),
                    "llm_failures": self.failures}


class BaseEngine:
    """Shared plumbing: a usage meter, the async twin, and `generate` built on one `_complete(Request)` method."""

    model: str = "unknown"

    def __init__(self) -> None:
        self.usage = UsageMeter()

    def _complete(self, request: Request) -> Completion:
        raise NotImplementedError

    def _stream(self, request: Request, on_progress: ProgressCallback) -> Completion:
        """`_complete`, calling `on_progress` while the reply is made. The reply, its usage and finish reason are
        those `_complete` gives; an engine that cannot report progress (a cassette, a cache hit) just answers."""
        return self._complete(request)

    # Engines are pickled into worker processes and Ray tasks: per-process resources (locks, thread-local
    # database connections, HTTP clients, loaded models) are dropped and rebuilt lazily on the other side.
    _per_process = ("_lock", "_local", "_client", "_llama")

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in self._per_process}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._client = None
        self._llama = None

    def cost(self, usage: Usage) -> float:
        return 0.0

    def settings(self) -> dict[str, Any]:
        """What, besides the request, decides this engine's reply: the model file, default max_tokens, sampling
        parameters, the endpoint. Part of the reply cache's key, so a reply made under one setting is never served
        under another. Wrappers report their inner engine's."""
        return {}

    def settings_for(self, request: Request) -> dict[str, Any]:
        """`settings()` plus those that apply to `request` alone (the local engine's prompt lookup, used for some
        requests only): what the cache key and a cassette line hold. Wrappers report their inner engine's."""
        return self.settings()

    def generate(self, messages: list[Message], *, temperature: float = 0.0, max_tokens: int | None = None,
                 seed: int | None = None, stop: list[str] | None = None,
                 reply_format: ReplyFormat | None = None, on_progress: ProgressCallback | None = None) -> Completion:
        """One reply. `on_progress` (not part of the request: it changes nothing in the reply, the cache key or a
        cassette) is called with a `TokenProgress` while an engine that streams makes the reply."""
        request = Request.build(self.model, messages, temperature, max_tokens, seed, stop, reply_format)
        try:
            completion = self._complete(request) if on_progress is None else self._stream(request, on_progress)
        except Exception as exc:  # every wrapper (RunEngine, cache, recorder) counts the attempts that failed
            self.usage.failed(getattr(exc, "failures", 0))
            raise
        if isinstance(completion.text, str) and not completion.text.isascii():
            # a lone UTF-16 surrogate (half an emoji, sent as a JSON \ud83d escape) can be neither stored nor sent
            clean = completion.text.encode("utf-8", "replace").decode("utf-8")
            if clean != completion.text:
                completion = replace(completion, text=clean)
        self.usage.add(completion.usage, 0.0 if completion.cached else self.cost(completion.usage), completion.cached,
                       completion.failures)
        return completion

    async def agenerate(self, messages: list[Message], *, temperature: float = 0.0, max_tokens: int | None = None,
                        seed: int | None = None, stop: list[str] | None = None,
                        reply_format: ReplyFormat | None = None,
                        on_progress: ProgressCallback | None = None) -> Completion:
        # Engines block on I/O or a local model; a thread keeps the event loop free without a second code path.
        import asyncio  # imported here: it costs ~50 ms and only async callers need it

        return await asyncio.to_thread(self.generate, messages, temperature=temperature, max_tokens=max_tokens,
                                       seed=seed, stop=stop, reply_format=reply_format, on_progress=on_progress)

    def describe(self) -> str:
        return f"{type(self).__name__}(model={self.model!r})"


def forward(engine: Engine, request: Request, on_progress: ProgressCallback | None = None) -> Completion:
    """Ask `engine` for `request` (what a wrapper does); progress goes along only to engines of this package, so an
    engine written to the bare `Engine` protocol is called exactly as before."""
    if on_progress is not None and isinstance(engine, BaseEngine):
        return engine.generate(request.chat(), **request.options(), on_progress=on_progress)
    return engine.generate(request.chat(), **request.options())


def request_settings(engine: Engine, request: Request) -> dict[str, Any]:
    """`engine.settings_for(request)`, or `settings()` for an engine without it, or {} for one with neither."""
    per_request = getattr(engine, "settings_for", None)
    if per_request is not None:
        return per_request(request)
    return getattr(engine, "settings", dict)()


def estimate_tokens(text: str) -> int:
    """Rough token count (4 characters a token) for engines whose backend reports none."""
    return max(1, (len(text) + 3) // 4) if text else 0
