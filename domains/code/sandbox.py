"""Run untrusted candidate code against tests: a long-lived sandboxed worker, one forked child per candidate.

The worker (``worker.py``) starts under bubblewrap: no network, only the system folders and the interpreter
visible (read-only; no home folder, project or problem file), a private ``/tmp``, a new pid namespace, an empty
environment (no API key of yours is visible), and children that drop to an unprivileged uid with rlimits on
memory, CPU, processes, file size and open files. Without bubblewrap it falls back to a plain subprocess with the
same rlimits and uid, and warns what is then not contained. A candidate that crashes, hangs or forks without end
is killed and reported; the worker survives, and a worker that dies anyway is restarted on the next call.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
import weakref
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

WORKER_SOURCE = Path(__file__).with_name("worker.py")
SANDBOX_UID = 65534  # "nobody": candidate code never runs with the caller's uid when we are root
STATUSES = ("passed", "failed", "error", "timeout", "memory-exceeded")


@dataclass(frozen=True)
class TestCase:
    """One test: `call` is a Python expression calling the entry point, `expected` the expected value's source."""

    __test__ = False  # not a pytest class, despite the name

    call: str
    expected: str


@dataclass(frozen=True)
class Limits:
    test_timeout_s: float = 3.0  # wall clock for one test (the module's top level counts as one)
    total_timeout_s: float = 30.0  # wall clock for all tests of one candidate
    memory_mb: int = 512  # address space of the test process
    processes: int = 16  # processes of the sandbox uid (a fork bomb stops here)
    file_mb: int = 16  # largest file the candidate may write
    open_files: int = 64

    def to_worker(self) -> dict[str, float]:
        d = asdict(self)
        d["cpu_s"] = int(math.ceil(self.total_timeout_s)) + 1
        return d


@dataclass(frozen=True)
class TestResult:
    status: str  # one of STATUSES
    call: str
    expected: str
    got: str | None = None
    error: str | None = None
    traceback: str | None = None
    time_s: float = 0.0


@dataclass(frozen=True)
class ExecutionResult:
    """What the sandbox found: whether the module loaded, and one result per test (empty when it did not load)."""

    load_status: str  # ok | syntax-error | missing-entry-point | error | timeout | memory-exceeded | sandbox-error
    load_error: str | None
    tests: list[TestResult] = field(default_factory=list)
    time_s: float = 0.0

    @property
    def loaded(self) -> bool:
        return self.load_status == "ok"

    @property
    def passed(self) -> int:
        return sum(t.status == "passed" for t in self.tests)

    def to_dict(self) -> dict:
        return asdict(self)


