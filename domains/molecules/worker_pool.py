"""Long-lived docking worker processes (``python -m domains.molecules.worker``, spoken to in JSON lines through
`tgdomains.workers.JsonLinesWorker`), and running many docking requests across them.

Each worker runs in a session of its own, so that a docking past its time limit is stopped whole: the worker and the
programs it started (obabel, the Vina binary) are killed together, and the next request starts a fresh worker."""

from __future__ import annotations

import atexit
import json
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from tgdomains.workers import JsonLinesWorker, WorkerStalled
from tgdomains.workers import WorkerDied as WorkerCrashed


def docking_worker() -> JsonLinesWorker:
    """One docking worker process (started on its first request), in a session of its own (see the module doc)."""
    return JsonLinesWorker([sys.executable, "-m", "domains.molecules.worker"], what="docking worker",
                           quiet=lambda line: "Search space volume" in line, own_session=True)


class WorkerPool:
    """Warm docking workers, reused across requests, owned by whoever docks (a `Docker`, or the molecules domain
    so that every run of a process shares them). Processes start on first use; `close()` (also run at exit once a
    process was started) stops them, and the next request starts new ones."""

    def __init__(self) -> None:
        self._idle: queue.LifoQueue[JsonLinesWorker] = queue.LifoQueue()  # warm workers not in use, newest first
        self._all: list[JsonLinesWorker] = []
        self._lock = threading.Lock()
        self._closes_at_exit = False

    def __getstate__(self) -> dict[str, Any]:  # processes and locks stay in their process: a copy starts cold
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()

    def _checkout(self) -> JsonLinesWorker:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            worker = docking_worker()
            with self._lock:
                self._all.append(worker)
                if not self._closes_at_exit:
                    atexit.register(self.close)
                    self._closes_at_exit = True
            return worker

    def run_requests(
        self, messages: list[dict[str, Any]], workers: int, on_crash: Callable[[dict[str, Any], str], dict[str, Any]],
        time_limit_s: float | None = None,
    ) -> list[dict[str, Any]]:
        """Each message's reply, in order, using up to `workers` processes at once.

        A request whose worker dies is retried once on a fresh worker (the death may have been the machine's, not
        the molecule's); if it dies again, `on_crash(message, why)` supplies its reply. A request not answered
        within `time_limit_s` has its worker killed and is not retried: `on_crash(message, why)` answers it.
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
                    replies[index] = _request_with_retry(worker, messages[index], on_crash, time_limit_s)
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
    worker: JsonLinesWorker, message: dict[str, Any], on_crash: Callable[[dict[str, Any], str], dict[str, Any]],
    time_limit_s: float | None,
) -> dict[str, Any]:
    for attempt in range(2):
        try:
            return _request(worker, message, time_limit_s)
        except WorkerCrashed as crash:
            if attempt:
                return on_crash(message, str(crash))
        except WorkerStalled:
            worker.kill()  # its whole session: the docking programs it started stop too
            return on_crash(message, f"docking took longer than the time limit of {time_limit_s:g} s, so it was "
                                     "stopped")
    raise AssertionError("unreachable")


def _request(worker: JsonLinesWorker, message: dict[str, Any], time_limit_s: float | None) -> dict[str, Any]:
    """The worker's reply to `message`, waiting at most `time_limit_s` (WorkerStalled past it)."""
    if not worker.alive():
        worker.start()
    worker.send(message)
    deadline = None if time_limit_s is None else time.monotonic() + time_limit_s
    return json.loads(worker.read_line(deadline=deadline))
