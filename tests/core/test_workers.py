"""JsonLinesWorker: one request line in, one reply line out; a death is an error naming why, and the next request
starts a fresh process."""

import sys

import pytest

from tgdomains.workers import JsonLinesWorker, WorkerDied

ECHO = ("import json, sys\n"
        "for line in sys.stdin:\n"
        "    m = json.loads(line)\n"
        "    if m.get('die'):\n"
        "        sys.stderr.write('progress 50%\\nout of luck\\nprogress 90%\\n'); sys.exit(3)\n"
        "    print(json.dumps({'echo': m, 'pid': __import__('os').getpid()}), flush=True)\n")


def test_a_worker_answers_dies_on_one_request_and_restarts():
    worker = JsonLinesWorker([sys.executable, "-c", ECHO], what="echo worker",
                             quiet=lambda line: line.startswith("progress"))
    try:
        first = worker.request({"a": 1})
        assert first["echo"] == {"a": 1} and worker.request({"b": 2})["pid"] == first["pid"]  # the same process
        with pytest.raises(WorkerDied, match=r"the echo worker process died \(exit code 3\): out of luck"):
            worker.request({"die": True})
        again = worker.request({"c": 3})
        assert again["echo"] == {"c": 3} and again["pid"] != first["pid"]
    finally:
        worker.close()
    assert worker.process is None
