"""Shared fixtures for the code domain: one real sandbox per test module, small limits so hostile code ends fast."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from domains.code.sandbox import SANDBOX_UID, Limits, Sandbox, bubblewrap_available

# ../shared/data beside the checkout (as in CI), or where $TGDOMAINS_SHARED_DATA says
SHARED_DATA = Path(os.environ.get("TGDOMAINS_SHARED_DATA") or Path(__file__).resolve().parents[3] / "shared" / "data")
FAST = Limits(test_timeout_s=1.0, total_timeout_s=6.0, memory_mb=256, processes=16)

needs_bwrap = pytest.mark.skipif(not bubblewrap_available(), reason="bubblewrap cannot run here")


@pytest.fixture(scope="session", autouse=True)
def private_cache_dir(tmp_path_factory):
    """The code tests write their caches (expected values) to a folder of their own, never the user's."""
    mp = pytest.MonkeyPatch()
    mp.setenv("TGDOMAINS_CACHE_DIR", str(tmp_path_factory.mktemp("tgd-code-cache")))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(FAST) as sb:
        yield sb


def sandbox_processes() -> list[int]:
    """Live processes owned by the sandbox uid (what a candidate could have left behind)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == SANDBOX_UID:
                    pids.append(int(entry))
            except OSError:
                pass
    return pids


def shared_file(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} is not here")
    return path
