"""The sandbox worker: runs inside bubblewrap (or a bare subprocess) and forks one child per candidate.

This file is run as ``python3 -I -c <this source>``, so it must use the standard library only and import
nothing from the project (the project tree is not even visible inside the sandbox). The host imports it too, for
`encode_plain` (the one encoder of plain data, used by the child) and the limits below.

Nothing here decides whether a test passes. The child (the only process that runs candidate code) receives the
test *calls* only, never an expected value; it runs them and sends back what each call returned, as plain data
(exact builtin types, see `encode_plain`). The host compares those values with the expected ones, which never leave
the host. So whatever the candidate does to the child (patched builtins, a forged record on any descriptor, a tracer,
an object that says it equals everything), all it can do is claim an output value.

Protocol, one JSON object per line:
  host -> worker (stdin):  {"job": ID, "code": SRC, "entry_point": NAME, "calls": [CALL, ...], "limits": {...},
                            "preamble": SRC}  (the names the problem declares, run before the code)
                           or {"ping": ID}; a CALL is the base64 of the marshaled code object the host compiled
                           (the same interpreter runs both), or {"source": SRC} when it did not compile there
  worker -> host (stdout): {"job": ID, "records": [RECORD, ...]} as they fill 1 MB, and always last
                           {"job": ID, "records": [...], "done": true, "time_s": T}; or {"pong": ID}. A RECORD is
      {"load": {"status": ..., "error": ...}}                        once, when the module has run
      {"test": I, "status": "returned", "value": JSON, "time_s": T}   what call I returned (JSON text)
      {"test": I, "status": "error" | "not-plain" | "timeout" | "memory-exceeded", "error": ..., ...}
  child -> worker (its own pipe): "V" + JSON of an encoded value, or a JSON object ({"load": ...} or an error
  record), one per line: one load line, then one line per test; the child is killed as soon as it has sent them
  (whatever else it writes is never read), or when a line is over MAX_RECORD_BYTES or the job over MAX_JOB_BYTES.

Children are forked by a zygote (`Zygote`), a process forked before the first job that never receives one, so no
child starts with a copy of an earlier job in its memory. The worker enforces the clocks: when a test overruns, the
child is killed, the test is marked "timeout" and a fresh child runs the remaining tests. It also bounds the
candidate's processes together (their summed memory, sampled), and empties what the candidate could write after
each job, so that one candidate cannot change what the next one measures.
"""

import binascii
import ctypes
import json
import marshal
import os
import resource
import select
import signal
import struct
import sys
import time

DEFAULT_PREAMBLE = "from typing import *\n"  # what the task text tells the model is already done
# Modules kept loaded in the worker, so that a candidate's own `import` of them costs nothing (and works where the
# interpreter's files are unreadable to the sandbox uid). Loaded is not in scope: a program names what it imports.
WARM_MODULES = ("typing", "collections", "heapq", "math", "itertools", "functools", "bisect", "string", "re",
                "array", "cmath", "copy", "dataclasses", "decimal", "enum", "fractions", "operator", "queue",
                "random", "statistics", "traceback", "linecache", "socket")

_preamble_namespace = {}  # DEFAULT_PREAMBLE's names, built once in the worker and copied by each child

MAX_RECORD_BYTES = 32 << 20  # one returned value (HumanEval+ has 12 MB answers); a longer line kills the child
MAX_JOB_BYTES = 256 << 20  # everything one candidate sends, all its tests together
FLUSH_BYTES = 1 << 20  # records go to the host in batches of about this size, and at the end of the job
MAX_DEPTH = 100  # nesting of a returned value
MAX_NODES = 5_000_000  # elements of a returned value, all levels together
MEMORY_POLL_S = 0.05  # how often the summed memory of a candidate with several processes is read
TEXT_CHARS = 300  # error texts are truncated in the child; the host truncates again for display


# ---------------------------------------------------------------- plain data (both sides)

class NotPlain(Exception):
    """A value that is not plain data: the test fails with this reason."""


_INT_JSON = 1 << 63  # larger integers travel as hex text, which has no digit limit


