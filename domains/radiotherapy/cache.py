"""Dose-influence matrices cached on disk, keyed by a hash of everything that defines them.

The cache lives in ``$TGDOMAINS_CACHE_DIR/radiotherapy`` (default ``~/.cache/tgdomains/radiotherapy``). A file is
written to a temporary name and renamed, so a killed build never leaves a half-written matrix behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp


def cache_dir() -> Path:
    from tgdomains.caches import cache_dir as tgdomains_cache

    return tgdomains_cache("radiotherapy")


def content_key(spec: dict[str, Any]) -> str:
    """A stable hash of a JSON-able description of the matrix."""
    text = json.dumps(spec, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def cached_matrix(key: str, build: Callable[[], sp.spmatrix]) -> sp.csr_matrix:
    """The matrix stored under `key`, building and storing it on a miss."""
    path = cache_dir() / f"dij-{key}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as f:
                return sp.csr_matrix((f["data"], f["indices"], f["indptr"]), shape=tuple(f["shape"]))
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache file is rebuilt below
    matrix = sp.csr_matrix(build(), dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
    os.close(fd)
    np.savez(tmp, data=matrix.data, indices=matrix.indices, indptr=matrix.indptr, shape=np.array(matrix.shape))
    os.replace(tmp, path)
    return matrix
