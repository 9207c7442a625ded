"""The sandbox worker: runs inside bubblewrap (or a bare subprocess) and forks one child per candidate.

This file is run as ``python3 -I -c <this source>``, so it must use the standard library only and import
nothing from the project (the project tree is not even visible inside the sandbox).

Protocol, one JSON object per line:
  parent -> worker (stdin):  {"job": ID, "code": SRC, "entry_point": NAME, "tests": [{"call": SRC, "expected": SRC}],
                              "atol": FLOAT, "limits": {...}}   or   {"ping": ID}
  worker -> parent (stdout): {"job": ID, "load": {...}, "tests": [{...}, ...], "time_s": FLOAT}   or   {"pong": ID}

The child (the only process that runs candidate code) drops to an unprivileged uid, sets rlimits, runs the tests
one by one and streams one result line per test back through its own pipe. The worker enforces the wall clock:
when a test overruns, the child is killed, the test is marked "timeout" and a fresh child runs the remaining tests.
"""

import ctypes
import json
import os
import resource
import select
import shutil
import signal
import sys
import time

PREAMBLE = """\
from typing import *
import collections, heapq, math, itertools, functools, bisect, string, re
from collections import *
from heapq import *
from bisect import *
from itertools import *
from functools import *
inf = float("inf")
"""

_preamble_namespace = {}  # the preamble's names, built once in the worker and copied by each child
# Test expressions compiled by the worker after a job, so that the next candidates on the same problem (the usual
# optimization loop) inherit them through fork instead of compiling each one again.
_compiled = {}
MAX_COMPILED = 20000

MAX_LINE_BYTES = 1 << 20  # a child that floods its result pipe is killed, not buffered without end
TEXT_CHARS = 300  # repr and error texts are truncated in the child; the parent truncates again for display


# ---------------------------------------------------------------- child side (runs candidate code)

def _short(text, limit=TEXT_CHARS):
    return text if len(text) <= limit else text[: limit - 15] + f"... ({len(text)} chars)"


def _safe_repr(value):
    try:
        return _short(repr(value))
    except BaseException as exc:  # a hostile __repr__ must not escape as a harness error
        return f"<unprintable {type(value).__name__}: {type(exc).__name__}>"


def _same(got, expected, atol):
    """HumanEval+-style equality: floats within atol (1e-6 when atol is 0), everything else with ==."""
    if isinstance(expected, float) and isinstance(got, (int, float)) and not isinstance(got, bool):
        if expected != expected:  # nan
            return got != got
        return abs(got - expected) <= (atol or 1e-6) or got == expected
    if isinstance(expected, (list, tuple)) and isinstance(got, (list, tuple)):
        if type(got) is not type(expected) or len(got) != len(expected):
            return False
        return all(_same(g, e, atol) for g, e in zip(got, expected, strict=True))
    return bool(got == expected)


def _short_traceback(exc):
    """The last frames of the candidate's own code only (file "<candidate>"), not the harness."""
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<candidate>"][-3:]
    lines = [f"line {f.lineno} in {f.name}" + (f": {f.line}" if f.line else "") for f in frames]
    return _short("\n".join(lines), 600)


def _error_record(exc):
    if isinstance(exc, MemoryError):
        return {"status": "memory-exceeded", "error": "MemoryError: the memory limit was exceeded",
                "traceback": _short_traceback(exc)}
    return {"status": "error", "error": _short(f"{type(exc).__name__}: {exc}"), "traceback": _short_traceback(exc)}


def _limit_self(limits, run_as_uid):
    mb = 1024 * 1024
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_AS, (limits["memory_mb"] * mb,) * 2)
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_s"], limits["cpu_s"] + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_mb"] * mb,) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits["open_files"],) * 2)
    resource.setrlimit(resource.RLIMIT_NPROC, (limits["processes"],) * 2)
    if run_as_uid is not None:
        # Order matters: groups and gid first, while we still may change them.
        os.setgroups([])
        os.setgid(run_as_uid)
        os.setuid(run_as_uid)


