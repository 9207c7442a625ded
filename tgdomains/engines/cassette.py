"""Record/replay: a run recorded against a real model replays byte-for-byte offline.

A cassette is a JSONL file, one line per request: its key, the request (with its reply grammar, when it had one),
the engine's settings, the reply text, usage and finish reason. Replay serves replies by key; a request asked
several times gets its recorded replies in order.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

from tgdomains.engines.base import (
    BaseEngine,
    Completion,
    Engine,
    ProgressCallback,
    Request,
    Usage,
    forward,
    request_settings,
)


class RecordingEngine(BaseEngine):
    """Forwards to `engine` and appends every exchange to `path`."""

    def __init__(self, engine: Engine, path: str | Path) -> None:
        super().__init__()
        self.engine = engine
        self.model = engine.model
        self.path = Path(path)
        self._lock = threading.Lock()

    def _complete(self, request: Request) -> Completion:
        return self._stream(request, None)

    def _stream(self, request: Request, on_progress: ProgressCallback | None) -> Completion:
        c = forward(self.engine, request, on_progress)  # a streamed reply is recorded whole, once it is complete
        line = json.dumps({"key": request.key, "request": request.to_dict(), "engine": self.settings_for(request),
                           "text": c.text, "usage": [c.usage.prompt_tokens, c.usage.completion_tokens],
                           "finish_reason": c.finish_reason}, ensure_ascii=False)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line + "\n")
                f.flush()
                os.fsync(f.fileno())
        return c

    def cost(self, usage: Usage) -> float:
        return getattr(self.engine, "cost", lambda u: 0.0)(usage)

    def settings(self) -> dict[str, Any]:
        return getattr(self.engine, "settings", dict)()

    def settings_for(self, request: Request) -> dict[str, Any]:
        return request_settings(self.engine, request)


class CassetteMiss(KeyError):
    """The replayed run asked something the recording never asked: the code or the prompts changed."""


class ReplayEngine(BaseEngine):
    """Serves recorded replies; never contacts a model. `misses` counts the requests it had no reply for: a run
    loop treats a miss like a dead endpoint (a failed step, the run goes on), so a caller that needs an exact replay
    checks it afterwards."""

    def __init__(self, path: str | Path, model: str | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.model = model or ""
        self._replies: dict[str, deque] | None = None
        self._lock = threading.Lock()
        self.misses = 0

    def _load(self) -> dict[str, deque]:
        if self._replies is None:
            if not self.path.exists():
                raise FileNotFoundError(f"cassette {self.path} does not exist (record one with --record PATH)")
            replies: dict[str, deque] = defaultdict(deque)
            for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill during recording: the exchange is simply not there
                if not isinstance(entry, dict) or not isinstance(entry.get("key"), str) or \
                        not isinstance(entry.get("text"), str):
                    warnings.warn(f"cassette {self.path}: line {number} has no reply text; skipped (a request that "
                                  "needed it is a miss)", stacklevel=4)
                    continue
                replies[entry["key"]].append(entry)
                if not self.model:
                    self.model = entry["request"]["model"]
            self._replies = replies
        return self._replies

    def _complete(self, request: Request) -> Completion:
        with self._lock:
            queue = self._load().get(request.key)
            if not queue:
                self.misses += 1
                raise CassetteMiss(f"cassette {self.path} has no (more) replies for this request; last message:\n"
                                   f"{request.messages[-1][1][:300]}")
            entry = queue[0] if len(queue) == 1 else queue.popleft()  # the last reply repeats for repeated asks
        return Completion(entry["text"], Usage(*entry["usage"]), finish_reason=entry.get("finish_reason"))

    def generate(self, messages, *, temperature=0.0, max_tokens=None, seed=None, stop=None, reply_format=None,
                 on_progress=None):
        self._load()  # the model name comes from the cassette and is part of the key
        return super().generate(messages, temperature=temperature, max_tokens=max_tokens, seed=seed, stop=stop,
                                reply_format=reply_format, on_progress=on_progress)
