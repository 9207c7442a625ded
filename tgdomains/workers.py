"""A long-lived worker process spoken to in JSON lines: one request line in, one reply line out.

Domains run their heavy or dangerous work in such processes (molecules: docking, where the `vina` package may call
C ``exit()``). Plain subprocesses rather than multiprocessing: they need no ``if __name__ == "__main__"`` guard in
the caller's script, and a worker that dies is seen as end-of-file on exactly the request it was running, so only
that request fails; the next one starts a fresh process.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from typing import IO, Any


class WorkerDied(RuntimeError):
    """The worker process died while handling a request; the message gives its exit code and last stderr line."""


class JsonLinesWorker:
    """One worker process running `command`, started on first use and again after it died.

    what:  how messages name it ("the docking worker process died ...").
    quiet: stderr lines that say nothing about a death (progress chatter), left out of the message.
    """

    def __init__(self, command: list[str], *, what: str = "worker", env: Mapping[str, str] | None = None,
                 quiet: Callable[[str], bool] | None = None) -> None:
        self.command, self.what, self.env = list(command), what, env
        self.quiet = quiet or (lambda line: False)
        self.process: subprocess.Popen[str] | None = None
        self.stderr: IO[str] | None = None

    def _start(self) -> subprocess.Popen[str]:
        self.stderr = tempfile.TemporaryFile(mode="w+")  # read only when the worker dies, to say why
        return subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                                text=True, bufsize=1, env=dict(self.env) if self.env is not None else None)

    def request(self, message: Mapping[str, Any]) -> dict[str, Any]:
        """The worker's reply to `message`; WorkerDied if it died on it (the next request starts a new one)."""
        if self.process is None or self.process.poll() is not None:
            self.process = self._start()
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            raise WorkerDied(self._death_notice())
        return json.loads(line)

    def _death_notice(self) -> str:
        code = self.process.wait() if self.process else None
        self.process = None
        tail = ""
        if self.stderr is not None:
            self.stderr.seek(0)
            lines = [x for x in self.stderr.read().splitlines() if x.strip() and not self.quiet(x)]
            tail = lines[-1][:300] if lines else ""
            self.stderr.close()
            self.stderr = None
        return f"the {self.what} process died (exit code {code})" + (f": {tail}" if tail else "")

    def close(self, timeout_s: float = 5.0) -> None:
        """End its input (a worker's loop then ends and it exits); kill it if it does not within `timeout_s`."""
        if self.process is not None and self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.stderr is not None:
            self.stderr.close()
            self.stderr = None
