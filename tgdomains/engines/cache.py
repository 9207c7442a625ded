"""CachedEngine: replies stored in SQLite, keyed on the whole request (model, messages, sampling, seed)."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from pathlib import Path

from tgdomains.engines.base import BaseEngine, Completion, Engine, Request, Usage


def default_cache_path() -> Path:
    root = os.environ.get("TGDOMAINS_CACHE_DIR") or Path.home() / ".cache" / "tgdomains"
    return Path(root) / "llm_cache.sqlite"


class CachedEngine(BaseEngine):
    """Wraps `engine`; `enabled=False` passes every request through (the `--no-cache` switch that works).

    Temperature and seed are part of the key, so a sampled reply at one seed is never served for another.
    """

    def __init__(self, engine: Engine, path: str | Path | None = None, enabled: bool = True) -> None:
        super().__init__()
        self.engine = engine
        self.model = engine.model
        self.path = Path(path) if path else default_cache_path()
        self.enabled = enabled
        self._local = threading.local()

    def _db(self) -> sqlite3.Connection:
        # One connection per thread: sqlite3 connections must not cross threads.
        db = getattr(self._local, "db", None)
        if db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, request TEXT, text TEXT, "
                       "prompt_tokens INT, completion_tokens INT)")
            self._local.db = db
        return db

    def _complete(self, request: Request) -> Completion:
        if not self.enabled:
            return self._forward(request)
        row = self._db().execute("SELECT text, prompt_tokens, completion_tokens FROM replies WHERE key = ?",
                                 (request.key,)).fetchone()
        if row is not None:
            return Completion(row[0], Usage(row[1], row[2]), cached=True)
        completion = self._forward(request)
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?, ?)",
                       (request.key, json.dumps(request.to_dict()), completion.text,
                        completion.usage.prompt_tokens, completion.usage.completion_tokens))
        return completion

    def _forward(self, request: Request) -> Completion:
        return self.engine.generate(request.chat(), temperature=request.temperature, max_tokens=request.max_tokens,
                                    seed=request.seed, stop=list(request.stop) if request.stop else None)

    def cost(self, usage: Usage) -> float:
        return getattr(self.engine, "cost", lambda u: 0.0)(usage)

    def describe(self) -> str:
        state = f"cache at {self.path}" if self.enabled else "cache off"
        return f"{getattr(self.engine, 'describe', lambda: repr(self.engine))()} with {state}"