def _detach(keep):
    """Own process group, and no descriptor but `keep`: the worker's control channel is never reachable."""
    os.setsid()  # the worker kills the whole group on timeout
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    for fd in _open_fds():
        if fd > 2 and fd not in keep and fd != devnull:
            try:
                os.close(fd)  # listing the open fds is much cheaper than closing the whole range on some kernels
            except OSError:
                pass  # the listing's own descriptor, already closed
    os.close(devnull)


def _standby(job_fd, write_fd, run_as_uid):
    """A forked child waiting for its job: forking ahead takes the fork's cost off the candidate's time."""
    _detach({job_fd, write_fd})
    chunks = []
    while True:
        chunk = os.read(job_fd, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(job_fd)
    if not chunks:
        return  # the worker is gone or retired us
    message = json.loads(b"".join(chunks))
    _child(message["job"], message["start"], write_fd, message["workdir"], run_as_uid)


def _child(job, start, write_fd, workdir, run_as_uid):
    os.chdir(workdir)
    _limit_self(job["limits"], run_as_uid)
    sys.setrecursionlimit(20000)
    if hasattr(sys, "set_int_max_str_digits"):
        sys.set_int_max_str_digits(0)  # expected values may be huge integers

    out = os.fdopen(write_fd, "w", buffering=1)

    def send(record):
        out.write(json.dumps(record) + "\n")
        out.flush()

    namespace = dict(_preamble_namespace) if _preamble_namespace else {}
    namespace["__name__"] = "__candidate__"
    try:
        if not _preamble_namespace:
            exec(compile(PREAMBLE, "<preamble>", "exec"), namespace)
        code = compile(job["code"], "<candidate>", "exec")
        import linecache  # so that tracebacks show the candidate's own source lines

        linecache.cache["<candidate>"] = (len(job["code"]), None, job["code"].splitlines(True), "<candidate>")
    except SyntaxError as exc:
        send({"load": {"status": "syntax-error", "error": _short(f"SyntaxError: {exc.msg} (line {exc.lineno})")}})
        return
    try:
        exec(code, namespace)
    except BaseException as exc:
        send({"load": _error_record(exc)})
        return
    name = job["entry_point"]
    function = namespace.get(name)
    if function is None and isinstance(namespace.get("Solution"), type) and hasattr(namespace["Solution"], name):
        function = getattr(namespace["Solution"](), name)  # LeetCode's class-style answers
    if not callable(function):
        send({"load": {"status": "missing-entry-point", "error": f"no function named {name!r} is defined"}})
        return
    send({"load": {"status": "ok"}})

    atol = job.get("atol", 0.0)
    for test in job["tests"][start:]:
        scope = {"__builtins__": __builtins__, "inf": float("inf"), "nan": float("nan"), name: function}
        t0 = time.perf_counter()
        try:
            expected = eval(_compiled.get(test["expected"]) or test["expected"], dict(scope))
            got = eval(_compiled.get(test["call"]) or test["call"], scope)
            ok = _same(got, expected, atol)
            record = {"status": "passed" if ok else "failed", "got": _safe_repr(got)}
        except BaseException as exc:  # SystemExit and KeyboardInterrupt are the candidate's errors too
            record = _error_record(exc)
        record["time_s"] = round(time.perf_counter() - t0, 6)
        send(record)


# ---------------------------------------------------------------- worker side (trusted)

def _descendants(root_pid):
    """Every live process below `root_pid`, read from /proc (orphans come back to us: we are a subreaper)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
                parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = set(), {root_pid}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier and pid not in found}
        found |= frontier
    return found


def _open_fds():
    try:
        return [int(fd) for fd in os.listdir("/proc/self/fd")]
    except OSError:
        return list(range(3, 1 << 16))


def _has_children():
    """Whether any process still lives below us. As a subreaper we adopt every orphan of a candidate, so a live
    descendant always shows up as a direct child of one of our threads; None when the kernel cannot tell us."""
    try:
        task_dir = "/proc/self/task"
        return any(open(f"{task_dir}/{tid}/children").read().strip() for tid in os.listdir(task_dir))
    except OSError:
        return None


def _kill_everything_below(me, run_as_uid, own_pid_namespace):
    if _has_children() is False:
        return  # the usual case: the child exited and left nothing behind
    if run_as_uid is not None and own_pid_namespace:
        # kill(-1) from the sandbox uid signals every process of that uid in one atomic sweep, which is what
        # stops a fork bomb that forks faster than a /proc scan can follow. Only inside our own pid namespace:
        # outside it the same sweep would hit unrelated processes of that uid on the host.
        reaper = os.fork()
        if reaper == 0:
            try:
                os.setgroups([])
                os.setgid(run_as_uid)
                os.setuid(run_as_uid)
                os.kill(-1, signal.SIGKILL)
            finally:
                os._exit(0)
        os.waitpid(reaper, 0)
    for _ in range(50):
        pids = _descendants(me)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _reap()
        time.sleep(0.001)


def _reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _death_record(status):
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGXCPU:
            return {"status": "timeout", "error": "CPU time limit exceeded"}
        if sig == signal.SIGXFSZ:
            return {"status": "error", "error": "file size limit exceeded"}
        if sig in (signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS):
            return {"status": "memory-exceeded",
                    "error": f"process crashed ({signal.Signals(sig).name}): out of memory or recursion too deep"}
        return {"status": "error", "error": f"process killed by {signal.Signals(sig).name}"}
    return {"status": "error", "error": f"process exited with code {os.WEXITSTATUS(status)} during the test"}


def spawn_child(run_as_uid):
    """Fork a standby child; returns (pid, fd to send its job, fd to read its results)."""
    job_r, job_w = os.pipe()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(job_w)
            os.close(read_fd)
            _standby(job_r, write_fd, run_as_uid)
        finally:
            os._exit(0)
    os.close(job_r)
    os.close(write_fd)
    return pid, job_w, read_fd


def _clean(record):
    """Known fields only, texts cut: the records come from the process that ran candidate code."""
    clean = {}
    for key in ("status", "got", "error", "traceback", "time_s"):
        value = record.get(key)
        if isinstance(value, str):
            clean[key] = value[:2000]
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            clean[key] = value
    return clean


def _run_child(job, start, deadline, run_as_uid, workdir, child=None):
    """Run tests[start:] in a (standby) child; return (load record or None, test records, failure or None)."""
    pid, job_w, read_fd = child or spawn_child(run_as_uid)
    try:
        os.write(job_w, b"")  # fails at once if the standby died
        data = json.dumps({"job": job, "start": start, "workdir": workdir}).encode()
        view = memoryview(data)
        while view:
            view = view[os.write(job_w, view):]
    except OSError:
        pass  # the child is gone; its exit status says why below
    finally:
        os.close(job_w)
    test_timeout = job["limits"]["test_timeout_s"]
    load, records, buffer = None, [], b""
    test_deadline = min(deadline, time.monotonic() + test_timeout)
    failure = None
    while True:
        wait = test_deadline - time.monotonic()
        if wait <= 0:
            failure = {"status": "timeout", "error": f"no result within {test_timeout:g} s (wall clock)"}
            if time.monotonic() >= deadline:
                failure["error"] = "the candidate's total time limit ran out"
            break
        ready, _, _ = select.select([read_fd], [], [], wait)
        if not ready:
            continue
        chunk = os.read(read_fd, 65536)
        if not chunk:  # the child exited (or closed the pipe)
            break
        buffer += chunk
        if len(buffer) > MAX_LINE_BYTES:
            failure = {"status": "error", "error": "the candidate flooded the result channel"}
            break
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                failure = {"status": "error", "error": "garbled result from the test process"}
                break
            if not isinstance(record, dict):
                failure = {"status": "error", "error": "garbled result from the test process"}
                break
            if "load" in record and load is None:
                load = _clean(record["load"]) if isinstance(record["load"], dict) else {"status": "error"}
            else:
                records.append(_clean(record))
            test_deadline = min(deadline, time.monotonic() + test_timeout)
        if failure:
            break
    os.close(read_fd)
    if failure is not None:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _, status = os.waitpid(pid, 0)
    if failure is None and (load is None or (load.get("status") == "ok" and start + len(records) < len(job["tests"]))):
        failure = _death_record(status)
    return load, records, failure


def _remember_tests(tests):
    if len(_compiled) > MAX_COMPILED:
        _compiled.clear()
    for test in tests:
        for source in (test["call"], test["expected"]):
            if source not in _compiled:
                try:
                    _compiled[source] = compile(source, "<test>", "eval")
                except (SyntaxError, ValueError):
                    pass  # the child reports it when it evaluates the text


def _empty(folder):
    try:
        leftovers = os.listdir(folder)
    except OSError:
        return
    for name in leftovers:
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass


def run_job(job, run_as_uid, tmp_root, own_pid_namespace=False, standby=None):
    t0 = time.monotonic()
    limits = job["limits"]
    deadline = t0 + limits["total_timeout_s"]
    # One folder per worker, emptied after each job (removing and re-creating it costs milliseconds on some
    # file systems); its owner and mode are reset each time, since the previous candidate owned it.
    workdir = os.path.join(tmp_root, f"work-{os.getpid()}")
    os.makedirs(workdir, exist_ok=True)
    if run_as_uid is not None:
        os.chown(workdir, run_as_uid, run_as_uid)
    os.chmod(workdir, 0o700)
    tests, load, n = [], None, len(job["tests"])
    try:
        while True:
            child_load, records, failure = _run_child(job, len(tests), deadline, run_as_uid, workdir, standby)
            standby = None
            _kill_everything_below(os.getpid(), run_as_uid, own_pid_namespace)
            if load is None:
                load = child_load or dict(failure or {}, status=(failure or {}).get("status", "error"))
                if child_load is None:
                    break  # the module itself hung or crashed: reported once, no test ran
            if load.get("status") != "ok":
                break
            tests.extend(records[: n - len(tests)])
            if failure is not None and len(tests) < n:
                tests.append(dict(failure, time_s=round(limits["test_timeout_s"], 3)))
            if len(tests) >= n:
                break
            if time.monotonic() >= deadline:
                left = n - len(tests)
                tests.extend([{"status": "timeout", "error": "not run: the candidate's total time limit ran out"}] * left)
                break
    finally:
        _empty(workdir)
    return {"job": job["job"], "load": load, "tests": tests, "time_s": round(time.monotonic() - t0, 6)}


def main():
    run_as_uid = int(os.environ["SANDBOX_UID"]) if os.environ.get("SANDBOX_UID") else None
    tmp_root = os.environ.get("SANDBOX_TMP", "/tmp")
    own_pid_namespace = os.environ.get("SANDBOX_PIDNS") == "1"
    try:  # orphans of a candidate come back to the worker, so nothing a candidate starts outlives its job
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass
    # Warm the child's imports once; every fork then starts with them loaded.
    # Also warms modules candidates often import: after the uid drop the interpreter's own files may be unreadable
    # (a Python installed under /root in the fallback), and a module already in sys.modules needs no file.
    exec(compile(PREAMBLE, "<preamble>", "exec"), _preamble_namespace)
    _preamble_namespace.pop("__builtins__", None)
    for module in ("array", "cmath", "copy", "dataclasses", "decimal", "enum", "fractions", "operator", "queue",
                   "random", "statistics", "traceback"):
        __import__(module)

    import gc

    gc.freeze()  # the warm objects stay out of the children's collections: fewer copy-on-write page faults

    out = sys.stdout
    standby = spawn_child(run_as_uid)
    for line in sys.stdin:
        message = json.loads(line)
        if "ping" in message:
            reply = {"pong": message["ping"]}
        else:
            reply = run_job(message, run_as_uid, tmp_root, own_pid_namespace, standby)
            standby = None
        out.write(json.dumps(reply) + "\n")
        out.flush()
        if "ping" not in message:
            _remember_tests(message["tests"])
        if standby is None:
            # After the reply (the caller goes on meanwhile) and after the clean-up (which would kill it).
            standby = spawn_child(run_as_uid)


if __name__ == "__main__":
    main()
