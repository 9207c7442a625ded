"""Long-lived docking worker processes, and running many docking requests across them.

Each worker is a plain subprocess (``python -m domains.molecules.worker``) spoken to in JSON lines. Plain subprocesses
rather than multiprocessing: they need no ``if __name__ == "__main__"`` guard in the caller's script, and a worker that
dies (the `vina` package calls C ``exit()`` on some inputs) is seen as end-of-file on exactly the request it was
running, so only that molecule fails.
"""

from __future__ import annotations

import atexit
import json
import queue
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from typing import Any


class WorkerCrashed(RuntimeError):
    """The worker process died while handling a request."""


class DockingWorker:
    """One worker process, started on first use and restarted after a crash."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None
        self.stderr: Any = None

    def _start(self) -> subprocess.Popen[str]:
        # stderr goes to a file we read only when the worker dies, to say why.
        self.stderr = tempfile.TemporaryFile(mode="w+")
        return subprocess.Popen(
            [sys.executable, "-m", "domains.molecules.worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True, bufsize=1,
        )

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        if self.process is None or self.process.poll() is not None:
            self.process = self._start()
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            raise WorkerCrashed(self._death_notice())
        return json.loads(line)

    def _death_notice(self) -> str:
        code = self.process.wait() if self.process else None
        self.process = None
        tail = ""
        if self.stderr is not None:
            self.stderr.seek(0)
            lines = [x for x in self.stderr.read().splitlines() if x.strip() and "Search space volume" not in x]
            tail = lines[-1][:300] if lines else ""
            self.stderr.close()
            self.stderr = None
        return f"the docking worker process died (exit code {code})" + (f": {tail}" if tail else "")

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.stdin.close()  # end of input: the worker's loop ends and it exits
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.stderr is not None:
            self.stderr.close()
            self.stderr = None


class WorkerPool:
    """Warm docking workers, reused across requests, owned by whoever docks (a `Docker`, or the molecules domain
    so that every run of a process shares them). Processes start on first use; `close()` (also run at exit once a
    process was started) stops them, and the next request starts new ones."""

    def __init__(self) -> None:
        self._idle: queue.LifoQueue[DockingWorker] = queue.LifoQueue()  # warm workers not in use, newest first
        self._all: list[DockingWorker] = []
        self._lock = threading.Lock()
        self._closes_at_exit = False

    def __getstate__(self) -> dict[str, Any]:  # processes and locks stay in their process: a copy starts cold
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()

    def _checkout(self) -> DockingWorker:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            worker = DockingWorker()
            with self._lock:
                self._all.append(worker)
                if not self._closes_at_exit:
                    atexit.register(self.close)
                    self._closes_at_exit = True
            return worker

    def run_requests(
        self, messages: list[dict[str, Any]], workers: int, on_crash: Callable[[dict[str, Any], str], dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Each message's reply, in order, using up to `workers` processes at once.

        A request whose worker dies is retried once on a fresh worker (the death may have been the machine's, not
        the molecule's); if it dies again, `on_crash(message, why)` supplies its reply.
        """
        replies: list[dict[str, Any] | None] = [None] * len(messages)
        todo: queue.Queue[int] = queue.Queue()
        for index in range(len(messages)):
            todo.put(index)

        def drain() -> None:
            worker = self._checkout()
            try:
                while True:
                    try:
                        index = todo.get_nowait()
                    except queue.Empty:
                        return
                    replies[index] = _request_with_retry(worker, messages[index], on_crash)
            finally:
                self._idle.put(worker)

        threads = [threading.Thread(target=drain, daemon=True) for _ in range(max(1, min(workers, len(messages))))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return [reply for reply in replies if reply is not None]

    def close(self) -> None:
        """Stop every worker process (new ones start on the next request)."""
        with self._lock:
            workers = list(self._all)
            self._all.clear()
        while True:
            try:
                self._idle.get_nowait()
            except queue.Empty:
                break
        for worker in workers:
            worker.close()


def _request_with_retry(
    worker: DockingWorker, message: dict[str, Any], on_crash: Callable[[dict[str, Any], str], dict[str, Any]]
) -> dict[str, Any]:
    try:
        return worker.request(message)
    except WorkerCrashed:
        pass
    try:
        return worker.request(message)
    except WorkerCrashed as crash:
        return on_crash(message, str(crash))
