"""CachedEngine: replies stored in SQLite, keyed on the request as the model saw it.

The key is the request (model, messages, temperature, max_tokens, seed, stop, reply grammar) plus the wrapped
engine's own settings (its model file, its default max_tokens, its sampling parameters, its endpoint): a reply
cached under one engine default is never served to an engine with another.

A cache is an optimization, never a reason to stop a run: a database that is not a database (truncated, overwritten)
is moved aside and rebuilt, with a warning naming both files; one that another process keeps locked past the
timeout is skipped for that request (the reply comes from the engine and is not stored), with a warning. Neither
ever serves a reply that was not stored under the exact key.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from tgdomains.caches import cache_root
from tgdomains.engines.base import (
    BaseEngine,
    Completion,
    Engine,
    ProgressCallback,
    Request,
    Usage,
    forward,
    key_of,
    request_settings,
)

_COLUMNS = "key TEXT PRIMARY KEY, request TEXT, text TEXT, prompt_tokens INT, completion_tokens INT"
_INSERT = ("INTO replies (key, request, text, prompt_tokens, completion_tokens, finish_reason) "
           "VALUES (?, ?, ?, ?, ?, ?)")


def default_cache_path() -> Path:
    """``$TGDOMAINS_CACHE_DIR/llm_cache.sqlite`` (the root every cache shares, see `tgdomains.caches`)."""
    return cache_root() / "llm_cache.sqlite"


class CacheWarning(UserWarning):
    """The reply cache could not be used for a request (corrupt or locked): the run goes on without it."""


class CachedEngine(BaseEngine):
    """Wraps `engine`; `enabled=False` passes every request through (the `--no-cache` switch that works).

    Temperature and seed are part of the key, so a sampled reply at one seed is never served for another.
    `timeout_s`: how long to wait for a lock another process holds before going on without the cache.
    """

    def __init__(self, engine: Engine, path: str | Path | None = None, enabled: bool = True,
                 timeout_s: float = 30.0) -> None:
        super().__init__()
        self.engine = engine
        self.model = engine.model
        self.path = Path(path) if path else default_cache_path()
        self.enabled = enabled
        self.timeout_s = timeout_s
        self._local = threading.local()
        self._lock = threading.Lock()

    def settings(self) -> dict[str, Any]:
        return getattr(self.engine, "settings", dict)()

    def settings_for(self, request: Request) -> dict[str, Any]:
        return request_settings(self.engine, request)

    def key(self, request: Request) -> str:
        """The cache key: the request and the wrapped engine's settings."""
        return key_of(self._stored(request))

    def _stored(self, request: Request) -> dict[str, Any]:
        """What a row's key is computed from and its `request` column holds."""
        return {"request": request.to_dict(), "engine": self.settings_for(request)}

    def _db(self) -> sqlite3.Connection:
        # One connection per thread: sqlite3 connections must not cross threads.
        db = getattr(self._local, "db", None)
        if db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=self.timeout_s)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(f"CREATE TABLE IF NOT EXISTS replies ({_COLUMNS})")
                columns = {row[1] for row in db.execute("PRAGMA table_info(replies)")}
                if "finish_reason" not in columns:  # a cache written before finish reasons were stored
                    db.execute("ALTER TABLE replies ADD COLUMN finish_reason TEXT")
                db.execute("SELECT count(*) FROM replies WHERE key = ''").fetchone()  # reads a page: finds corruption
            except BaseException:
                db.close()
                raise
            self._local.db = db
        return db

    def _rebuild(self, error: sqlite3.DatabaseError) -> None:
        """Move an unreadable database aside (kept for inspection, never read again) and start an empty one."""
        with self._lock:
            db = getattr(self._local, "db", None)
            if db is not None:
                db.close()
                self._local.db = None
            if not self.path.exists():
                return
            aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
            os.replace(self.path, aside)
            for suffix in ("-wal", "-shm"):
                Path(str(self.path) + suffix).unlink(missing_ok=True)
            warnings.warn(f"reply cache {self.path} is not a readable SQLite database ({error}); moved it to {aside} "
                          f"and started an empty cache", CacheWarning, stacklevel=4)

    def _use(self, operation):
        """Run `operation(db)`; a corrupt database is rebuilt once, a locked one skipped. None when skipped."""
        for attempt in range(2):
            try:
                return operation(self._db())
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    warnings.warn(f"reply cache {self.path} is locked by another process (waited "
                                  f"{self.timeout_s:g} s); this request goes on without the cache", CacheWarning,
                                  stacklevel=4)
                    return None
                if attempt:
                    raise
                self._rebuild(exc)
            except sqlite3.DatabaseError as exc:  # "file is not a database", "database disk image is malformed"
                if attempt:
                    raise
                self._rebuild(exc)
            except OSError as exc:  # its folder cannot be made (a file in the way, no permission)
                from tgdomains.caches import cache_warning

                warnings.warn(cache_warning(self.path.parent, exc), CacheWarning, stacklevel=4)
                return None
        return None

    def _complete(self, request: Request) -> Completion:
        return self._stream(request, None)

    def _stream(self, request: Request, on_progress: ProgressCallback | None) -> Completion:
        """A stored reply at once; else the wrapped engine's (streamed when it can), stored whole."""
        if not self.enabled:
            return forward(self.engine, request, on_progress)
        key = self.key(request)
        row = self._use(lambda db: db.execute(
            "SELECT text, prompt_tokens, completion_tokens, finish_reason FROM replies WHERE key = ?", (key,)
        ).fetchone())
        if row is not None and isinstance(row[0], str):
            return Completion(row[0], Usage(*(n if isinstance(n, int) else 0 for n in row[1:3])), cached=True,
                              finish_reason=row[3] if isinstance(row[3], str) else None)
        if row is not None:  # a row without text (written by something else): a miss, replaced below
            warnings.warn(f"reply cache {self.path} holds a row without text for this request; asking the engine "
                          "instead", CacheWarning, stacklevel=3)
        completion = forward(self.engine, request, on_progress)

        def store(db: sqlite3.Connection) -> bool:
            with db:
                db.execute(f"INSERT OR REPLACE {_INSERT}",
                           (key, json.dumps(self._stored(request)), completion.text, completion.usage.prompt_tokens,
                            completion.usage.completion_tokens, completion.finish_reason))
            return True

        self._use(store)
        return completion

    def import_cassette(self, path: str | Path) -> int:
        """Store a cassette's replies (tgdomains.engines.cassette) under the keys this cache would give them.

        What a recording on another machine asked, this machine then answers from the cache: a re-recording after
        a change costs only the requests that changed. A reply is imported only under the engine settings it was
        recorded with, so a cassette from another model file or sampler never answers this engine (its keys
        differ); replies already stored are kept. Returns how many replies were added.
        """
        rows = []
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill during recording
            if not isinstance(entry, dict) or not isinstance(entry.get("text"), str):
                continue  # a line without a reply text is not a reply
            stored = {"request": entry["request"], "engine": entry["engine"]}  # as `_stored` writes it
            prompt_tokens, completion_tokens = entry["usage"]
            rows.append((key_of(stored), json.dumps(stored), entry["text"], prompt_tokens, completion_tokens,
                         entry.get("finish_reason")))

        def store(db: sqlite3.Connection) -> int:
            with db:
                before = db.total_changes
                db.executemany(f"INSERT OR IGNORE {_INSERT}", rows)
                return db.total_changes - before

        return self._use(store) or 0

    def cost(self, usage: Usage) -> float:
        return getattr(self.engine, "cost", lambda u: 0.0)(usage)

    def describe(self) -> str:
        state = f"cache at {self.path}" if self.enabled else "cache off"
        return f"{getattr(self.engine, 'describe', lambda: repr(self.engine))()} with {state}"
