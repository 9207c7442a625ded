"""Run untrusted candidate code against tests: a long-lived sandboxed worker, one forked child per candidate.

The worker (``worker.py``) starts under bubblewrap: no network, only the system folders and the interpreter
visible (read-only; no home folder, project or problem file), a private ``/tmp``, a new pid namespace, an empty
environment (no API key of yours is visible), and children that drop to an unprivileged uid with rlimits on
memory, CPU, processes, file size and open files. Without bubblewrap it falls back to a plain subprocess with the
same rlimits and uid, and warns what is then not contained. A candidate that crashes, hangs or forks without end
is killed and reported; the worker survives, and a worker that dies anyway is restarted on the next call. The
process plumbing (start, a line out, lines in with a deadline and a length limit, kill the whole session) is
`tgdomains.workers.JsonLinesWorker`'s; the protocol and the verdict are this module's.

The verdict is made here, never in the sandbox: the worker gets the test calls only, the child returns what each call
returned as plain data (exact builtin types), and this module compares it with the expected value, which is read
from the test's source here (or given as a value) and never sent anywhere.

The integrity guarantee: after a hidden verdict, no later candidate, on any worker, can observe anything derived
from it. `run(..., retire_worker=True)` stops the worker after the job, so the hidden tests are in no process a
later candidate's code can reach; children are forked from a zygote that never saw a job; everything a candidate
could write (files, /tmp, /dev/shm) is emptied after each job; and kernel objects that outlive a process and are
found by name or key (keyrings, System V IPC, POSIX message queues) cannot be made or reached at all: the worker's
seccomp filter fails those calls for every candidate, each worker has its own IPC namespace, and the worker leaves
the caller's session keyring before any candidate runs, so nothing of the caller's is reachable either.

Everything this module does with a candidate's output is bounded in time and size, whatever the candidate writes
on its pipe: `decode_plain` works under a per-job budget and refuses hash floods, integers travel in hex and are
never turned into decimal text (the process-wide digit limit is never lifted), and `shown_repr` stops at its limit.
"""

from __future__ import annotations

import ast
import atexit
import base64
import functools
import json
import marshal
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from domains.code import worker as _worker
from domains.code.worker import DEFAULT_PREAMBLE
from tgdomains.workers import JsonLinesWorker, WorkerDied, WorkerStalled

WORKER_SOURCE = Path(__file__).with_name("worker.py")
SANDBOX_UID = 65534  # "nobody": candidate code never runs with the caller's uid when we are root
STATUSES = ("passed", "failed", "error", "timeout", "memory-exceeded")


@dataclass(frozen=True)
class TestCase:
    """One test: `call` is a Python expression calling the entry point, `expected` the expected value's source.

    `value`, when given, is the expected value itself (as a reference solution returned it in the sandbox), and
    `expected` is only how it is shown (cut when long): nothing is then parsed back from text."""

    __test__ = False  # not a pytest class, despite the name

    call: str
    expected: str
    value: Any = field(default=None, compare=False, repr=False)
    has_value: bool = field(default=False, compare=False, repr=False)

    @classmethod
    def of_value(cls, call: str, value: Any) -> TestCase:
        return cls(call, shown_repr(value, EXPECTED_SHOWN_CHARS), value, True)


