"""Where tgdomains keeps its disk caches: one setting for all of them, ``$TGDOMAINS_CACHE_DIR`` (default
``~/.cache/tgdomains``), with one folder per user (``docking``, ``radiotherapy`` ...)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(name: str) -> Path:
    """The folder of the cache called `name` (not created: writers create it when they first write)."""
    root = os.environ.get("TGDOMAINS_CACHE_DIR") or Path.home() / ".cache" / "tgdomains"
    return Path(root) / name
