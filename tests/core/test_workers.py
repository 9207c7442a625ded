"""JsonLinesWorker: one request line in, one reply line out; a death is an error naming why, and the next request
starts a fresh process. A stream of lines is read with a deadline and a line limit; a kill takes the worker's
whole session; a forked copy never touches the parent's worker."""

import json
import sys
import time

import pytest

from tgdomains.workers import JsonLinesWorker, WorkerDied, WorkerStalled

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


STREAM = ("import json, os, subprocess, sys, time\n"
          "for line in sys.stdin:\n"
          "    m = json.loads(line)\n"
          "    if 'lines' in m:\n"
          "        for i in range(m['lines']):\n"
          "            print(json.dumps({'record': i}), flush=True)\n"
          "        time.sleep(60)\n"
          "    elif 'unending' in m:\n"
          "        sys.stdout.write('x' * m['unending']); sys.stdout.flush(); time.sleep(60)\n"
          "    elif 'spawn' in m:\n"
          "        child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
          "        print(json.dumps({'child': child.pid}), flush=True)\n")


def test_a_stream_of_lines_is_read_with_a_deadline_and_a_line_limit():
    worker = JsonLinesWorker([sys.executable, "-c", STREAM], what="stream worker", own_session=True)
    try:
        worker.start()
        worker.send({"lines": 3})
        deadline = time.monotonic() + 5
        assert [json.loads(worker.read_line(deadline)) for _ in range(3)] == [{"record": i} for i in range(3)]
        with pytest.raises(WorkerStalled, match="no complete line in time"):
            worker.read_line(time.monotonic() + 0.3)  # it hangs after its records: the deadline ends the wait
        worker.kill()
        assert worker.process is None
        worker.start()
        worker.send({"unending": 200_000})
        with pytest.raises(WorkerStalled, match="a line of more than 100000 bytes"):
            worker.read_line(time.monotonic() + 20, max_bytes=100_000)
    finally:
        worker.kill()


def test_kill_ends_the_workers_whole_session():
    worker = JsonLinesWorker([sys.executable, "-c", STREAM], what="stream worker", own_session=True)
    child = worker.request({"spawn": 1})["child"]
    worker.kill()
    deadline = time.monotonic() + 10
    while _running(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(child), "a process the worker started survived the kill"


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_forked_copy_starts_its_own_worker_and_leaves_the_parents_alone():
    import multiprocessing

    # In a session of its own, as the code sandbox's: a copy that killed it would kill the parent's whole session.
    worker = JsonLinesWorker([sys.executable, "-c", ECHO], what="echo worker", own_session=True)
    try:
        parent_pid = worker.request({"a": 1})["pid"]
        context = multiprocessing.get_context("fork")
        results = context.Queue()
        child = context.Process(target=_use_a_forked_copy, args=(worker, results))  # inherited, not pickled
        child.start()
        alive_in_child, pid_in_child = results.get(timeout=60)
        child.join(60)
        assert alive_in_child is False and pid_in_child != parent_pid
        assert worker.alive() and worker.request({"b": 2})["pid"] == parent_pid  # the copy left it running
    finally:
        worker.close()


def _use_a_forked_copy(worker: JsonLinesWorker, results) -> None:
    alive = worker.alive()  # the parent's process is not this copy's
    pid = worker.request({"c": 3})["pid"]
    worker.close()
    results.put((alive, pid))
