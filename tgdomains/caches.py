"""Where tgdomains keeps its disk caches: one setting for all of them, ``$TGDOMAINS_CACHE_DIR`` (default
``~/.cache/tgdomains``), with one folder per user (``docking``, ``radiotherapy`` ...) and the LLM reply
cache's ``llm_cache.sqlite``.

A cache is an optimization, never a reason to stop a run: a cache folder that cannot be used (a file in its place, no
permission, a full disk) costs one warning line from `cache_warning`, naming what is in the way, and the work goes on
without that cache."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """The folder every cache lives in: ``$TGDOMAINS_CACHE_DIR``, or ``~/.cache/tgdomains`` when it is unset."""
    return Path(os.environ.get("TGDOMAINS_CACHE_DIR") or Path.home() / ".cache" / "tgdomains")


def cache_dir(name: str) -> Path:
    """The folder of the cache called `name` (not created: writers create it when they first write)."""
    return cache_root() / name


def cache_warning(folder: str | os.PathLike[str], error: OSError) -> str:
    """One line saying that the cache in `folder` cannot be used and why (naming the file in the way, if any)."""
    from tgdomains.files import first_non_folder

    blocker = first_non_folder(folder)
    why = f"{blocker} is a file, not a folder" if blocker is not None else (error.strerror or str(error))
    return (f"cache folder {folder} cannot be used ({why}); going on without this cache (set TGDOMAINS_CACHE_DIR "
            "to a folder you can write)")