def encode_plain(value, depth=0, budget=None):
    """`value` as a JSON-able tree, accepting exact builtin types only (a subclass of int is not an int here).

    None, bool, str and ints below 2**63 are themselves; floats are themselves when finite. Everything else is a
    one-key object: {"int": hex}, {"float": "nan"|"inf"|"-inf"}, {"bytes": hex}, {"tuple": [...]}, {"set": [...]},
    {"frozenset": [...]}, {"dict": [[key, value], ...]}, and a long list of floats or of 64-bit ints only
    {"f64" | "i64" | "num": ...} (see `_packed`); other lists are JSON arrays. Raises NotPlain, saying why.
    """
    if budget is None:
        budget = [MAX_NODES]
    budget[0] -= 1
    if budget[0] < 0:
        raise NotPlain(f"the returned value has more than {MAX_NODES:,} elements")
    kind = type(value)
    if kind is int:
        return value if -_INT_JSON < value < _INT_JSON else {"int": format(value, "x")}
    if kind is str or kind is bool or value is None:
        return value
    if kind is float:
        return value if value - value == 0.0 else {"float": repr(value)}  # inf - inf and nan - nan are nan
    if depth >= MAX_DEPTH:
        raise NotPlain(f"the returned value is nested more than {MAX_DEPTH} levels deep")
    if kind is list:
        packed = _packed(value)
        if packed is not None:
            budget[0] -= len(value)
            if budget[0] < 0:
                raise NotPlain(f"the returned value has more than {MAX_NODES:,} elements")
            return packed
        if _is_flat(value):  # a list of scalars that JSON writes as they are (the common large case): one pass
            budget[0] -= len(value)
            if budget[0] < 0:
                raise NotPlain(f"the returned value has more than {MAX_NODES:,} elements")
            return value
        return [encode_plain(item, depth + 1, budget) for item in value]
    if kind is tuple:
        return {"tuple": [encode_plain(item, depth + 1, budget) for item in value]}
    if kind is set or kind is frozenset:
        return {kind.__name__: [encode_plain(item, depth + 1, budget) for item in value]}
    if kind is dict:
        return {"dict": [[encode_plain(k, depth + 1, budget), encode_plain(v, depth + 1, budget)]
                         for k, v in value.items()]}
    if kind is bytes:
        return {"bytes": value.hex()}
    plain = next((t.__name__ for t in (int, float, str, bool, list, tuple, set, frozenset, dict, bytes)
                  if isinstance(value, t)), None)
    what = f"a subclass of {plain}" if plain else "not plain data"
    raise NotPlain(f"returned an object of type {kind.__name__!r} ({what}); only values of the exact types int, "
                   "float, str, bool, None, bytes, list, tuple, dict, set and frozenset are compared")


_FLAT_TYPES = {str, bool, type(None), int, float}


def _packed(items):
    """A long list of floats only, or of 64-bit ints only, as {"f64" | "i64": base64 of the machine's 8-byte
    values}, and of both as {"num": [base64 of them all as floats, positions of the ints, the ints]}: exact (nan,
    inf and -0.0 included), and several times faster both ways than writing each number in decimal (HumanEval+ has
    answers of millions of numbers). None for any other list."""
    if len(items) < 64:
        return None
    kinds = set(map(type, items))
    import array

    def packed(code, values):
        return binascii.b2a_base64(array.array(code, values).tobytes(), newline=False).decode()

    try:
        if kinds == {float}:
            return {"f64": packed("d", items)}
        if kinds == {int}:
            return {"i64": packed("q", items)}
        if kinds == {int, float}:  # floats packed, ints (placed as floats there) listed exactly by position
            where = [i for i, x in enumerate(items) if type(x) is int]
            ints = [items[i] for i in where]
            if all(-_INT_JSON < x < _INT_JSON for x in ints):
                return {"num": [packed("d", items), where, ints]}
    except OverflowError:  # an int beyond 64 bits, or beyond a float's range: the general form
        pass
    return None


