"""A long-lived worker process spoken to in JSON lines: a request line in, reply lines out.

Domains run their heavy or dangerous work in such processes (molecules: docking, where the `vina` package may call
C ``exit()``; code: candidate programs, in a sandbox). Plain subprocesses rather than multiprocessing: they need no
``if __name__ == "__main__"`` guard in the caller's script, and a worker that dies is seen as end-of-file on exactly
the request it was running, so only that request fails; the next one starts a fresh process.

`request` is one line in, one line out (the docking workers). A worker that answers one message with a stream of
lines (the code sandbox: one job in, a line of records per batch of finished tests) uses `start`, `send` and
`read_line`, whose deadline and line limit bound what a stuck or babbling worker can cost; after either, `kill` it
(its whole session, when it was started in one of its own) and never trust it again.

A copy of this object in a forked process (process pools fork) never touches the parent's worker: `alive()` is
false there, `kill()` only forgets it, and the next `request` starts a worker of the copy's own.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import IO, Any


class WorkerDied(RuntimeError):
    """The worker process died while handling a request; the message gives its exit code and last stderr line."""


class WorkerStalled(RuntimeError):
    """The worker sent no complete line before the deadline, or a line longer than the reader allows."""


class JsonLinesWorker:
    """One worker process running `command`, started on first use and again after it died.

    what:        how messages name it ("the docking worker process died ...").
    quiet:       stderr lines that say nothing about a death (progress chatter), left out of the message.
    env, cwd:    the process's environment (None: ours) and folder.
    own_session: start it in a session of its own, and `kill` the whole session (what it started, too).
    keep_stderr: False sends its stderr to /dev/null (a sandbox's: what candidate code writes is not kept).
    """

    def __init__(self, command: list[str], *, what: str = "worker", env: Mapping[str, str] | None = None,
                 quiet: Callable[[str], bool] | None = None, cwd: str | None = None, own_session: bool = False,
                 keep_stderr: bool = True) -> None:
        self.command, self.what, self.env, self.cwd = list(command), what, env, cwd
        self.own_session, self.keep_stderr = own_session, keep_stderr
        self.quiet = quiet or (lambda line: False)
        self.process: subprocess.Popen[bytes] | None = None
        self.stderr: IO[bytes] | None = None
        self._owner_pid = 0  # the process that started `process`: a forked copy must leave it alone
        self._buffer = b""  # read past the last complete line
        self._chunks: list[bytes] = []  # read since, without a newline yet

    @property
    def owned(self) -> bool:
        """A worker was started, by this process (not inherited through a fork)."""
        return self.process is not None and self._owner_pid == os.getpid()

    def alive(self) -> bool:
        return self.owned and self.process.poll() is None

    def start(self) -> None:
        """Start a fresh worker (killing the one that runs, if any)."""
        self.kill()
        self.stderr = tempfile.TemporaryFile() if self.keep_stderr else None  # read only when it dies, to say why
        self.process = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=self.stderr if self.keep_stderr else subprocess.DEVNULL,
                                        env=dict(self.env) if self.env is not None else None, cwd=self.cwd,
                                        start_new_session=self.own_session)
        self._owner_pid = os.getpid()

    def request(self, message: Mapping[str, Any]) -> dict[str, Any]:
        """The worker's reply to `message`; WorkerDied if it died on it (the next request starts a new one)."""
        if not self.alive():
            self.start()
        self.send(message)
        return json.loads(self.read_line())

    def send(self, message: Mapping[str, Any]) -> None:
        """Write `message` as one line to the running worker; WorkerDied when it cannot take it."""
        try:
            self.process.stdin.write(json.dumps(message).encode() + b"\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise WorkerDied(self._death_notice()) from None

    def read_line(self, deadline: float | None = None, max_bytes: int | None = None) -> bytes:
        """The worker's next line, without its newline. WorkerDied at end of file; WorkerStalled when the
        `time.monotonic()` deadline passes first or the line grows beyond `max_bytes`."""
        fd = self.process.stdout.fileno()
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line, self._buffer = self._buffer[:end], self._buffer[end + 1:]
                return line
            if deadline is not None:
                wait = deadline - time.monotonic()
                if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                    if time.monotonic() >= deadline:
                        raise WorkerStalled(f"the {self.what} sent no complete line in time")
                    continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise WorkerDied(self._death_notice())
            self._chunks.append(chunk)  # joined once the line is complete: no quadratic copying of long lines
            if b"\n" in chunk:
                self._buffer += b"".join(self._chunks)
                self._chunks.clear()
            elif max_bytes is not None and len(self._buffer) + sum(map(len, self._chunks)) > max_bytes:
                raise WorkerStalled(f"the {self.what} sent a line of more than {max_bytes} bytes")

    def _death_notice(self) -> str:
        """Why the worker is gone (exit code, last stderr line); it is killed and forgotten. One in a session of its
        own is killed at once; another gets 5 s to exit after closing its output."""
        try:
            code = self.process.wait(timeout=0 if self.own_session else 5)
        except subprocess.TimeoutExpired:
            code = None
        tail = ""
        if self.stderr is not None:
            self.stderr.seek(0)
            lines = [x for x in self.stderr.read().decode(errors="replace").splitlines()
                     if x.strip() and not self.quiet(x)]
            tail = lines[-1][:300] if lines else ""
        self.kill()
        return f"the {self.what} process died (exit code {code})" + (f": {tail}" if tail else "")

    def kill(self) -> None:
        """Stop the worker now (with its session, if it has one). One inherited through a fork is only forgotten."""
        process, self.process = self.process, None
        self._buffer, self._chunks = b"", []
        if process is not None and self._owner_pid == os.getpid():
            if self.own_session:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            process.kill()
            process.wait()
            for stream in (process.stdin, process.stdout):
                stream.close()
        self._close_stderr()

    def close(self, timeout_s: float = 5.0) -> None:
        """End its input (a worker's loop then ends and it exits); kill it if it does not within `timeout_s`."""
        if self.alive():
            self.process.stdin.close()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def _close_stderr(self) -> None:
        if self.stderr is not None:
            self.stderr.close()
            self.stderr = None
