"""Dose-influence matrices cached on disk, keyed by a hash of everything that defines them.

The cache lives in ``$TGDOMAINS_CACHE_DIR/radiotherapy`` (default ``~/.cache/tgdomains/radiotherapy``). A file is
written to a temporary name and renamed, so a killed build never leaves a half-written matrix behind.

A cache is never a reason to stop: a cached file is read as carefully as a user's case file (no link followed, sizes
and indices checked, `case.read_npz_arrays` and `case.checked_csr`), and one that fails is built again; a cache
folder that cannot be written (a file in its place, a full disk) costs a warning and the matrix is used uncached.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
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
    from domains.radiotherapy.case import CaseFileError, checked_csr, read_npz_arrays

    path = cache_dir() / f"dij-{key}.npz"
    if os.path.lexists(path):
        try:
            f = read_npz_arrays(path, what="cached matrix")
            return checked_csr(f["data"], f["indices"], f["indptr"], f["shape"],
                               lambda problem: CaseFileError(f"cached matrix {path}: {problem}"))
        except (OSError, CaseFileError, KeyError):
            pass  # a damaged (or foreign) cache file is rebuilt below
    matrix = sp.csr_matrix(build(), dtype=np.float32)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, data=matrix.data, indices=matrix.indices, indptr=matrix.indptr,
                     shape=np.array(matrix.shape))
        os.replace(tmp, path)  # replaces a link at `path` itself, never what it points to
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        from tgdomains.caches import cache_warning

        warnings.warn(cache_warning(path.parent, exc), stacklevel=2)
    return matrix
