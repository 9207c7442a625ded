"""Expected values from a problem file's own code, made in the sandbox and cached on disk.

A problem file may carry code: HumanEval+'s canonical solutions, our format's `reference_solution` and `generator`.
Loading a file never runs it. When a problem's tests are first needed, `ReferenceRunner` runs that code in a sandbox
of its own, exactly as a candidate runs (same worker, uid, rlimits, clocks, plain-data results decoded under the
same bounds), and never in this process. The sandbox is one that no candidate ever uses, since the inputs it sees
include the hidden ones.

What the code returned is cached under ``$TGDOMAINS_CACHE_DIR/code-expected`` (one file per code + inputs, so each
problem of a file is built once): a header line and one line per call holding the value's plain-data JSON (the
sandbox's own encoding, integers in hex), never a pickle. A cache file is untrusted input like any other: it is
opened without following links, read only up to MAX_CACHE_BYTES, decoded with the same bounds as a candidate's
output, and anything wrong with it means it is rebuilt, never that the run stops.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from domains.code import worker as _worker
from domains.code.sandbox import Limits, Sandbox, decode_plain

# A reference gets more room than a candidate: HumanEval+'s canonical solutions are not all fast, and some return
# values of several MB. Still bounded: nothing of a problem file runs without a clock.
REFERENCE_LIMITS = Limits(test_timeout_s=60.0, total_timeout_s=600.0, memory_mb=4096, processes=16)
CACHE_FORMAT = 1
MAX_CACHE_BYTES = _worker.MAX_JOB_BYTES + (16 << 20)


class ReferenceRunner:
    """Runs problem-file code in a sandbox that runs nothing else, and caches what it returns.

    One per loaded problem file (the loaders make it); its worker starts on the first build and stops when the
    runner is garbage-collected, at close(), or at exit. `cache_dir=None`: the default cache folder; `use_cache`
    False: always build (nothing read or written)."""

    def __init__(self, cache_dir: str | Path | None = None, *, limits: Limits = REFERENCE_LIMITS,
                 use_cache: bool = True) -> None:
        from tgdomains.caches import cache_dir as default_cache_dir

        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir("code-expected")
        self.limits = limits
        self.use_cache = use_cache
        self.built = 0  # jobs run in the sandbox (cache misses), for tests and benchmarks
        self._box: list[Sandbox] = []
        self._finalizer = weakref.finalize(self, _close_all, self._box)

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("a ReferenceRunner is not pickled: it owns a sandbox worker")

    def close(self) -> None:
        _close_all(self._box)

    def outputs(self, code: str, entry_point: str, calls: Sequence[str], *, preamble: str, what: str) -> list[Any]:
        """What `entry_point` of `code` returns for each call, from the cache or the sandbox. ValueError (naming
        `what`, e.g. the file and problem) when the code does not load or fails on an input."""
        calls = list(calls)
        key = cache_key(code, entry_point, calls, preamble)
        cached = self._read(key, len(calls)) if self.use_cache else None
        if cached is not None:
            return cached
        if not self._box:
            self._box.append(Sandbox(self.limits))
        result = self._box[0].outputs(code, entry_point, calls, preamble=preamble)
        self.built += 1
        if result.load_status != "ok":
            raise ValueError(f"{what}: the problem's own code does not run ({result.load_status}: "
                             f"{result.load_error})")
        failed = [i for i, error in enumerate(result.errors) if error]
        if failed:
            first = failed[0]
            raise ValueError(f"{what}: the problem's own code failed on {len(failed)} of {len(calls)} inputs, the "
                             f"first `{calls[first][:120]}`: {result.errors[first]}")
        if self.use_cache:
            self._write(key, [text or "" for text in result.texts])
        return result.values

    # ---------------------------------------------------------------- the cache

    def _path(self, key: str) -> Path:
        return self.cache_dir / f"{key}.jsonl"

    def _read(self, key: str, count: int) -> list[Any] | None:
        """The cached values, or None when there is no usable cache file (missing, a link, too large, or not what
        this module writes)."""
        try:
            fd = os.open(self._path(key), os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            return None
        try:
            with os.fdopen(fd, "rb") as f:
                import stat

                info = os.fstat(f.fileno())
                if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_CACHE_BYTES:
                    return None
                data = f.read(MAX_CACHE_BYTES + 1)
            lines = data.split(b"\n")
            header = json.loads(lines[0])
            if header != {"format": CACHE_FORMAT, "key": key, "count": count} or len(lines) < count + 1:
                return None
            return [decode_plain(line.decode("utf-8")) for line in lines[1:count + 1]]
        except (OSError, ValueError, UnicodeDecodeError, RecursionError, MemoryError):
            return None

    def _write(self, key: str, texts: list[str]) -> None:
        """Write atomically (a temporary file renamed over the name); a cache that cannot be written is skipped."""
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, temporary = tempfile.mkstemp(dir=self.cache_dir, prefix=".tmp-", suffix=".jsonl")
        except OSError:
            return
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(json.dumps({"format": CACHE_FORMAT, "key": key, "count": len(texts)}) + "\n")
                for text in texts:
                    f.write(text + "\n")
            os.replace(temporary, self._path(key))
        except OSError:
            try:
                os.unlink(temporary)
            except OSError:
                pass


def cache_key(code: str, entry_point: str, calls: list[str], preamble: str) -> str:
    """Everything the values depend on: the code, its preamble, the calls, and the interpreter's version."""
    text = json.dumps([CACHE_FORMAT, list(sys.version_info[:2]), code, entry_point, preamble, calls])
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _close_all(box: list[Sandbox]) -> None:
    while box:
        box.pop().close()