def _is_flat(items):
    """A list of str, bool, None, finite floats and ints below 2**63 only: JSON holds it with no tag."""
    kinds = set(map(type, items))
    if not kinds <= _FLAT_TYPES:
        return False
    if float in kinds and not all(x - x == 0.0 for x in items if type(x) is float):
        return False
    return int not in kinds or all(-_INT_JSON < x < _INT_JSON for x in items if type(x) is int)


# ---------------------------------------------------------------- child side (runs candidate code)

def _short(text, limit=TEXT_CHARS):
    return text if len(text) <= limit else text[: limit - 15] + f"... ({len(text)} chars)"


def _short_traceback(exc):
    """The last frames of the candidate's own code only (file "<candidate>"), not the harness."""
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<candidate>"][-3:]
    lines = [f"line {f.lineno} in {f.name}" + (f": {f.line}" if f.line else "") for f in frames]
    return _short("\n".join(lines), 600)


def _error_record(exc):
    try:
        if isinstance(exc, MemoryError):
            return {"status": "memory-exceeded", "error": "MemoryError: the memory limit was exceeded",
                    "traceback": _short_traceback(exc)}
        return {"status": "error", "error": _short(f"{type(exc).__name__}: {exc}"),
                "traceback": _short_traceback(exc)}
    except BaseException:  # an exception whose __str__ raises is still an error, just without its text
        return {"status": "error", "error": f"{type(exc).__name__} (its message could not be printed)"}


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
        sys.set_int_max_str_digits(0)  # calls may hold huge integers
    dumps = json.dumps

    def send(line):
        view = memoryview(line.encode("utf-8", "surrogatepass") + b"\n")
        while view:
            view = view[os.write(write_fd, view):]

    preamble = job.get("preamble", DEFAULT_PREAMBLE)
    reuse = preamble == DEFAULT_PREAMBLE and _preamble_namespace
    namespace = dict(_preamble_namespace) if reuse else {}
    namespace["__name__"] = "__candidate__"
    try:
        if not reuse:
            exec(compile(preamble, "<preamble>", "exec"), namespace)
        code = compile(job["code"], "<candidate>", "exec")
        import linecache  # so that tracebacks show the candidate's own source lines

        linecache.cache["<candidate>"] = (len(job["code"]), None, job["code"].splitlines(True), "<candidate>")
    except SyntaxError as exc:
        send(dumps({"load": {"status": "syntax-error", "error": _short(f"SyntaxError: {exc.msg} (line {exc.lineno})")}}))
        return
    except BaseException as exc:  # the problem's declared imports failed
        send(dumps({"load": _error_record(exc)}))
        return
    try:
        exec(code, namespace)
    except BaseException as exc:
        send(dumps({"load": _error_record(exc)}))
        return
    name = job["entry_point"]
    function = namespace.get(name)
    if function is None and isinstance(namespace.get("Solution"), type) and hasattr(namespace["Solution"], name):
        function = getattr(namespace["Solution"](), name)  # LeetCode's class-style answers
    if not callable(function):
        send(dumps({"load": {"status": "missing-entry-point", "error": f"no function named {name!r} is defined"}}))
        return
    send(dumps({"load": {"status": "ok"}}))

    for call in job["calls"][start:]:
        scope = {"__builtins__": __builtins__, "inf": float("inf"), "nan": float("nan"), name: function}
        try:
            if isinstance(call, str):
                call = marshal.loads(binascii.a2b_base64(call))
            else:
                call = compile(call["source"], "<test>", "eval")
            got = eval(call, scope)
            line = "V" + dumps(encode_plain(got))
        except NotPlain as exc:
            line = dumps({"status": "not-plain", "error": str(exc)})
        except BaseException as exc:  # SystemExit and KeyboardInterrupt are the candidate's errors too
            line = dumps(_error_record(exc))
        send(line)


# ---------------------------------------------------------------- worker side (trusted)

def _children_of(pid):
    """Direct children of every thread of `pid` (the kernel's own list: no /proc-wide scan)."""
    found = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found += [int(c) for c in f.read().split()]
    except (OSError, ValueError):
        pass
    return found


