"""OpenAIEngine: any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp server) through the `openai` client."""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass, replace
from typing import Any

from tgdomains.engines.base import BaseEngine, Completion, ProgressCallback, Request, TokenProgress, Usage

# USD per million tokens (prompt, completion). Extend or override with `prices=` or `--price MODEL=IN,OUT`.
PRICES_PER_MILLION: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "o4-mini": (1.10, 4.40),
}


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay_s)
        return min(self.base_delay_s * 2 ** attempt, self.max_delay_s) * (0.5 + random.random() / 2)


class EngineError(RuntimeError):
    """An endpoint that kept failing after every retry; the message says what it answered last."""

    failures = 0  # failed attempts before giving up (counted by every engine the error passes through)
    status_code: int | None = None  # the HTTP status of a refused request


STRUCTURED_MODES = ("off", "llama.cpp", "vllm", "json_schema")


class OpenAIEngine(BaseEngine):
    """Chat completions against `base_url` (env OPENAI_BASE_URL) with `api_key` (env OPENAI_API_KEY).

    temperature, max_tokens and seed are always sent. Timeouts, 429 (honouring Retry-After) and 5xx are retried
    with exponential backoff; other errors (a bad key, a bad request) fail at once with the server's message.

    structured (env TGDOMAINS_STRUCTURED): how a request's reply format reaches the server —
      "off"         not sent: the reply is parsed from its tags, with one repair request when that fails;
      "llama.cpp"   the GBNF grammar in the body's `grammar` field (llama.cpp's server, llama-cpp-python's);
      "vllm"        the grammar as `structured_outputs.grammar` and `guided_grammar` (vLLM, new and old names);
      "json_schema" OpenAI's `response_format` with a JSON schema {critique, improved_variable}; the JSON reply is
                    turned back into tagged text, so the parser reads it as any other reply.
    A server that refuses the field (HTTP 400) gets the request again without it, and later requests go without
    it too (`describe()` says so): tags + repair, as with "off".

    Streaming: a request with a progress callback (a run that shows progress) is streamed, with
    `stream_options={"include_usage": True}` so the reply keeps the server's token counts, and comes back whole
    (text, usage, finish reason) as an unstreamed one would. A server that refuses streaming (HTTP 400) or answers
    without streaming gets unstreamed requests from then on.
    """

    def __init__(self, model: str | None = None, *, base_url: str | None = None, api_key: str | None = None,
                 timeout_s: float = 120.0, retry: RetryPolicy | None = None,
                 prices: dict[str, tuple[float, float]] | None = None, structured: str = "off") -> None:
        super().__init__()
        if structured not in STRUCTURED_MODES:
            raise ValueError(f"structured={structured!r}: choose one of {', '.join(STRUCTURED_MODES)}")
        self.structured = structured
        self.structured_refused = ""  # the server's answer when it refused the structured-output field
        self.streaming_refused = ""  # why streamed requests stopped (the server refused them or did not stream)
        self.model = model or os.environ.get("TGDOMAINS_MODEL") or "gpt-4o"
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self.prices = {**PRICES_PER_MILLION, **(prices or {})}
        self._client = None

    def client(self):
        if self._client is None:
            import openai  # heavy: imported on first call, never at `import tgdomains`

            # Our own retry loop (below) counts and reports retries; the client's would hide them.
            self._client = openai.OpenAI(base_url=self.base_url, timeout=self.timeout_s, max_retries=0,
                                         api_key=self.api_key or os.environ.get("OPENAI_API_KEY") or "not-needed")
        return self._client

    def cost(self, usage: Usage) -> float:
        price = self.prices.get(self.model)
        if price is None:
            return 0.0
        return (usage.prompt_tokens * price[0] + usage.completion_tokens * price[1]) / 1e6

    def settings(self) -> dict[str, Any]:
        return {"engine": "openai", "base_url": self.base_url or "https://api.openai.com/v1",
                "structured": "off" if self.structured_refused else self.structured}

    def _structured_fields(self, request: Request) -> dict[str, Any]:
        fmt = request.reply_format
        if fmt is None or self.structured == "off" or self.structured_refused:
            return {}
        if self.structured == "llama.cpp":
            return {"extra_body": {"grammar": fmt.grammar}}
        if self.structured == "vllm":
            return {"extra_body": {"structured_outputs": {"grammar": fmt.grammar}, "guided_grammar": fmt.grammar}}
        value = json.loads(fmt.value_schema) if fmt.value_schema else {"type": "string"}
        schema = {"type": "object", "additionalProperties": False, "required": ["critique", "improved_variable"],
                  "properties": {"critique": {"type": "string"}, "improved_variable": value}}
        return {"response_format": {"type": "json_schema",
                                    "json_schema": {"name": "reply", "strict": True, "schema": schema}}}

    def _complete(self, request: Request) -> Completion:
        return self._ask(request, None)

    def _stream(self, request: Request, on_progress: ProgressCallback) -> Completion:
        return self._ask(request, on_progress)

    def _ask(self, request: Request, on_progress: ProgressCallback | None) -> Completion:
        fields = self._structured_fields(request)
        try:
            completion = self._send(request, fields, on_progress)
        except EngineError as exc:
            if not fields or exc.status_code != 400:
                raise
            self.structured_refused = str(exc)  # tags + repair from now on
            completion = self._send(request, {}, on_progress)
            return replace(completion, failures=completion.failures + exc.failures + 1)
        if "response_format" in fields:
            completion = replace(completion, text=_tagged_from_json(completion.text))
        return completion

    def _send(self, request: Request, fields: dict[str, Any], on_progress: ProgressCallback | None = None
              ) -> Completion:
        import openai

        kwargs = {"model": self.model, "messages": request.chat(), "temperature": request.temperature, **fields}
        max_tokens = request.max_tokens or (request.reply_format.max_tokens if request.reply_format else None)
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        if request.seed is not None:
            kwargs["seed"] = request.seed
        if request.stop:
            kwargs["stop"] = list(request.stop)
        last: Exception | None = None
        failures = 0
        stream = on_progress is not None and not self.streaming_refused
        stream_refusal = ""  # a 400 to the streamed request: streaming is off once the unstreamed one succeeds
        for attempt in range(self.retry.attempts):
            try:
                if stream:
                    try:
                        return replace(self._streamed(kwargs, on_progress), failures=failures)
                    except _NotStreamed as exc:
                        self.streaming_refused = str(exc)
                        stream = False
                completion = _completion(self.client().chat.completions.create(**kwargs))
                if stream_refusal:
                    self.streaming_refused = stream_refusal
                return replace(completion, failures=failures)
            except (openai.APITimeoutError, openai.APIConnectionError, openai.RateLimitError,
                    openai.InternalServerError, _MalformedResponse, json.JSONDecodeError) as exc:
                last = exc
                failures += 1
                if attempt + 1 < self.retry.attempts:
                    time.sleep(self.retry.delay(attempt, _retry_after(exc)))
            except openai.APIStatusError as exc:
                if exc.status_code >= 500:  # 5xx not mapped to InternalServerError (502, 503, 504)
                    last = exc
                    failures += 1
                    if attempt + 1 < self.retry.attempts:
                        time.sleep(self.retry.delay(attempt, _retry_after(exc)))
                    continue
                if stream and exc.status_code == 400:  # perhaps the stream or its options: ask again unstreamed
                    stream, stream_refusal = False, f"refused a streamed request (400): {exc.message}"
                    continue
                error = EngineError(f"{self.base_url or 'OpenAI'} refused the request ({exc.status_code}): "
                                    f"{exc.message}")
                error.failures = failures
                error.status_code = exc.status_code
                raise error from exc
        error = EngineError(f"{self.base_url or 'OpenAI'} failed {self.retry.attempts} times; last error: "
                            f"{type(last).__name__}: {last}")
        error.failures = failures
        raise error from last

    def _streamed(self, kwargs: dict[str, Any], on_progress: ProgressCallback) -> Completion:
        """One streamed request, put back together: the text, the finish reason and the usage of the last chunk."""
        stream = self.client().chat.completions.create(**kwargs, stream=True,
                                                       stream_options={"include_usage": True})
        pieces: list[str] = []
        finish = usage = None
        chunks = 0
        try:
            for chunk in stream:
                chunks += 1
                usage = getattr(chunk, "usage", None) or usage
                for choice in getattr(chunk, "choices", None) or []:
                    if getattr(choice, "index", 0) != 0:
                        continue
                    content = getattr(getattr(choice, "delta", None), "content", None)
                    if isinstance(content, str) and content:
                        pieces.append(content)
                        on_progress(TokenProgress(generated=len(pieces)))
                    if isinstance(getattr(choice, "finish_reason", None), str):
                        finish = choice.finish_reason
        except Exception as exc:
            if not _broken_connection(exc):
                raise
            # the connection broke mid-stream (the HTTP library's own error): worth a retry, as a cut body is
            raise _MalformedResponse(f"the stream broke off after {chunks} chunks: {exc}") from exc
        finally:
            stream.close()
        if chunks == 0:
            raise _NotStreamed("answered a streamed request without streaming")
        if finish is None and usage is None:
            raise _MalformedResponse(f"a stream of {chunks} chunks that ended without a finish reason")
        text = "".join(pieces)
        if usage is not None:
            return Completion(text, Usage(int(usage.prompt_tokens or 0), int(usage.completion_tokens or 0)),
                              finish_reason=finish)
        from tgdomains.engines.base import estimate_tokens

        return Completion(text, Usage(0, estimate_tokens(text)), finish_reason=finish)

    def describe(self) -> str:
        structured = f", structured output {self.structured}" if self.structured != "off" else ""
        if self.structured_refused:
            structured += " (refused by the server: tags + repair)"
        if self.streaming_refused:
            structured += f" (no streaming: the server {self.streaming_refused})"
        return (f"OpenAIEngine(model={self.model!r}, base_url={self.base_url or 'https://api.openai.com/v1'}"
                f"{structured})")


