"""One writer per run directory: an exclusive lock that a `Run` holds for its whole life.

    lock = RunLock(run_dir).acquire()     # RunDirectoryLocked (naming the holder) when another process has it
    ...
    lock.release()

The lock is `flock(LOCK_EX | LOCK_NB)` on RUN_DIR/run.lock, and the file holds who took it (pid, host, start time).
The kernel drops a flock when its holder dies, however it dies, so a lock left by a killed process is free again at
once: the next run takes it over and says whose it was. The file is never deleted (deleting it would let a third
process lock a new file while a second still holds the old one); a clean release empties it.

Why flock and not a pid file: a pid file needs a liveness check (pids are reused, hosts differ), flock does not.
flock works on local file systems and on NFS (Linux maps it onto NFS byte-range locks).

run.lock is opened without following a link and only as a regular file: a link planted under its name (which would
make the holder line truncate a file elsewhere) or a folder there is refused with one line naming it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tgdomains.files import open_regular

LOCK_FILE = "run.lock"


class RunDirectoryLocked(RuntimeError):
    """Another process is writing this run directory."""

    def __init__(self, run_dir: Path, holder: dict[str, Any]) -> None:
        self.run_dir, self.holder = run_dir, holder
        who = (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started {holder.get('started', '?')}"
               if holder else "a process that has not written its name yet")
        super().__init__(f"{run_dir} is in use by another run ({who}); one process at a time may write a run "
                         "directory: wait for it to finish, stop it, or choose another run directory")


class RunLock:
    """The exclusive lock on one run directory (see the module docstring)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd: int | None = None
        self.taken_over: dict[str, Any] = {}  # the holder of a lock left by a process that died holding it

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        """Take the lock now or raise `RunDirectoryLocked` naming its holder; never waits."""
        if self._fd is not None:
            return self
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = open_regular(self.path, os.O_RDWR | os.O_CREAT, what="run directory file")  # never through a link
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunDirectoryLocked(self.run_dir, holder) from None
        except BaseException:
            os.close(fd)
            raise
        self.taken_over = _read_holder(fd)  # non-empty: the last holder died without releasing
        me = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                         "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, me + b"\n", 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Empty the holder line and unlock (a no-op when not held)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass  # a full or read-only disk must not keep the lock: closing below releases it anyway
        finally:
            os.close(fd)  # closing the descriptor drops the flock

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:  # a Run that was built but never run must not keep its directory locked
        self.release()


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
        holder = json.loads(text) if text else {}
    except (OSError, ValueError, RecursionError):
        return {}
    # what a dead holder left may be anything: keep only short plain fields for the messages that quote them
    if not isinstance(holder, dict):
        return {}
    return {k: str(holder[k])[:100] for k in ("pid", "host", "started") if k in holder}