def _descendants(root_pid):
    """Every live process below `root_pid`, read from /proc (orphans come back to us: we are a subreaper)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat_line = f.read()
                parents[int(entry)] = int(stat_line.rsplit(")", 1)[1].split()[1])
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


def _has_children(zygote_pid, dying=None):
    """Whether any candidate process still lives: a child of the zygote (where children are forked) or of ours
    but the zygote (as a subreaper we adopt every orphan of a candidate), `dying` (a child killed just now) aside,
    but not its own children; None when the kernel cannot tell us."""
    try:
        task_dir = "/proc/self/task"
        ours = [int(c) for tid in os.listdir(task_dir) for c in open(f"{task_dir}/{tid}/children").read().split()]
        if any(c != zygote_pid for c in ours) or any(c != dying for c in _children_of(zygote_pid)):
            return True
        return bool(dying and _children_of(dying))
    except (OSError, ValueError):
        return None


def _candidate_memory_mb(child_pid, zygote_pid):
    """Resident private memory of the candidate's processes together (the child, its descendants and the
    orphans we adopted), or 0.0 while the child is alone (its own RLIMIT_AS bounds it then)."""
    pids = set()
    frontier = [p for p in _children_of(os.getpid()) if p != zygote_pid] + _children_of(zygote_pid)
    if frontier == [child_pid] and not _children_of(child_pid):
        return 0.0
    while frontier:
        pid = frontier.pop()
        if pid not in pids:
            pids.add(pid)
            frontier += _children_of(pid)
    pages = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                fields = f.read().split()
            pages += int(fields[1]) - int(fields[2])  # resident minus file-backed and shared
        except (OSError, ValueError, IndexError):
            pass
    return pages * os.sysconf("SC_PAGE_SIZE") / (1 << 20)


def _kill_everything_below(me, zygote, dying, run_as_uid, own_pid_namespace):
    """Kill every process the candidate left. Returns `dying` (a child killed after its last record) when it is
    still to be reaped, None when it was reaped here."""
    zygote_pid = zygote.pid
    if _has_children(zygote_pid, dying) is False:
        return dying  # the usual case: the child sent everything, was killed, and left nothing behind
    if dying:
        zygote.wait(dying)  # reaped now, so that the scan below does not wait for its zombie
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
        pids = _descendants(me) - {zygote_pid}  # the zygote runs as root, never candidate code
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _reap()
        time.sleep(0.001)
    return None


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


class Zygote:
    """The worker's handle on the zygote: a process forked at start-up, before any job, that forks every child.

    A child forked from the worker itself would start with a copy of the worker's memory, which still holds earlier
    jobs (their calls, the last message): a candidate can read its own memory. The zygote never receives anything
    but "fork" and "wait PID", so every child starts from the same pristine image, whatever ran before it. The
    child's descriptors come back over a Unix socket (SCM_RIGHTS), and so does its exit status: the zygote is its
    parent. One request, one reply, no signal handling.
    """

    def __init__(self, run_as_uid):
        import socket

        self.socket, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.pid = os.fork()
        if self.pid == 0:
            try:
                self.socket.close()
                _zygote_main(theirs, run_as_uid)
            finally:
                os._exit(0)
        theirs.close()

    def request(self, reap=None):
        """Ask for a standby child, to be taken later: the fork happens while the worker waits for its next job.
        `reap`: a child killed after its last record, whose status nobody needs; the zygote reaps it first."""
        self.socket.send(b"fork" if reap is None else f"fork {reap}".encode())

    def take(self):
        """The standby child asked for: (pid, fd to send its job, fd to read its results)."""
        import socket

        data, (job_w, read_fd), _, _ = socket.recv_fds(self.socket, 256, 2)
        if not data:
            raise RuntimeError("the zygote is gone")
        return int(data), job_w, read_fd

    def spawn(self):
        self.request()
        return self.take()

    def wait(self, pid):
        """Kill the child (it has told us all it will) and return its wait status."""
        _kill_child(pid)
        self.socket.send(f"wait {pid}".encode())
        data = self.socket.recv(64)
        if not data:
            raise RuntimeError("the zygote is gone")
        return int(data)


def _zygote_main(sock, run_as_uid):
    import socket

    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)  # the worker's channel to the host is not ours: its end must close when the worker does
    os.close(devnull)
    while True:
        request = sock.recv(64)
        if request.startswith(b"wait "):
            try:
                _, status = os.waitpid(int(request[5:]), 0)
            except (ChildProcessError, ValueError):
                status = 0
            sock.send(str(status).encode())
        elif request.startswith(b"fork"):
            if request[5:]:  # a child killed after it sent everything: reaped now, off the worker's time
                try:
                    os.waitpid(int(request[5:]), 0)
                except (ChildProcessError, ValueError):
                    pass
            job_r, job_w = os.pipe()
            read_fd, write_fd = os.pipe()
            pid = os.fork()
            if pid == 0:
                try:
                    _standby(job_r, write_fd, run_as_uid)  # closes every descriptor but these two first
                finally:
                    os._exit(0)
            socket.send_fds(sock, [str(pid).encode()], [job_w, read_fd])
            for fd in (job_r, job_w, read_fd, write_fd):
                os.close(fd)
        else:
            return  # the worker is gone (or confused): so are we


_RECORD_FIELDS = ("error", "traceback")
_CHILD_STATUSES = ("error", "not-plain", "memory-exceeded")
_LOAD_STATUSES = ("ok", "syntax-error", "missing-entry-point", "error", "memory-exceeded")


def _clean(record, statuses):
    """Known fields only, texts cut: the records come from the process that ran candidate code."""
    status = record.get("status")
    clean = {"status": status if status in statuses else "error"}
    for key in _RECORD_FIELDS:
        value = record.get(key)
        if isinstance(value, str):
            clean[key] = value[:2000]
    if status not in statuses:
        clean["error"] = "garbled result from the test process"
    return clean


class _JobState:
    """What one job has produced so far, across the children that ran it (a timeout starts a fresh child)."""

    def __init__(self, job, out):
        self.job, self.out = job, out
        self.n = len(job["calls"])
        self.load = None  # the load record, once sent
        self.done = 0  # tests reported so far
        self.bytes = 0  # everything the candidate's children sent
        self.last = time.monotonic()  # when the last record came: a test's time is the gap since
        self.pending, self.pending_bytes = [], 0

    def _add(self, record):
        text = json.dumps(record)
        self.pending.append(text)
        self.pending_bytes += len(text)
        if self.pending_bytes > FLUSH_BYTES:
            self.flush()

    def flush(self, **final):
        head = json.dumps(dict(final, job=self.job["job"]))[:-1]
        self.out.write(head + ', "records": [' + ", ".join(self.pending) + "]}\n")
        self.out.flush()
        self.pending, self.pending_bytes = [], 0

    def send_load(self, record):
        self.load = record
        self._add({"load": record})
        self.last = time.monotonic()

    def send_test(self, record):
        now = time.monotonic()
        record.setdefault("time_s", round(now - self.last, 6))
        self.last = now
        self._add(dict(record, test=self.done))
        self.done += 1


def _handle_line(line, state, first):
    """One line from the child (`first`: its load line); returns a failure record when the protocol is broken."""
    if first:
        try:
            load = json.loads(line)["load"]
            if not isinstance(load, dict):
                raise ValueError
        except (ValueError, KeyError, TypeError, RecursionError):
            return {"status": "error", "error": "garbled result from the test process"}
        load = _clean(load, _LOAD_STATUSES)
        if state.load is None:
            state.send_load(load)
        elif load["status"] != "ok":  # a fresh child after a timeout: its module did not load this time
            return dict(load, error="on a rerun after the previous test: " + load.get("error", load["status"]))
        return None
    if state.done >= state.n:
        return {"status": "error", "error": "the candidate sent more results than there are tests"}
    if line[:1] == b"V":
        state.send_test({"status": "returned", "value": line[1:].decode("utf-8", "replace")})
        return None
    try:
        record = json.loads(line)
        if not isinstance(record, dict):
            raise ValueError
    except (ValueError, RecursionError):
        record = {}
    state.send_test(_clean(record, _CHILD_STATUSES))
    return None


def _kill_child(pid):
    for kill, target in ((os.killpg, pid), (os.kill, pid)):
        try:
            kill(target, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _run_child(state, deadline, zygote, workdir, child=None):
    """Run the job's tests from state.done on in a (standby) child. Returns (a failure record or None, the pid of
    a child that was killed after sending everything but is not reaped yet, or None)."""
    job = state.job
    pid, job_w, read_fd = child or zygote.spawn()
    start = state.done
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
    limits = job["limits"]
    test_timeout = limits["test_timeout_s"]
    memory_mb = limits["memory_mb"]
    partial, partial_bytes = [], 0  # the current line's chunks so far
    test_deadline = min(deadline, time.monotonic() + test_timeout)
    next_memory_check = time.monotonic() + MEMORY_POLL_S
    failure = None
    finished = False
    lines = 0  # lines this child sent: the first is its load line
    while failure is None:
        now = time.monotonic()
        if now >= test_deadline:
            failure = {"status": "timeout", "error": f"no result within {test_timeout:g} s (wall clock)"}
            if now >= deadline:
                failure["error"] = "the candidate's total time limit ran out"
            break
        if now >= next_memory_check:
            used = _candidate_memory_mb(pid, zygote.pid)
            if used > memory_mb:
                failure = {"status": "memory-exceeded",
                           "error": f"the candidate's processes together used {used:.0f} MB (limit {memory_mb} MB)"}
                break
            next_memory_check = now + MEMORY_POLL_S
        ready, _, _ = select.select([read_fd], [], [], max(0.0, min(test_deadline, next_memory_check) - now))
        if not ready:
            continue
        chunk = os.read(read_fd, 1 << 16)
        if not chunk:  # the child exited (or closed the pipe)
            break
        state.bytes += len(chunk)
        if state.bytes > MAX_JOB_BYTES:
            failure = {"status": "error", "error": f"the candidate sent more than {MAX_JOB_BYTES >> 20} MB of results"}
            break
        begin = 0
        while failure is None:
            end = chunk.find(b"\n", begin)
            if end < 0:
                partial.append(chunk[begin:])
                partial_bytes += len(chunk) - begin
                if partial_bytes > MAX_RECORD_BYTES:
                    failure = {"status": "error",
                               "error": f"a result longer than {MAX_RECORD_BYTES >> 20} MB (the output is too large)"}
                break
            line = b"".join(partial) + chunk[begin:end] if partial else chunk[begin:end]
            partial, partial_bytes = [], 0
            begin = end + 1
            failure = _handle_line(line, state, lines == 0)
            lines += 1
            test_deadline = min(deadline, time.monotonic() + test_timeout)
            if failure is None and (state.load["status"] != "ok" or state.done >= state.n):
                finished = True  # everything this child owes us has come: stop it, whatever it does next
                break
        if finished:
            break
    os.close(read_fd)
    if finished:  # no status needed: the zygote reaps it before its next fork
        _kill_child(pid)
        return None, pid
    status = zygote.wait(pid)
    if failure is None:
        failure = _death_record(status)
    return failure, None


def _clear_folder(folder, keep=()):
    """Remove everything inside `folder` (but the folders named in `keep`, which are emptied instead), without
    recursion and without long paths: each subfolder is first moved up into `folder` itself under a name no
    candidate can guess, so no depth of nesting, no descriptor limit and no mode a candidate set can stop it."""
    token = os.urandom(6).hex()
    moved, pending = [], [folder]
    while pending:
        current = pending.pop()
        if current != folder:
            try:
                os.chmod(current, 0o700)  # the candidate may have made its folder unreadable (we own it, or are root)
            except OSError:
                pass
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            try:
                is_folder = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_folder = False
            if not is_folder:
                try:
                    os.unlink(entry.path)
                except OSError:
                    pass
            elif current == folder and entry.name in keep:
                pending.append(entry.path)
            else:
                target = os.path.join(folder, f".tgd-clear-{token}-{len(moved)}")
                try:
                    os.rename(entry.path, target)
                except OSError:
                    continue
                moved.append(target)
                pending.append(target)
    for target in moved:  # each is empty now: its files are gone and its subfolders were moved out of it
        try:
            os.rmdir(target)
        except OSError:
            pass


def run_job(job, out, zygote, run_as_uid, tmp_root, own_pid_namespace=False, standby=None):
    """Run one job and stream its records; returns the pid of its last child when that is still to be reaped."""
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
    state = _JobState(job, out)
    unreaped = None
    try:
        while True:
            failure, unreaped = _run_child(state, deadline, zygote, workdir, standby)
            standby = None
            unreaped = _kill_everything_below(os.getpid(), zygote, unreaped, run_as_uid, own_pid_namespace)
            if state.load is None:
                state.send_load(dict(failure or {}, status=(failure or {}).get("status", "error")))
                break  # the module itself hung or crashed: reported once, no test ran
            if state.load["status"] != "ok" or state.done >= state.n:
                break
            if failure is not None:
                state.send_test(dict(failure, time_s=round(limits["test_timeout_s"], 3)))
            if state.done >= state.n:
                break
            if time.monotonic() >= deadline:
                while state.done < state.n:
                    state.send_test({"status": "timeout", "error": "not run: the candidate's total time limit ran out",
                                     "time_s": 0.0})
                break
        state.flush(done=True, time_s=round(time.monotonic() - t0, 6))  # the host goes on while we clean up
    finally:
        _clear_writable_places(tmp_root, workdir, run_as_uid)
    return unreaped


def _clear_writable_places(tmp_root, workdir, run_as_uid):
    """Everything a candidate could have written, so nothing of one candidate is there for the next: its own
    folder when it runs as the sandbox uid (the rest of /tmp and /dev/shm belong to root, mode 0755), and
    everything our uid may write otherwise."""
    if run_as_uid is not None:
        _clear_folder(workdir)
        return
    _clear_folder(tmp_root, keep=(os.path.basename(workdir),))
    if tmp_root == "/tmp":  # inside bubblewrap, where /dev/shm is the sandbox's own
        _clear_folder("/dev/shm")


# ---------------------------------------------------------------- seccomp: no new namespaces, no kernel objects by name

# Kernel objects that outlive the process that made them and are found by name or key, not by descriptor: keyrings
# (add_key, request_key, keyctl), System V IPC (message queues, semaphores, shared memory) and POSIX message queues.
# One candidate could leave something there for the next (or read the caller's session keyring): every call fails.
_KERNEL_OBJECT_CALLS = {
    "x86_64": (248, 249, 250,  # add_key request_key keyctl
               29, 30, 31, 67, 64, 65, 66, 220, 68, 69, 70, 71,  # shm* sem* msg*
               240, 241, 242, 243, 244, 245),  # mq_*
    "aarch64": (217, 218, 219,
                194, 195, 196, 197, 190, 191, 192, 193, 186, 187, 188, 189,
                180, 181, 182, 183, 184, 185),
}


def _join_fresh_session_keyring():
    """Leave the caller's session keyring for a new, empty one (keyctl JOIN_SESSION_KEYRING): even where the
    filter below cannot be installed, nothing below the worker reaches a key of the caller's session."""
    import platform

    number = {"x86_64": 250, "aarch64": 219}.get(platform.machine())
    if number is not None:
        ctypes.CDLL(None, use_errno=True).syscall(number, 1, None)  # KEYCTL_JOIN_SESSION_KEYRING, anonymous