def bubblewrap_available() -> bool:
    """True when `bwrap` is installed and can create the namespaces we ask for on this machine."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return False
    probe = [bwrap, *_bwrap_flags(), "--", "/bin/true"]
    try:
        return subprocess.run(probe, capture_output=True, timeout=20, env={}).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")


def _bwrap_flags() -> list[str]:
    # An allowlist, not `/` with holes: the candidate sees the system and the interpreter, and nothing of the
    # user's (home folders, the project, problem files whose hidden tests it could otherwise read and print).
    flags = ["--perms", "0755", "--tmpfs", "/", "--dev", "/dev", "--proc", "/proc",
             "--size", str(256 << 20), "--tmpfs", "/tmp"]
    bound: list[str] = []
    interpreter = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    for path in [*SYSTEM_PATHS, *sorted(interpreter)]:
        if not os.path.lexists(path) or any(path == b or path.startswith(b + "/") for b in bound):
            continue
        if os.path.islink(path) and os.path.dirname(path) == "/":
            flags += ["--symlink", os.readlink(path), path]  # merged /usr: /bin -> usr/bin
            continue
        # bwrap makes the folders leading to a bind 0700; the sandbox uid must be able to walk through them.
        parents = Path(path).parents
        for parent in reversed([str(p) for p in parents if str(p) != "/"]):
            flags += ["--perms", "0755", "--dir", parent]
        flags += ["--ro-bind", path, path]
        bound.append(path)
    flags += ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
              "--die-with-parent", "--new-session", "--chdir", "/tmp"]
    if os.geteuid() == 0:
        # The worker keeps only what it needs to drop children to SANDBOX_UID and clean up after them.
        flags += ["--cap-drop", "ALL"]
        for cap in ("CAP_SETUID", "CAP_SETGID", "CAP_CHOWN", "CAP_KILL", "CAP_DAC_OVERRIDE", "CAP_FOWNER"):
            flags += ["--cap-add", cap]
    else:
        flags += ["--unshare-user"]
    return flags


def _own_process_count() -> int:
    uid = os.getuid()
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                count += os.stat(f"/proc/{entry}").st_uid == uid
            except OSError:
                pass
    return count


class Sandbox:
    """A sandboxed test runner; thread-safe (one candidate at a time per instance; use several for parallelism).

    use_bubblewrap: None = use it when it works here, True = require it, False = the weaker fallback.
    """

    def __init__(self, limits: Limits | None = None, *, use_bubblewrap: bool | None = None) -> None:
        self.limits = limits or Limits()
        self.use_bubblewrap = use_bubblewrap
        self._process: subprocess.Popen | None = None
        self._buffer = b""
        self._lock = threading.Lock()
        self._jobs = 0
        self._fallback_tmp: str | None = None
        self._owner_pid = os.getpid()  # a forked copy of this object (process pools) must start its own worker
        _all_sandboxes.add(self)
        self.restarts = 0
        self._closer_registered = False
        self.contained_by = ""  # "bubblewrap" or "subprocess", once started

    # ---------------------------------------------------------------- public

    def run(self, code: str, entry_point: str, tests: Sequence[TestCase], *, atol: float = 0.0) -> ExecutionResult:
        """Run `code`, then call `entry_point` through each test; never raises for anything the candidate does."""
        if not isinstance(code, str):
            raise TypeError(f"code must be a str, got {type(code).__name__}")
        if not entry_point.isidentifier():
            raise ValueError(f"entry point {entry_point!r} is not a Python identifier")
        with self._lock:
            self._jobs += 1
            job = {"job": self._jobs, "code": code, "entry_point": entry_point, "atol": float(atol),
                   "tests": [{"call": t.call, "expected": t.expected} for t in tests], "limits": self._worker_limits()}
            reply = self._exchange(job, self.limits.total_timeout_s + 15.0)
        if reply is None:
            return ExecutionResult("sandbox-error", "the sandbox worker died while running this candidate (restarted)")
        return _to_result(reply, tests)

    def close(self) -> None:
        with self._lock:
            self._stop()
            if self._fallback_tmp:
                shutil.rmtree(self._fallback_tmp, ignore_errors=True)
                self._fallback_tmp = None

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def alive(self) -> bool:
        return self._process is not None and self._owner_pid == os.getpid() and self._process.poll() is None

    # ---------------------------------------------------------------- worker process

    def _worker_limits(self) -> dict[str, float]:
        limits = self.limits.to_worker()
        if os.geteuid() != 0:
            # Without root the children keep our uid, and RLIMIT_NPROC counts all of its processes on the machine.
            limits["processes"] += _own_process_count()
        return limits

    def _start(self) -> None:
        source = WORKER_SOURCE.read_text()
        python = [sys.executable, "-I", "-c", source]
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
        if os.geteuid() == 0:
            env["SANDBOX_UID"] = str(SANDBOX_UID)
        use_bwrap = self.use_bubblewrap
        if use_bwrap is None:
            use_bwrap = bubblewrap_available()
        elif use_bwrap and not bubblewrap_available():
            raise RuntimeError("bubblewrap was required but `bwrap` is missing or cannot create namespaces here "
                               "(install it: apt-get install bubblewrap)")
        if use_bwrap:
            env["SANDBOX_PIDNS"] = "1"
            setenv = [a for k, v in env.items() for a in ("--setenv", k, v)]
            command = [shutil.which("bwrap"), *_bwrap_flags(), "--clearenv", *setenv, "--", *python]
            cwd = "/"
            self.contained_by = "bubblewrap"
        else:
            warnings.warn(
                "bubblewrap is not available: candidate code runs in a plain subprocess with rlimits"
                + (" as uid nobody" if os.geteuid() == 0 else " under YOUR uid (not root, cannot drop privileges)")
                + ". NOT contained: network access, reading files readable by that uid (problem files with hidden "
                "tests included), writing world-writable "
                "places, and processes that escape their group after the job. Install bubblewrap for the real sandbox.",
                RuntimeWarning, stacklevel=3)
            if self._fallback_tmp is None:
                self._fallback_tmp = tempfile.mkdtemp(prefix="tgd-sandbox-")
                os.chmod(self._fallback_tmp, 0o711)  # the sandbox uid enters its own job folder, lists nothing else
            env["SANDBOX_TMP"] = self._fallback_tmp
            command = python
            cwd = self._fallback_tmp
            self.contained_by = "subprocess"
        self._owner_pid = os.getpid()
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, env=env, cwd=cwd, start_new_session=True)
        self._buffer = b""
        if not self._closer_registered:
            atexit.register(self.close)
            self._closer_registered = True

    def _stop(self) -> None:
        if self._process is not None and self._owner_pid != os.getpid():
            self._process = None  # the parent's worker, inherited through fork: not ours to stop
            self._fallback_tmp = None
            return
        if self._process is not None:
            try:
                os.killpg(self._process.pid, 9)
            except (ProcessLookupError, PermissionError):
                pass
            self._process.kill()
            self._process.wait()
            for stream in (self._process.stdin, self._process.stdout):
                stream.close()
            self._process = None

    def _exchange(self, message: dict, timeout_s: float) -> dict | None:
        """Send one message and read its reply; on a dead or stuck worker restart it and return None."""
        if not self.alive():
            if self._process is not None and self._owner_pid == os.getpid():
                self.restarts += 1
            self._stop()
            self._start()
        assert self._process is not None
        try:
            self._process.stdin.write(json.dumps(message).encode() + b"\n")
            self._process.stdin.flush()
            line = self._read_line(time.monotonic() + timeout_s)
        except (BrokenPipeError, OSError):
            line = None
        if line is None:
            self.restarts += 1
            self._stop()
            return None
        return json.loads(line)

    def _read_line(self, deadline: float) -> bytes | None:
        fd = self._process.stdout.fileno()
        while b"\n" not in self._buffer:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                if time.monotonic() >= deadline:
                    return None
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    def ping(self, timeout_s: float = 30.0) -> bool:
        with self._lock:
            reply = self._exchange({"ping": 1}, timeout_s)
        return reply == {"pong": 1}


def _to_result(reply: dict, tests: Sequence[TestCase]) -> ExecutionResult:
    # Test records come from the process that ran candidate code: take nothing from them on trust.
    load = reply.get("load") if isinstance(reply.get("load"), dict) else {"status": "error", "error": "no result"}
    results = []
    for test, record in zip(tests, reply.get("tests", []), strict=False):
        record = record if isinstance(record, dict) else {}
        status = record.get("status") if record.get("status") in STATUSES else "error"
        results.append(TestResult(status=status, call=test.call, expected=test.expected, got=_text(record.get("got")),
                                  error=_text(record.get("error")) or (None if status != "error" else "no result"),
                                  traceback=_text(record.get("traceback")), time_s=_seconds(record.get("time_s"))))
    return ExecutionResult(load_status=str(load.get("status", "error")), load_error=_text(load.get("error")),
                           tests=results, time_s=_seconds(reply.get("time_s")))


def _text(value: object) -> str | None:
    return value[:2000] if isinstance(value, str) and value else None


def _seconds(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


_shared: dict[tuple, Sandbox] = {}
_shared_lock = threading.Lock()
_all_sandboxes: weakref.WeakSet[Sandbox] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A lock held by another thread at fork time would stay held forever in the child (process pools fork).
    global _shared_lock
    _shared_lock = threading.Lock()
    for sandbox in list(_all_sandboxes):
        sandbox._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def shared_sandbox(limits: Limits | None = None) -> Sandbox:
    """One long-lived sandbox per limits setting for this process (so its worker is started once)."""
    limits = limits or Limits()
    key = tuple(asdict(limits).items())
    with _shared_lock:
        if key not in _shared:
            _shared[key] = Sandbox(limits)
        return _shared[key]
