"""ScriptedEngine: a stand-in LLM for tests that replies from a script and records every request (with its reply
format, when it has one: `requests[i]["reply_format"]["grammar"]`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tgdomains.engines.base import (
    BaseEngine,
    Completion,
    Message,
    ProgressCallback,
    Request,
    TokenProgress,
    Usage,
    estimate_tokens,
)


class ScriptExhausted(RuntimeError):
    """The test's script ran out of replies: the code under test made more LLM calls than expected."""


class ScriptedEngine(BaseEngine):
    """Replies in order from `responses`, or by calling `responses(messages)`; `requests` keeps every request.

    `delay_s` makes each reply take that long, as a slow model would: half of it "processing the prompt", half
    "generating" the reply's tokens, reported to a progress callback as it goes (for tests of what a user sees).
    """

    def __init__(self, responses: list[str] | Callable[[list[Message]], str], model: str = "scripted",
                 delay_s: float = 0.0) -> None:
        super().__init__()
        self.responses = responses
        self.model = model
        self.delay_s = delay_s
        self.requests: list[dict] = []
        self._next = 0
        self._lock = threading.Lock()

    def _complete(self, request: Request) -> Completion:
        return self._stream(request, lambda progress: None)

    def _stream(self, request: Request, on_progress: ProgressCallback) -> Completion:
        messages = request.chat()
        with self._lock:
            self.requests.append(request.to_dict())
            if callable(self.responses):
                text = self.responses(messages)
            else:
                if self._next >= len(self.responses):
                    raise ScriptExhausted(f"scripted engine has no reply #{self._next + 1} "
                                          f"(script holds {len(self.responses)}); last request:\n"
                                          f"{messages[-1]['content'][:500]}")
                text = self.responses[self._next]
                self._next += 1
        prompt_tokens = sum(estimate_tokens(m["content"]) for m in messages)
        completion_tokens = estimate_tokens(text)
        if self.delay_s > 0:
            ticks = 10
            for tick in range(1, ticks + 1):
                time.sleep(self.delay_s / 2 / ticks)
                on_progress(TokenProgress(prompt_tokens * tick // ticks, prompt_tokens, 0))
            for tick in range(1, ticks + 1):
                time.sleep(self.delay_s / 2 / ticks)
                on_progress(TokenProgress(prompt_tokens, prompt_tokens, completion_tokens * tick // ticks))
        return Completion(text, Usage(prompt_tokens, completion_tokens))