def _install_syscall_filter():
    """A seccomp filter for this process and every process it forks: unshare() and clone() with any CLONE_NEW*
    flag fail with EPERM, clone3() with ENOSYS (its flags live in memory a filter cannot read; the C library
    then falls back to clone()), setns() with EPERM, and so does every call that makes or reaches a kernel object
    by name (`_KERNEL_OBJECT_CALLS`). Returns False where the kernel or arch does not allow it.
    """
    import platform

    arches = {"x86_64": (0xC000003E, {"unshare": 272, "clone": 56, "clone3": 435, "setns": 308}),
              "aarch64": (0xC00000B7, {"unshare": 97, "clone": 220, "clone3": 435, "setns": 268})}
    if platform.machine() not in arches:
        return False
    audit_arch, nr = arches[platform.machine()]
    new_namespaces = 0x7E020000  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
    ld_w, jeq, jset, ret = 0x20, 0x15, 0x45, 0x06
    allow, eperm, enosys = 0x7FFF0000, 0x00050000 | 1, 0x00050000 | 38
    program = [
        (ld_w, 0, 0, 4),                          # A = arch
        (jeq, 1, 0, audit_arch),                  # native arch: go on; anything else: kill
        (ret, 0, 0, 0x80000000),                  # SECCOMP_RET_KILL_PROCESS
        (ld_w, 0, 0, 0),                          # A = syscall number
        (jset, 0, 1, 0x40000000), (ret, 0, 0, eperm),  # the x32 numbering of the same calls
        (jeq, 0, 1, nr["clone3"]), (ret, 0, 0, enosys),
        (jeq, 0, 1, nr["setns"]), (ret, 0, 0, eperm),
    ]
    for number in _KERNEL_OBJECT_CALLS[platform.machine()]:
        program += [(jeq, 0, 1, number), (ret, 0, 0, eperm)]
    program += [
        (jeq, 1, 0, nr["unshare"]),               # unshare: test its flags (argument 0)
        (jeq, 0, 4, nr["clone"]),                 # clone: test its flags (argument 0); other calls: allow
        (ld_w, 0, 0, 16),                         # A = low 32 bits of argument 0
        (jset, 0, 1, new_namespaces),
        (ret, 0, 0, eperm),
        (ret, 0, 0, allow),
        (ret, 0, 0, allow),
    ]
    filters = b"".join(struct.pack("HBBI", *op) for op in program)
    buffer = ctypes.create_string_buffer(filters)
    fprog = struct.pack("HL", len(program), ctypes.addressof(buffer))
    fprog_buffer = ctypes.create_string_buffer(fprog)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS: required to install a filter without privilege
        return False
    return libc.prctl(22, 2, ctypes.addressof(fprog_buffer), 0, 0) == 0  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER


