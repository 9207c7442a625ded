"""OpenAIEngine: any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp server) through the `openai` client."""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass, replace

from tgdomains.engines.base import BaseEngine, Completion, Request, Usage

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


class OpenAIEngine(BaseEngine):
    """Chat completions against `base_url` (env OPENAI_BASE_URL) with `api_key` (env OPENAI_API_KEY).

    temperature, max_tokens and seed are always sent. Timeouts, 429 (honouring Retry-After) and 5xx are retried
    with exponential backoff; other errors (a bad key, a bad request) fail at once with the server's message.
    """

    def __init__(self, model: str | None = None, *, base_url: str | None = None, api_key: str | None = None,
                 timeout_s: float = 120.0, retry: RetryPolicy | None = None,
                 prices: dict[str, tuple[float, float]] | None = None) -> None:
        super().__init__()
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

    def _complete(self, request: Request) -> Completion:
        import openai

        kwargs = {"model": self.model, "messages": request.chat(), "temperature": request.temperature}
        if request.max_tokens is not None:
            kwargs["max_tokens"] = request.max_tokens
        if request.seed is not None:
            kwargs["seed"] = request.seed
        if request.stop:
            kwargs["stop"] = list(request.stop)
        last: Exception | None = None
        failures = 0
        for attempt in range(self.retry.attempts):
            try:
                response = self.client().chat.completions.create(**kwargs)
                return replace(_completion(response), failures=failures)
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
                error = EngineError(f"{self.base_url or 'OpenAI'} refused the request ({exc.status_code}): "
                                    f"{exc.message}")
                error.failures = failures
                raise error from exc
        error = EngineError(f"{self.base_url or 'OpenAI'} failed {self.retry.attempts} times; last error: "
                            f"{type(last).__name__}: {last}")
        error.failures = failures
        raise error from last

    def describe(self) -> str:
        return f"OpenAIEngine(model={self.model!r}, base_url={self.base_url or 'https://api.openai.com/v1'})"


class _MalformedResponse(RuntimeError):
    """A 200 response without a usable message (truncated JSON, no choices): worth a retry."""


def _completion(response) -> Completion:
    try:
        text = response.choices[0].message.content
    except (AttributeError, IndexError, TypeError) as exc:
        raise _MalformedResponse(f"response without choices[0].message.content: {str(response)[:200]}") from exc
    if text is None:
        text = ""
    usage = getattr(response, "usage", None)
    if usage is not None:
        return Completion(text, Usage(int(usage.prompt_tokens or 0), int(usage.completion_tokens or 0)))
    from tgdomains.engines.base import estimate_tokens

    return Completion(text, Usage(0, estimate_tokens(text)))


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    try:
        return float(headers.get("retry-after")) if headers.get("retry-after") is not None else None
    except (TypeError, ValueError):
        return None
