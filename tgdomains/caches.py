"""Where tgdomains keeps its disk caches: one setting for all of them, ``$TGDOMAINS_CACHE_DIR`` (default
``~/.cache/tgdomains``), with one folder per user (``docking``, ``radiotherapy`` ...) and the LLM reply
cache's ``llm_cache.sqlite``."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """The folder every cache lives in: ``$TGDOMAINS_CACHE_DIR``, or ``~/.cache/tgdomains`` when it is unset."""
    return Path(os.environ.get("TGDOMAINS_CACHE_DIR") or Path.home() / ".cache" / "tgdomains")


def cache_dir(name: str) -> Path:
    """The folder of the cache called `name` (not created: writers create it when they first write)."""
    return cache_root() / name