def main():
    run_as_uid = int(os.environ["SANDBOX_UID"]) if os.environ.get("SANDBOX_UID") else None
    tmp_root = os.environ.get("SANDBOX_TMP", "/tmp")
    own_pid_namespace = os.environ.get("SANDBOX_PIDNS") == "1"
    try:  # orphans of a candidate come back to the worker, so nothing a candidate starts outlives its job
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass
    try:
        _join_fresh_session_keyring()
    except (OSError, AttributeError):
        pass
    try:
        namespaces_denied = _install_syscall_filter()
    except (OSError, AttributeError, ValueError):
        namespaces_denied = False
    # Warm the child's imports once; every fork then starts with them loaded.
    # Also warms modules candidates often import: after the uid drop the interpreter's own files may be unreadable
    # (a Python installed under /root in the fallback), and a module already in sys.modules needs no file.
    exec(compile(DEFAULT_PREAMBLE, "<preamble>", "exec"), _preamble_namespace)
    _preamble_namespace.pop("__builtins__", None)
    for module in WARM_MODULES:
        __import__(module)

    import gc

    gc.freeze()  # the warm objects stay out of the children's collections: fewer copy-on-write page faults

    out = sys.stdout
    zygote = Zygote(run_as_uid)  # before any job: it holds nothing of one
    zygote.request()
    for line in sys.stdin:
        message = json.loads(line)
        if "ping" in message:
            out.write(json.dumps({"pong": message["ping"], "namespaces_denied": namespaces_denied}) + "\n")
            out.flush()
            continue
        unreaped = run_job(message, out, zygote, run_as_uid, tmp_root, own_pid_namespace, zygote.take())
        # After the reply (the caller goes on meanwhile) and after the clean-up (which would kill it).
        zygote.request(reap=unreaped)


if __name__ == "__main__":
    main()