class _MalformedResponse(RuntimeError):
    """A 200 response without a usable message (truncated JSON, no choices): worth a retry."""


class _NotStreamed(RuntimeError):
    """A server that answered a streamed request with no stream at all: it gets unstreamed requests."""


def _completion(response) -> Completion:
    try:
        text = response.choices[0].message.content
    except (AttributeError, IndexError, TypeError) as exc:
        raise _MalformedResponse(f"response without choices[0].message.content: {str(response)[:200]}") from exc
    if text is None:
        text = ""
    finish = getattr(response.choices[0], "finish_reason", None)
    finish = finish if isinstance(finish, str) else None
    usage = getattr(response, "usage", None)
    if usage is not None:
        return Completion(text, Usage(int(usage.prompt_tokens or 0), int(usage.completion_tokens or 0)),
                          finish_reason=finish)
    from tgdomains.engines.base import estimate_tokens

    return Completion(text, Usage(0, estimate_tokens(text)), finish_reason=finish)


def _broken_connection(exc: Exception) -> bool:
    """An error of the connection under a stream: raised by the HTTP library (httpx or its fork, httpcore) as its
    own type while the stream is read, or an OSError."""
    return isinstance(exc, OSError) or type(exc).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore")


def _tagged_from_json(text: str) -> str:
    """A json_schema reply {"critique": ..., "improved_variable": ...} as the tagged text the parser reads; text
    that is not such JSON (a cut-off reply) is returned as it is, for the parser to reject and name."""
    from tgdomains.prompts import TAG

    try:
        data = json.loads(text)
        value = data["improved_variable"]
        critique = str(data.get("critique") or "")
    except (json.JSONDecodeError, KeyError, TypeError):
        return text
    value = value if isinstance(value, str) else json.dumps(value, indent=2)
    return f"{critique}\n<{TAG}>\n{value}\n</{TAG}>"


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    try:
        return float(headers.get("retry-after")) if headers.get("retry-after") is not None else None
    except (TypeError, ValueError):
        return None