EXPECTED_SHOWN_CHARS = 100_000  # an expected value's text beyond this is cut (the value itself is kept)


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
    flags = ["--perms", "0755", "--tmpfs", "/", "--dev", "/dev", "--proc", "/proc", "--ro-bind", "/proc/sys", "/proc/sys",
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
        self._worker: JsonLinesWorker | None = None  # the sandboxed worker process, once started
        self._locks: dict[int, threading.Lock] = {}  # one per process that uses this object (see `_lock`)
        self._jobs = 0
        self._fallback_tmp: str | None = None
        self._expected_cache: dict[str, tuple[bool, Any]] = {}
        self._call_cache: dict[str, str | dict[str, str]] = {}
        self.namespaces_denied: bool | None = None  # whether the worker's seccomp filter is in place, once started
        self.restarts = 0
        self._closer_registered = False
        self.contained_by = ""  # "bubblewrap" or "subprocess", once started

    @property
    def _lock(self) -> threading.Lock:
        """This process's lock. A forked copy of this object (process pools fork) gets a fresh one on first use:
        a lock another thread held at the fork would stay held forever in the child. (`dict.setdefault` is atomic,
        so two threads of a new child still share one lock.)"""
        return self._locks.setdefault(os.getpid(), threading.Lock())

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("a Sandbox is not pickled: it owns a worker process; a copy in another process makes its own")

    # ---------------------------------------------------------------- public

    def run(self, code: str, entry_point: str, tests: Sequence[TestCase], *, atol: float = 0.0,
            retire_worker: bool = False, preamble: str = DEFAULT_PREAMBLE,
            answer_rule: str | None = None) -> ExecutionResult:
        """Run `code`, then call `entry_point` through each test; never raises for anything the candidate does.

        Only the calls go to the sandbox; each expected value is read and compared here. retire_worker=True stops
        the worker after this job (used for hidden tests: no later candidate runs where they have been).
        `preamble`: the names the problem declares (run before the code; the program sees nothing else it did not
        import). `answer_rule`: None = equal to the expected value; a name in ANSWER_RULES for tasks that accept
        several answers.
        """
        if answer_rule is not None and answer_rule not in ANSWER_RULES:
            raise ValueError(f"unknown answer rule {answer_rule!r}; known: {', '.join(ANSWER_RULES)}")
        expected = [(True, t.value) if t.has_value else self._expected(t.expected) for t in tests]
        judge = _Judge(tests, expected, atol, answer_rule)
        if not self._run_checked(code, entry_point, [t.call for t in tests], judge, retire_worker, preamble):
            return ExecutionResult("sandbox-error", "the sandbox worker died while running this candidate (restarted)")
        return judge.result()

    def outputs(self, code: str, entry_point: str, calls: Sequence[str], *, retire_worker: bool = False,
                preamble: str = DEFAULT_PREAMBLE) -> OutputsResult:
        """What `entry_point` returns for each call, as decoded plain data (a problem file's reference solution or
        generator runs here, like any candidate); RuntimeError when the worker died."""
        collector = _Judge([TestCase(c, "") for c in calls], None, 0.0)
        if not self._run_checked(code, entry_point, list(calls), collector, retire_worker, preamble):
            raise RuntimeError("the sandbox worker died while running the problem file's code")
        return collector.outputs()

    def _run_checked(self, code: str, entry_point: str, calls: list[str], judge: _Judge, retire_worker: bool,
                     preamble: str) -> bool:
        if not isinstance(code, str):
            raise TypeError(f"code must be a str, got {type(code).__name__}")
        if not isinstance(preamble, str):
            raise TypeError(f"preamble must be a str, got {type(preamble).__name__}")
        if not entry_point.isidentifier():
            raise ValueError(f"entry point {entry_point!r} is not a Python identifier")
        with self._lock:
            self._jobs += 1
            job = {"job": self._jobs, "code": code, "entry_point": entry_point, "preamble": preamble,
                   "calls": [self._compiled(call) for call in calls], "limits": self._worker_limits()}
            try:
                return self._run_job(job, judge, self.limits.total_timeout_s + 15.0)
            finally:
                if retire_worker:
                    self._stop()

    def _compiled(self, call: str) -> str | dict[str, str]:
        """A test call compiled here once (base64 of the marshaled code; the worker runs this same interpreter), so
        that no child spends its time compiling; {"source": call} when it does not compile (the child says why)."""
        hit = self._call_cache.get(call)
        if hit is None:
            try:
                hit = base64.b64encode(marshal.dumps(compile(call, "<test>", "eval", dont_inherit=True))).decode()
            except (SyntaxError, ValueError, MemoryError, RecursionError):
                hit = {"source": call}
            if len(call) <= 100_000:
                if len(self._call_cache) >= 20_000:
                    self._call_cache.clear()
                self._call_cache[call] = hit
        return hit

    def _expected(self, source: str) -> tuple[bool, Any]:
        """(True, value) or (False, why not), for a test's expected-value source; cached for the optimization loop,
        which runs the same tests again and again."""
        hit = self._expected_cache.get(source)
        if hit is None:
            try:
                hit = (True, expected_value(source))
            except ValueError as exc:
                hit = (False, str(exc))
            if len(source) <= 100_000:
                if len(self._expected_cache) >= 20_000:
                    self._expected_cache.clear()
                self._expected_cache[source] = hit
        return hit

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
        """Its worker runs, and was started by this process (a forked copy of this object starts its own)."""
        return self._worker is not None and self._worker.alive()

    @property
    def _process(self) -> subprocess.Popen | None:
        return self._worker.process if self._worker is not None else None

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
        # Its own session, so that a kill takes everything it started; its stderr is not kept (candidate code
        # could fill it).
        self._worker = JsonLinesWorker(command, what="sandbox worker", env=env, cwd=cwd, own_session=True,
                                       keep_stderr=False)
        self._worker.start()
        if not self._closer_registered:
            atexit.register(self.close)
            self._closer_registered = True

    def _stop(self) -> None:
        if self._worker is not None and self._worker.process is not None and not self._worker.owned:
            self._fallback_tmp = None  # the parent's worker and folder, inherited through fork: not ours to remove
        if self._worker is not None:
            self._worker.kill()  # an inherited one is only forgotten

    def _send(self, message: dict) -> bool:
        """Send one message, (re)starting a dead worker first; False when the worker cannot take it."""
        if not self.alive():
            if self._worker is not None and self._worker.owned:
                self.restarts += 1
            self._stop()
            self._start()
        try:
            self._worker.send(message)
            return True
        except WorkerDied:
            return False

    def _lost_worker(self) -> None:
        self.restarts += 1
        self._stop()

    def _run_job(self, job: dict, judge: _Judge, timeout_s: float) -> bool:
        """Send a job and give each streamed record to `judge` as it comes; False when the worker died or hung."""
        deadline = time.monotonic() + timeout_s
        if not self._send(job):
            self._lost_worker()
            return False
        while True:
            line = self._read_line(deadline)
            if line is None:
                self._lost_worker()
                return False
            try:
                message = json.loads(line)
            except (ValueError, RecursionError):
                message = None
            if not isinstance(message, dict) or message.get("job") != job["job"]:
                self._lost_worker()  # the worker itself is talking nonsense: never trust it again
                return False
            records = message.get("records")
            for record in records if isinstance(records, list) else []:
                if isinstance(record, dict) and "load" in record:
                    judge.load(record["load"])
                elif isinstance(record, dict):
                    judge.test(record)
            if message.get("done"):
                judge.time_s = _seconds(message.get("time_s"))
                return True

    def _read_line(self, deadline: float) -> bytes | None:
        """The next line from the worker, or None when it is gone, too slow or sends a line beyond any record."""
        try:
            return self._worker.read_line(deadline, MAX_REPLY_LINE_BYTES)
        except (WorkerDied, WorkerStalled):
            return None

    def ping(self, timeout_s: float = 30.0) -> bool:
        with self._lock:
            if not self._send({"ping": 1}):
                self._lost_worker()
                return False
            line = self._read_line(time.monotonic() + timeout_s)
            if line is None:
                self._lost_worker()
                return False
        try:
            reply = json.loads(line)
        except ValueError:
            return False
        self.namespaces_denied = bool(reply.get("namespaces_denied"))
        return reply.get("pong") == 1


# A batch of records: up to FLUSH_BYTES, plus one value's JSON text escaped once more.
MAX_REPLY_LINE_BYTES = 2 * (_worker.MAX_RECORD_BYTES + _worker.FLUSH_BYTES) + (1 << 16)


@dataclass(frozen=True)
class OutputsResult:
    """What a piece of code returned for each call (`Sandbox.outputs`): `values[i]` is the decoded value and
    `texts[i]` its plain-data JSON (what a cache keeps), or `errors[i]` says why there is none."""

    load_status: str
    load_error: str | None
    values: list[Any]
    texts: list[str | None]
    errors: list[str | None]


class _Judge:
    """Turns the worker's streamed records into TestResults: decodes each returned value and compares it with the
    expected value, here. A record can claim an output value, an error or a timeout, and nothing else.
    With `expected=None` it only collects the decoded values (`outputs`)."""

    def __init__(self, tests: Sequence[TestCase], expected: list[tuple[bool, Any]] | None, atol: float,
                 answer_rule: str | None = None) -> None:
        self.tests, self.expected, self.atol, self.answer_rule = list(tests), expected, atol, answer_rule
        self.load_status, self.load_error = "error", "no result"
        self.results: list[TestResult | None] = [None] * len(self.tests)
        self.values: list[Any] = [None] * len(self.tests)
        self.texts: list[str | None] = [None] * len(self.tests)
        self.time_s = 0.0
        self.decode_budget = decode_budget()  # for all of this job's records together

    def load(self, record: object) -> None:
        record = record if isinstance(record, dict) else {}
        status = record.get("status")
        self.load_status = status if status in LOAD_STATUSES else "error"
        self.load_error = _text(record.get("error"))

    def test(self, record: dict) -> None:
        index = record.get("test")
        if not isinstance(index, int) or not 0 <= index < len(self.tests) or self.results[index] is not None:
            return  # the worker numbers the records; anything else is not a result
        test = self.tests[index]
        readable, expected = self.expected[index] if self.expected is not None else (True, None)
        status, got, error = record.get("status"), None, _text(record.get("error"))
        if not readable:
            status, error = "error", f"the test's expected value cannot be read: {expected}"
        elif status == "returned":
            text = record.get("value")
            try:
                value = decode_plain(text, self.decode_budget)
            except ValueError as exc:
                status, error = "error", f"garbled result from the test process ({exc})"
            else:
                if self.expected is None:
                    self.values[index], self.texts[index] = value, text
                    passed = True
                elif self.answer_rule is not None:
                    passed = ANSWER_RULES[self.answer_rule](test.call, value, expected, self.atol)
                else:
                    passed = same(value, expected, self.atol)
                status = "passed" if passed else "failed"
                got = shown_repr(value)
        elif status == "not-plain":
            status = "failed"
        elif status not in ("error", "timeout", "memory-exceeded"):
            status, error = "error", "garbled result from the test process"
        self.results[index] = TestResult(status=status, call=test.call, expected=test.expected, got=got,
                                         error=error or (None if status != "error" else "no result"),
                                         traceback=_text(record.get("traceback")),
                                         time_s=_seconds(record.get("time_s")))

    def result(self) -> ExecutionResult:
        if self.load_status != "ok":
            return ExecutionResult(self.load_status, self.load_error, [], self.time_s)
        tests = [r or TestResult("error", t.call, t.expected, error="no result") for r, t in zip(
            self.results, self.tests, strict=True)]
        return ExecutionResult("ok", None, tests, self.time_s)

    def outputs(self) -> OutputsResult:
        result = self.result()
        errors = [None if t.status == "passed" else f"{t.status}: {t.error or 'no value'}" for t in result.tests]
        return OutputsResult(result.load_status, result.load_error, self.values, self.texts, errors)


LOAD_STATUSES = ("ok", "syntax-error", "missing-entry-point", "error", "timeout", "memory-exceeded")

# ---------------------------------------------------------------- expected values, returned values, equality

_NAMES = {"inf": math.inf, "nan": math.nan, "True": True, "False": False, "None": None}
_OPERATORS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
              ast.Div: lambda a, b: a / b, ast.FloorDiv: lambda a, b: a // b, ast.Mod: lambda a, b: a % b}


def expected_value(source: str) -> Any:
    """The value a test's `expected` source stands for: a Python literal, or literals combined with arithmetic,
    `inf`/`nan` and `float("...")`, `set()`, `frozenset(...)`, `tuple(...)`. Never runs code; ValueError says why."""
    try:
        return ast.literal_eval(source)
    except ValueError as exc:
        if "Exceeds the limit" in str(exc):  # decimal text of a huge integer: quadratic to read, so never read
            raise ValueError(f"`{_cut(source)}` holds an integer of more than 4300 decimal digits; write it in hex "
                             "(0x...), which reads in linear time") from None
    except (SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        raise ValueError(f"`{_cut(source)}` is not a Python expression ({type(exc).__name__})") from None
    try:
        return _evaluate_constant(ast.parse(source, mode="eval").body)
    except (SyntaxError, TypeError, ArithmeticError, RecursionError) as exc:
        raise ValueError(f"`{_cut(source)}`: {type(exc).__name__}: {exc}") from None


def _evaluate_constant(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and node.id in _NAMES:
        return _NAMES[node.id]
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        items = [_evaluate_constant(item) for item in node.elts]
        return {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)](items)
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {_evaluate_constant(k): _evaluate_constant(v) for k, v in zip(node.keys, node.values, strict=True)}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _evaluate_constant(node.operand)
        return -operand if isinstance(node.op, ast.USub) else +operand
    if isinstance(node, ast.BinOp):
        left, right = _evaluate_constant(node.left), _evaluate_constant(node.right)
        if isinstance(node.op, ast.Pow):
            if isinstance(right, int) and abs(right) > 100_000:
                raise ValueError(f"the exponent {right} is too large")
            return left ** right
        if type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](left, right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        args = [_evaluate_constant(a) for a in node.args]
        makers = {"float": float, "set": set, "frozenset": frozenset, "tuple": tuple, "list": list, "dict": dict}
        if node.func.id in makers and len(args) <= 1 and (node.func.id != "float" or isinstance(args[0], str)):
            return makers[node.func.id](*args)
    raise ValueError(f"`{_cut(ast.unparse(node))}` is not a literal value (the expected value of a test must be one)")


_SCALARS = {str, bool, type(None), int, float}
MAX_SAME_HASH = 32  # elements of one set or keys of one dict that may share a hash value


def decode_budget() -> list[int]:
    """What the host may spend decoding one candidate's results, all its tests together (`decode_plain`)."""
    return [HOST_DECODE_UNITS]


def decode_plain(text: object, job_budget: list[int] | None = None) -> Any:
    """The value a child's record claims, from worker.encode_plain's JSON; ValueError for anything malformed.

    Bounded like everything the host does with candidate output, since a candidate can write any record: the text
    is at most a record's size (the worker cuts longer ones); at most MAX_NODES elements and MAX_DEPTH levels are
    decoded; integers come as hex (linear to read, no digit limit to lift); a set or dict whose elements share one
    hash value more than MAX_SAME_HASH times is refused before it is built (a forged set of colliding integers
    would cost quadratic time); and `job_budget` (`decode_budget()`, one per job) caps the work for all of a
    candidate's records together: once spent, later records are refused without being parsed."""
    if not isinstance(text, str):
        raise ValueError("no value")
    if len(text) > 2 * _worker.MAX_RECORD_BYTES:
        raise ValueError("a value longer than a record may be")
    budget = [_worker.MAX_NODES, job_budget[0] if job_budget is not None else HOST_DECODE_UNITS]
    # Every container costs at least a unit: more brackets than units left is refused before parsing (counting
    # them runs at memory speed; HumanEval+'s answers hold at most 2,500 per problem, strings included).
    if budget[1] <= 0 or text.count("[") + text.count("{") > budget[1]:
        raise ValueError("the candidate's results are beyond what the host decodes for one candidate")
    try:
        return _decode(json.loads(text), 0, budget)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except ValueError as exc:
        raise ValueError(_cut(str(exc), 150)) from None
    finally:
        if job_budget is not None:
            job_budget[0] = budget[1]


# The host's decoding work is counted in units of about one generic element (a tuple, a dict entry, an element of a
# mixed list: ~1.5 us each on the machine of bench/code); an element of a list of scalars costs 1/16 unit, of a set
# of scalars 1/4, of a packed list of numbers 1/64. HumanEval+'s canonical outputs need at most 160,000 units per
# problem (HumanEval/130), most under 3,100; a candidate's records stop at this many (bench_forged_results.py).
HOST_DECODE_UNITS = 1_000_000


def _spend(budget: list[int], elements: int, units: int) -> None:
    budget[0] -= elements
    budget[1] -= units
    if budget[0] < 0:
        raise ValueError(f"more than {_worker.MAX_NODES:,} elements")
    if budget[1] < 0:
        raise ValueError("the candidate's results are beyond what the host decodes for one candidate")


def _decode(tree: Any, depth: int, budget: list[int]) -> Any:
    _spend(budget, 1, 1)
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return tree
    if depth > _worker.MAX_DEPTH:
        raise ValueError("nested too deeply")
    if isinstance(tree, list):
        if set(map(type, tree)) <= _SCALARS:  # JSON made these values already: one pass, no call per element
            _spend(budget, len(tree), len(tree) // 16)
            return tree
        return [_decode(item, depth + 1, budget) for item in tree]
    if not isinstance(tree, dict) or len(tree) != 1:
        raise ValueError("not an encoded value")
    (tag, payload), = tree.items()
    if isinstance(payload, str):
        if tag == "int":
            return int(payload, 16)
        if tag == "float" and payload in ("nan", "inf", "-inf"):
            return float(payload)
        if tag == "bytes":
            return bytes.fromhex(payload)
        if tag in ("f64", "i64"):
            return _unpack(tag, payload, budget)
    if isinstance(payload, list) and tag == "num" and len(payload) == 3 and isinstance(payload[0], str):
        return _unpack_numbers(payload, budget)
    if isinstance(payload, list):
        if tag == "tuple":
            if set(map(type, payload)) <= _SCALARS:
                _spend(budget, len(payload), len(payload) // 16)
                return tuple(payload)
            return tuple([_decode(item, depth + 1, budget) for item in payload])
        try:
            if tag in ("set", "frozenset"):
                if set(map(type, payload)) <= _SCALARS:
                    _spend(budget, len(payload), len(payload) // 4)  # hashing and inserting: 1/4 unit each
                    items = payload
                else:
                    items = [_decode(item, depth + 1, budget) for item in payload]
                _refuse_hash_floods(items)
                return (set if tag == "set" else frozenset)(items)
            if tag == "dict" and all(isinstance(pair, list) and len(pair) == 2 for pair in payload):
                pairs = [(_decode(k, depth + 1, budget), _decode(v, depth + 1, budget)) for k, v in payload]
                _refuse_hash_floods([k for k, _ in pairs])
                return dict(pairs)
        except TypeError as exc:  # an unhashable element
            raise ValueError(_cut(str(exc), 100)) from None
    raise ValueError(f"unknown tag {_cut(repr(tag), 40)}")


def _unpack(tag: str, payload: str, budget: list[int]) -> list[Any]:
    """A list packed by worker._packed: base64 of 8-byte floats or ints."""
    import array
    import binascii

    try:
        data = binascii.a2b_base64(payload)
    except binascii.Error:
        raise ValueError("bad base64") from None
    if len(data) % 8:
        raise ValueError("a packed list whose length is not a multiple of 8 bytes")
    _spend(budget, len(data) // 8, len(data) // 8 // 64)
    values = array.array("d" if tag == "f64" else "q")
    values.frombytes(data)
    return values.tolist()


def _unpack_numbers(payload: list[Any], budget: list[int]) -> list[Any]:
    """worker._packed's mixed form: every number packed as a float, then the ints put back at their positions."""
    packed, where, ints = payload
    values = _unpack("f64", packed, budget)
    if not (isinstance(where, list) and isinstance(ints, list) and len(where) == len(ints) <= len(values)
            and set(map(type, where)) <= {int} and set(map(type, ints)) <= {int}):
        raise ValueError("a malformed packed list")
    for position, number in zip(where, ints, strict=True):
        if not 0 <= position < len(values):
            raise ValueError("a malformed packed list")
        values[position] = number
    return values


def _refuse_hash_floods(keys: list[Any]) -> None:
    """ValueError when more than MAX_SAME_HASH of `keys` share a hash value: building a set of n such keys takes
    n²/2 comparisons. (Counting the hashes is linear: distinct hash values are distinct small integers, which never
    collide among themselves.)"""
    if len(keys) <= MAX_SAME_HASH:
        return
    counts: dict[int, int] = {}
    for key in keys:
        h = hash(key)
        n = counts.get(h, 0) + 1
        if n > MAX_SAME_HASH:
            raise ValueError(f"more than {MAX_SAME_HASH} elements of one set or dict share a hash value")
        counts[h] = n


def same(got: Any, expected: Any, atol: float = 0.0) -> bool:
    """HumanEval+-style equality of plain values: floats within atol (1e-6 when atol is 0) and nan equal to nan,
    lists and tuples element by element (the same type), everything else with ==. Both sides are plain data
    (exact builtin types), so no candidate code runs here."""
    if type(expected) is float and type(got) in (int, float):
        if expected != expected:
            return got != got
        try:
            return got == expected or abs(got - expected) <= (atol or 1e-6)
        except OverflowError:
            return False
    if type(expected) in (list, tuple):
        if type(got) is not type(expected) or len(got) != len(expected):
            return False
        try:
            if got == expected:  # equal plain data is always the same here (one pass in C for large lists)
                return True
        except RecursionError:
            return False
        return all(same(g, e, atol) for g, e in zip(got, expected, strict=True))
    try:
        return bool(got == expected)
    except RecursionError:
        return False


def _polynomial_root(call: str, got: Any, expected: Any, atol: float) -> bool:
    """find_zero's rule (HumanEval/32): any x with |poly(xs, x)| <= atol is right, whichever root it is. The
    polynomial is computed as the task's own `poly` does (and evalplus's oracle)."""
    xs = _first_argument(call)
    if type(got) not in (int, float) or not isinstance(xs, list):
        return False
    try:
        residual = sum(c * math.pow(got, i) for i, c in enumerate(xs))
    except (OverflowError, ValueError, TypeError):
        return False
    return abs(residual) <= (atol or 1e-6)


@functools.lru_cache(maxsize=4096)
def _first_argument(call: str) -> Any:
    """The literal first argument of a test call (our own test sources), or None."""
    try:
        node = ast.parse(call, mode="eval").body
        return ast.literal_eval(node.args[0]) if isinstance(node, ast.Call) and node.args else None
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
        return None


# Tasks that accept several answers: name -> (call source, returned value, expected value, atol) -> passed.
ANSWER_RULES = {"polynomial-root": _polynomial_root}


def shown_repr(value: Any, limit: int = _worker.TEXT_CHARS) -> str:
    """A plain value as Python source (what repr gives) when that is at most `limit` characters, else its first
    `limit` characters and "...". The work is bounded by `limit`, not by the value's size: containers are written
    element by element until the limit, long strings are cut before repr, and an integer of more digits than fit is
    shown by its size (decimal text of a huge integer costs quadratic time, so it is never made)."""
    parts: list[str] = []
    room = [limit]
    try:
        _write(value, parts, room)
    except _Full:
        return "".join(parts)[:limit] + "..."
    return "".join(parts)


class _Full(Exception):
    pass


def _put(text: str, parts: list[str], room: list[int]) -> None:
    parts.append(text)
    room[0] -= len(text)
    if room[0] < 0:
        raise _Full


_BRACKETS = {list: ("[", "]"), tuple: ("(", ")"), set: ("{", "}"), frozenset: ("frozenset({", "})")}


def _write(value: Any, parts: list[str], room: list[int]) -> None:
    kind = type(value)
    if kind is int:
        if value.bit_length() > 3.3 * max(room[0], 1) or value.bit_length() > 14_000:  # > room or > 4,300 digits
            _put(f"<int of about {int(value.bit_length() * 0.30103) + 1:,} digits>", parts, room)
        else:
            _put(repr(value), parts, room)
    elif kind in (str, bytes):
        _put(repr(value[: room[0] + 1]), parts, room)
        if len(value) > room[0] + 1:
            raise _Full
    elif kind in _BRACKETS:
        if kind in (set, frozenset) and not value:
            _put("set()" if kind is set else "frozenset()", parts, room)
            return
        opening, closing = _BRACKETS[kind]
        _put(opening, parts, room)
        for i, item in enumerate(value):
            if i:
                _put(", ", parts, room)
            _write(item, parts, room)
        _put("," + closing if kind is tuple and len(value) == 1 else closing, parts, room)
    elif kind is dict:
        _put("{", parts, room)
        for i, (key, item) in enumerate(value.items()):
            if i:
                _put(", ", parts, room)
            _write(key, parts, room)
            _put(": ", parts, room)
            _write(item, parts, room)
        _put("}", parts, room)
    else:  # float, bool, None (decoded values are plain data only)
        _put(repr(value), parts, room)


def _cut(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 15] + f"... ({len(text)} chars)"


def _text(value: object) -> str | None:
    return value[:2000] if isinstance(value, str) and value else None


def _seconds(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0
