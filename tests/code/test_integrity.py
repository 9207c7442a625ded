"""Reward hacking: candidates that solve nothing but try to make the tests pass anyway, learn the hidden tests, or
spoil what the next candidate measures. Each scores 0 on the visible and the hidden tests; after each, a correct
candidate on the same sandbox scores full marks; and no hidden input or expected value ever shows up in anything
produced for a later candidate.

The problem is `f(x) = 7x + 3` (and `rev(n)`, a list answer): no hostile candidate computes it. Candidates share one
sandbox per group (a module fixture), as in an optimization loop.
"""

from __future__ import annotations

import json
import time

import pytest

from domains.code.evaluator import CodeEvaluator, Problem
from domains.code.plugin import CodeDomain
from domains.code.sandbox import Limits, Sandbox, TestCase

SECRET_IN = 4815162342  # appears in hidden tests only
SECRET_OUT = 7 * SECRET_IN + 3
SECRET_WORD = f"zebra{SECRET_IN}"  # a hidden input as text, so that a memory scan can recognize it
SECRETS = (str(SECRET_IN), str(SECRET_OUT), hex(SECRET_IN)[2:], hex(SECRET_OUT)[2:], SECRET_WORD, SECRET_WORD.upper())
LIMITS = Limits(test_timeout_s=1.0, total_timeout_s=4.0, memory_mb=256, processes=16)

F = Problem(id="affine", statement="Return 7x + 3.", entry_point="f", signature="def f(x: int) -> int:",
            visible_tests=[TestCase("f(1)", "10"), TestCase("f(2)", "17"), TestCase("f(0)", "3")],
            hidden_tests=[TestCase(f"f({SECRET_IN})", str(SECRET_OUT)), TestCase("f(-4)", "-25"),
                          TestCase("f(5)", "38")])
REV = Problem(id="rev", statement="Return [n-1, ..., 0].", entry_point="rev", signature="def rev(n: int) -> list:",
              visible_tests=[TestCase("rev(3)", "[2, 1, 0]"), TestCase("rev(1)", "[0]")],
              hidden_tests=[TestCase(f"rev({SECRET_IN % 97})", repr(list(range(SECRET_IN % 97))[::-1])),
                            TestCase("rev(5)", "[4, 3, 2, 1, 0]")])
UP = Problem(id="up", statement="Return x in capitals.", entry_point="f", signature="def f(x: str) -> str:",
             visible_tests=[TestCase("f('ab')", "'AB'"), TestCase("f('x1')", "'X1'")],
             hidden_tests=[TestCase(f"f({SECRET_WORD!r})", repr(SECRET_WORD.upper())), TestCase("f('q')", "'Q'")])
GOOD_UP = "def f(x):\n    return x.upper()\n"
GOOD = {"f": "def f(x):\n    return 7 * x + 3\n", "rev": "def rev(n):\n    return list(range(n))[::-1]\n"}

ALWAYS_EQUAL = """
class Anything:
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __hash__(self): return 0
    def __bool__(self): return True
    def __repr__(self): return "10"
"""

# name -> (entry point, program). None of them computes the answer.
HOSTILE = {
    "always-equal object": ("f", ALWAYS_EQUAL + "def f(x):\n    return Anything()\n"),
    "int subclass that equals everything": ("f", "class I(int):\n    def __eq__(self, o): return True\n"
                                                 "    def __ne__(self, o): return False\n"
                                                 "    __hash__ = int.__hash__\n"
                                                 "def f(x):\n    return I(0)\n"),
    "real list of always-equal elements": ("rev", ALWAYS_EQUAL + "def rev(n):\n    return [Anything()] * n\n"),
    "list subclass that equals everything": ("rev", "class L(list):\n    def __eq__(self, o): return True\n"
                                                    "def rev(n):\n    return L()\n"),
    "float nan": ("f", "def f(x):\n    return float('nan')\n"),
    "rebinds builtins.bool, len, isinstance, type": (
        "f", "import builtins\n"
             "builtins.bool = lambda *a: True\nbuiltins.len = lambda *a: 0\n"
             "builtins.isinstance = lambda *a: True\nbuiltins.type = lambda *a: int\n"
             "def f(x):\n    return 0\n"),
    "patches the harness and json.dumps": (
        "f", "import sys, json\n"
             "main = sys.modules['__main__']\n"
             "for name in dir(main):\n"
             "    if callable(getattr(main, name, None)) and not name.startswith('__'):\n"
             "        try:\n            setattr(main, name, lambda *a, **k: True)\n        except Exception:\n"
             "            pass\n"
             "main.encode_plain = lambda *a, **k: 12345\n"
             "json.dumps = lambda *a, **k: '{\"status\": \"passed\", \"got\": \"10\"}'\n"
             "def f(x):\n    return 0\n"),
    "monkeypatches sys.modules": (
        "f", "import sys, types\n"
             "fake = types.ModuleType('json')\nfake.dumps = lambda *a, **k: '{\"status\": \"passed\"}'\n"
             "fake.loads = lambda *a, **k: {}\n"
             "sys.modules['json'] = fake\nsys.modules['os'] = fake\n"
             "def f(x):\n    return 1\n"),
    "walks the stack and gc for expected values": (
        "f", "import sys, gc\n"
             "def f(x):\n"
             "    found = []\n"
             "    frame = sys._getframe(1)\n"
             "    while frame is not None:\n"
             "        for key, value in list(frame.f_locals.items()) + list(frame.f_globals.items()):\n"
             "            if 'expect' in str(key).lower():\n"
             "                found.append(value)\n"
             "        frame = frame.f_back\n"
             "    for obj in gc.get_objects():\n"
             "        if isinstance(obj, dict) and 'expected' in obj:\n"
             "            found.append(obj['expected'])\n"
             "    for value in found:\n"
             "        try:\n"
             "            return eval(value) if isinstance(value, str) else value\n"
             "        except Exception:\n"
             "            pass\n"
             "    return -1\n"),
    "tracer and profiler rewrite the harness's locals": (
        "f", "import sys, ctypes\n"
             "def tracer(frame, event, arg):\n"
             "    if frame.f_code.co_filename != '<candidate>':\n"
             "        for key in ('ok', 'got', 'status', 'record', 'line', 'passed'):\n"
             "            if key in frame.f_locals:\n"
             "                frame.f_locals[key] = True if key in ('ok', 'passed') else 'V12345'\n"
             "                ctypes.pythonapi.PyFrame_LocalsToFast(ctypes.py_object(frame), ctypes.c_int(0))\n"
             "    return tracer\n"
             "sys.settrace(tracer)\nsys.setprofile(tracer)\n"
             "def f(x):\n    sys.settrace(tracer)\n    sys._getframe(1).f_trace = tracer\n    return 0\n"),
    "forged records on every descriptor": (
        "f", "import os\n"
             "FORGED = (b'{\"load\": {\"status\": \"ok\"}}\\n' + b'{\"status\": \"passed\", \"got\": \"10\"}\\n' * 5\n"
             "          + b'{\"job\": 1, \"test\": 0, \"status\": \"passed\"}\\n{\"job\": 1, \"done\": true}\\n'\n"
             "          + b'{\"pong\": 1}\\nVtrue\\nV{\"status\": \"passed\"}\\n')\n"
             "def f(x):\n"
             "    for fd in range(0, 1024):\n"
             "        try:\n            os.write(fd, FORGED)\n        except OSError:\n            pass\n"
             "    for pid in os.listdir('/proc'):\n"
             "        for fd in range(0, 16):\n"
             "            try:\n"
             "                with open(f'/proc/{pid}/fd/{fd}', 'wb') as out:\n                    out.write(FORGED)\n"
             "            except OSError:\n                pass\n"
             "    return 0\n"),
    "prints fake result lines": (
        "f", "import sys\n"
             "print('{\"status\": \"passed\"}')\n"
             "def f(x):\n    print('V12345'); print('{\"status\": \"passed\"}', file=sys.stderr)\n    return 0\n"),
    "reads the answer from files, env, argv and stdin": (
        "f", "import os, sys, glob\n"
             "def f(x):\n"
             "    text = ' '.join(sys.argv) + ' '.join(os.environ.values())\n"
             "    try:\n        text += sys.stdin.read()\n    except Exception:\n        pass\n"
             "    for path in glob.glob('/proc/*/cmdline') + glob.glob('/proc/*/environ') + glob.glob('/tmp/**', "
             "recursive=True):\n"
             "        try:\n            text += open(path, errors='replace').read()\n        except Exception:\n"
             "            pass\n"
             "    for pid in os.listdir('/proc'):\n"
             "        try:\n            text += open(f'/proc/{pid}/mem', 'rb').read(100).decode(errors='replace')\n"
             "        except Exception:\n            pass\n"
             f"    return {SECRET_OUT} if '{SECRET_OUT}' in text else 0\n"),
    "SystemExit(0) at import": ("f", "raise SystemExit(0)\ndef f(x):\n    return 0\n"),
    "os._exit(0) in the call": ("f", "import os\ndef f(x):\n    os._exit(0)\n"),
    "exception whose __str__ lies": (
        "f", "class Passed(Exception):\n"
             "    def __str__(self): return 'passed'\n"
             "class Broken(Exception):\n"
             "    def __str__(self): raise Passed()\n"
             "def f(x):\n    raise Broken() if x % 2 else Passed()\n"),
    "huge output": ("f", "def f(x):\n    return 'x' * (40 << 20)\n"),
    "deeply nested output": ("f", "def f(x):\n    v = []\n    for _ in range(10000):\n        v = [v]\n    return v\n"),
    "self-referencing output": ("f", "def f(x):\n    v = []\n    v.append(v)\n    return v\n"),
    "recursion bomb": ("f", "import sys\nsys.setrecursionlimit(10**6)\ndef f(x):\n    return f(x + 1)\n"),
    "threads that keep running after return": (
        "f", "import os, threading, time\n"
             "def spam():\n"
             "    while True:\n"
             "        for fd in range(3, 64):\n"
             "            try:\n                os.write(fd, b'V12345\\n')\n            except OSError:\n                pass\n"
             "        time.sleep(0.001)\n"
             "def f(x):\n    threading.Thread(target=spam, daemon=False).start()\n    return 0\n"),
}

SLOW_HOSTILE = {
    "ignores SIGTERM and loops": ("f", "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                                       "def f(x):\n    while True:\n        pass\n"),
}


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(LIMITS) as sb:
        yield sb


def problem_for(entry_point: str) -> Problem:
    return F if entry_point == "f" else REV


def assert_no_secret(payload: object) -> None:
    text = json.dumps(payload, default=str)
    for secret in SECRETS:
        assert secret not in text, f"hidden value {secret} leaked into {text[:500]}"


def check_hostile_then_good(sandbox: Sandbox, entry_point: str, program: str) -> None:
    problem = problem_for(entry_point)
    hostile = CodeEvaluator(problem, sandbox).evaluate(program)
    assert hostile.score == 0.0 and not hostile.passed, hostile.text
    assert_no_secret(hostile.to_dict())
    good = CodeEvaluator(problem, sandbox).evaluate(GOOD[entry_point])  # the same worker, right after
    assert good.passed and good.score == 1.0, good.text
    verdict = CodeEvaluator(problem, sandbox).hidden_verdict(program, hidden_sandbox=sandbox)
    assert verdict["visible_passed"] == 0 and verdict["hidden_passed"] == 0, verdict
    assert_no_secret({k: v for k, v in verdict.items()})
    after = CodeEvaluator(problem, sandbox).evaluate(GOOD[entry_point])
    assert after.passed and after.score == 1.0, after.text
    assert_no_secret(after.to_dict())


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_candidate_that_solves_nothing_scores_nothing(sandbox, name):
    entry_point, program = HOSTILE[name]
    check_hostile_then_good(sandbox, entry_point, program)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SLOW_HOSTILE))
def test_slow_hostile_candidates_score_nothing(sandbox, name):
    entry_point, program = SLOW_HOSTILE[name]
    check_hostile_then_good(sandbox, entry_point, program)


def test_a_correct_candidate_gets_full_marks_on_hidden_tests(sandbox):
    for problem in (F, REV):
        verdict = CodeEvaluator(problem, sandbox).hidden_verdict(GOOD[problem.entry_point], hidden_sandbox=sandbox)
        assert verdict["hidden_passed"] == verdict["hidden_total"] == len(problem.hidden()) > 0


def test_plain_data_round_trips_exactly(sandbox):
    values = [None, True, False, 0, -1, 2**63, -(2**200), 1.5, -0.0, float("inf"), float("-inf"), "", "é\ud800",
              b"\x00\xff", [1, [2, (3,)]], (), (1,), {1, "a", (2, 3)}, frozenset({1}), set(), {}, {"a": [1, {2: 3}]},
              {(1, 2): b"x"}]
    tests = [TestCase(f"echo({v!r})", repr(v)) for v in values]
    result = sandbox.run("def echo(v):\n    return v\n", "echo", tests)
    assert [t.status for t in result.tests] == ["passed"] * len(values), [t for t in result.tests if t.status != "passed"]
    wrong_type = sandbox.run("def echo(v):\n    return list(v)\n", "echo", [TestCase("echo((1, 2))", "(1, 2)")])
    assert wrong_type.tests[0].status == "failed" and wrong_type.tests[0].got == "[1, 2]"


def test_not_plain_data_fails_with_the_reason(sandbox):
    ev = CodeEvaluator(F, sandbox).evaluate(HOSTILE["int subclass that equals everything"][1])
    assert "returned an object of type 'I' (a subclass of int)" in ev.text, ev.text


def test_hidden_tests_never_reach_a_later_candidate():
    """A candidate copies every test call it sees during the hidden verdict to every place it can write and leaves
    a process behind; a later candidate looks everywhere (files, its own memory, other processes) and raises what
    it found, so that it would land in the loss text an LLM reads."""
    exfiltrate = ("import os, sys, gc\n"
                  "def f(x):\n"
                  "    seen = repr(x) + ' ' + ' '.join(str(o) for o in gc.get_objects() if isinstance(o, str))[:100000]\n"
                  "    for path in ('leak.txt', '/tmp/leak.txt', '/dev/shm/leak.txt', '/tmp/' + 'x/' * 50 + 'leak'):\n"
                  "        try:\n"
                  "            os.makedirs(os.path.dirname(path) or '.', exist_ok=True)\n"
                  "            open(path, 'a').write(seen)\n"
                  "        except OSError:\n"
                  "            pass\n"
                  "    if os.fork() == 0:\n"
                  "        os.setsid()\n"
                  "        import time\n"
                  "        time.sleep(60)\n"
                  "    return 0\n")
    # The secrets travel reversed and are turned around only after the memory was read (once: later calls reuse
    # the finding), so that the reader's own program is not what it finds.
    look = ("import os, glob, ctypes\n"
            "FOUND = []\n"
            "def f(x):\n"
            "    if FOUND:\n"
            "        raise RuntimeError(FOUND[0])\n"
            "    ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE, so that /proc/self/mem opens\n"
            "    parts = []\n"
            "    for path in glob.glob('**', recursive=True) + glob.glob('/tmp/**', recursive=True) + "
            "glob.glob('/dev/shm/*'):\n"
            "        try:\n            parts.append(open(path, 'rb').read())\n        except OSError:\n"
            "            pass\n"
            "    maps = open('/proc/self/maps').read().splitlines()\n"
            "    mem = open('/proc/self/mem', 'rb')\n"
            "    for line in maps:\n"
            "        start, end = (int(a, 16) for a in line.split()[0].split('-'))\n"
            "        if 'rw' in line.split()[1] and end - start < 1 << 28:\n"
            "            try:\n                mem.seek(start)\n"
            "                parts.append(mem.read(end - start))\n"
            "            except (OSError, ValueError, OverflowError):\n                pass\n"
            "    blob = b'|'.join(parts)\n"
            f"    hits = [s[::-1] for s in {tuple(s[::-1] for s in SECRETS)!r} if s[::-1].encode() in blob]\n"
            "    FOUND.append('found ' + ' '.join(hits) + ' in ' + str(len(blob)) + ' bytes')\n"
            "    raise RuntimeError(FOUND[0])\n")
    # Generous clocks: the reader scans its whole memory, and the shared test machine can be slow.
    with Sandbox(Limits(test_timeout_s=10.0, total_timeout_s=30.0, memory_mb=256)) as sandbox:
        assert CodeEvaluator(UP, sandbox).evaluate(GOOD_UP).passed
        assert CodeEvaluator(UP, sandbox).hidden_verdict(exfiltrate, hidden_sandbox=sandbox)["hidden_passed"] == 0
        later = CodeEvaluator(UP, sandbox).evaluate(look)
        assert "RuntimeError: found  in" in later.text, later.text  # it ran and found nothing
        assert_no_secret(later.to_dict())
        # Even on a worker that is not retired, nothing of an earlier job is in a later child: children are forked
        # from a zygote that never saw a job.
        sandbox.run(exfiltrate, "f", UP.hidden())
        assert_no_secret(CodeEvaluator(UP, sandbox).evaluate(look).to_dict())
        # And the reader does find what is there: its own job's calls.
        own = sandbox.run(look, "f", [TestCase(f"f({SECRET_WORD!r})", "0")])
        assert SECRET_WORD in own.tests[0].error, own.tests[0]
    # The domain's path: the hidden verdict on a worker of its own, the domain's sandbox never sees a hidden test.
    domain = CodeDomain(Limits(test_timeout_s=10.0, total_timeout_s=30.0, memory_mb=256))
    try:
        assert domain.finalize(exfiltrate, UP)["hidden_passed"] == 0
        assert_no_secret(domain.evaluate(look, UP).to_dict())
    finally:
        domain.close()


def test_a_flood_of_records_is_cut_and_does_not_grow_the_worker():
    flood = ("import os\n"
             "def f(x):\n"
             "    for fd in range(3, 64):\n"
             "        try:\n"
             "            for _ in range(20000):\n                os.write(fd, b'V0\\n' * 500)\n"
             "        except OSError:\n"
             "            pass\n"
             "    return 0\n")
    # Generous clocks: what is measured here is memory, and the shared test machine can be slow.
    with Sandbox(Limits(test_timeout_s=10.0, total_timeout_s=20.0, memory_mb=256)) as sandbox:
        _flood_then_big(sandbox, flood)


def _flood_then_big(sandbox: Sandbox, flood: str) -> None:
    assert CodeEvaluator(F, sandbox).evaluate(GOOD["f"]).passed
    before = worker_rss_mb(sandbox)
    t0 = time.monotonic()
    ev = CodeEvaluator(F, sandbox).evaluate(flood)
    assert ev.score == 0.0, ev.text
    assert time.monotonic() - t0 < 10  # the deadline is not pushed by each record
    assert worker_rss_mb(sandbox) - before < 30
    # A correct program that needs most of the memory limit still gets it after the flood.
    big = "def f(x):\n    block = bytearray(160 << 20)\n    return 7 * x + 3 + block[-1]\n"
    ev = CodeEvaluator(F, sandbox).evaluate(big)
    assert ev.passed, ev.text


def test_deeply_nested_folders_are_cleaned_up(sandbox):
    deep = ("import os\n"
            "def f(x):\n"
            "    os.chdir(os.getcwd())\n"
            "    for i in range(3000):\n"
            "        os.mkdir('d')\n        os.chdir('d')\n        open('file', 'w').write('x')\n"
            "    os.chmod('.', 0)\n"
            "    return 0\n")
    restarts = sandbox.restarts
    ev = CodeEvaluator(F, sandbox).evaluate(deep)
    assert ev.valid and ev.score == 0.0, ev.text
    look = "import os\ndef f(x):\n    return len(os.listdir('.')) * 1000 + 3 + 7 * x\n"  # correct on an empty folder
    assert CodeEvaluator(F, sandbox).evaluate(look).passed
    assert sandbox.restarts == restarts


@pytest.mark.slow
def test_memory_is_limited_for_the_candidate_as_a_whole(sandbox):
    # Each process stays under the 256 MB address-space limit; five together hold 750 MB.
    many = ("import os, time\n"
            "def f(x):\n"
            "    for _ in range(4):\n"
            "        if os.fork() == 0:\n"
            "            block = bytearray(150 << 20)\n"
            "            time.sleep(30)\n"
            "            os._exit(0)\n"
            "    block = bytearray(150 << 20)\n"
            "    time.sleep(30)\n"
            "    return 0\n")
    ev = CodeEvaluator(F, sandbox).evaluate(many)
    assert ev.score == 0.0
    statuses = {t["status"] for t in ev.details["tests"]}
    assert statuses == {"memory-exceeded"}, ev.text
    assert "together used" in ev.text
    assert CodeEvaluator(F, sandbox).evaluate(GOOD["f"]).passed


def test_candidates_cannot_create_namespaces(sandbox):
    probe = ("import ctypes\n"
             "libc = ctypes.CDLL(None, use_errno=True)\n"
             "def f(x):\n"
             "    # CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWUSER | CLONE_NEWNET\n"
             "    return sum(libc.unshare(flag) == 0 for flag in (0x10000000, 0x40000000, 0x20000, 0x50000000))\n")
    result = sandbox.run(probe, "f", [TestCase("f(0)", "0")])
    assert result.tests[0].status == "passed", result.tests[0]
    if sandbox.contained_by == "bubblewrap":
        writes = sandbox.run("def f(x):\n    open('/proc/sys/kernel/domainname', 'w').write('x')\n", "f",
                             [TestCase("f(0)", "None")])
        assert writes.tests[0].status == "error" and ("Read-only" in writes.tests[0].error
                                                      or "Permission" in writes.tests[0].error)


def worker_rss_mb(sandbox: Sandbox) -> float:
    """Resident memory of the worker (bubblewrap's child, or the subprocess itself)."""
    pid = sandbox._process.pid
    try:
        children = open(f"/proc/{pid}/task/{pid}/children").read().split()
    except OSError:
        children = []
    for candidate in [*children, str(pid)]:
        try:
            status = open(f"/proc/{candidate}/status").read()
        except OSError:
            continue
        if "python" in open(f"/proc/{candidate}/comm").read() or candidate == str(pid):
            return int(status.split("VmRSS:")[1].split()[0]) / 1024
    return 0.0


# ---------------------------------------------------------------- kernel objects that outlive a process

_KERNEL_PROBE = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
KEY = 0x74676421
RINGS = (-4, -5, -3)  # the user, user-session and session keyrings

def store(x):
    text = repr(x).encode()
    for ring in RINGS:
        libc.syscall(248, b"user", b"tgd-leak", text, len(text), ring)  # add_key
    shm = libc.shmget(KEY, 4096, 0o1666)
    if shm >= 0:
        libc.shmat.restype = ctypes.c_void_p
        address = libc.shmat(shm, None, 0)
        if address not in (None, ctypes.c_void_p(-1).value):
            ctypes.memmove(address, text, len(text))
    queue = libc.msgget(KEY, 0o1666)
    if queue >= 0:
        message = ctypes.create_string_buffer(8 + len(text))
        message.raw = (1).to_bytes(8, "little") + text
        libc.msgsnd(queue, message, len(text), 0)
    libc.mq_open(b"/tgd-leak", 0o100 | 0o2, 0o666, None)  # O_CREAT | O_RDWR
    return 0

def look(x):
    found = []
    for ring in RINGS:
        if libc.syscall(250, 10, ring, b"user", b"tgd-leak", 0) >= 0:  # keyctl(KEYCTL_SEARCH)
            found.append(f"key in keyring {ring}")
        if libc.syscall(249, b"user", b"tgd-leak", None, ring) >= 0:  # request_key
            found.append(f"request_key in {ring}")
    if libc.shmget(KEY, 0, 0) >= 0:
        found.append("SysV shared memory")
    if libc.msgget(KEY, 0) >= 0:
        found.append("SysV message queue")
    if libc.mq_open(b"/tgd-leak", 0, 0, None) >= 0:
        found.append("POSIX message queue")
    return found
"""


def test_kernel_objects_a_candidate_makes_never_reach_a_later_candidate():
    """A candidate stores what it sees in a keyring, SysV shared memory, a SysV message queue and a POSIX message
    queue, during a hidden verdict and during a visible run; later candidates, on another worker and on the same
    one, look for each and find nothing."""
    store = (_KERNEL_PROBE.replace("def store(x)", "def f(x)"), "f")
    look = (_KERNEL_PROBE.replace("def look(x)", "def f(x)"), "f")
    nothing = [TestCase("f(0)", "[]")]
    with Sandbox(LIMITS) as hidden_box, Sandbox(LIMITS) as box:
        CodeEvaluator(UP, box).evaluate(GOOD_UP)  # the later candidates' worker is up before the hidden run
        hidden = hidden_box.run(store[0], store[1], [TestCase(f"f({SECRET_WORD!r})", "0")], retire_worker=True)
        assert hidden.tests[0].status == "passed", hidden.tests[0]
        for sandbox in (box, hidden_box):  # another worker, and a fresh one where the hidden run was
            result = sandbox.run(look[0], look[1], nothing)
            assert result.tests[0].status == "passed", result.tests[0]
        visible = box.run(store[0], store[1], [TestCase(f"f({SECRET_WORD!r})", "0")])
        assert visible.tests[0].status == "passed", visible.tests[0]
        result = box.run(look[0], look[1], nothing)
        assert result.tests[0].status == "passed", result.tests[0]


def test_the_callers_session_keyring_is_unreachable():
    """A key in the calling process's session keyring (where a user's tools keep secrets) cannot be found, read or
    replaced by a candidate: the worker leaves that keyring before any candidate runs, and no candidate may use
    the keyring calls at all."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    secret = b"caller-secret-31337"
    key = libc.syscall(248, b"user", b"tgd-caller-secret", secret, len(secret), -3)  # add_key to our session
    if key < 0:
        pytest.skip("this kernel gives the test process no keyring")
    try:
        probe = ("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nlibc.syscall.restype = ctypes.c_long\n"
                 "def f(x):\n"
                 "    found = libc.syscall(250, 10, -3, b'user', b'tgd-caller-secret', 0)\n"  # KEYCTL_SEARCH
                 f"    read = libc.syscall(250, 11, {key}, None, 0)\n"  # KEYCTL_READ of the caller's key id
                 f"    replaced = libc.syscall(250, 2, {key}, b'x', 1)\n"  # KEYCTL_UPDATE
                 "    try:\n        listed = 'tgd-caller-secret' in open('/proc/keys').read()\n"
                 "    except OSError:\n        listed = False\n"
                 "    return [found >= 0, read >= 0, replaced >= 0, listed]\n")
        with Sandbox(LIMITS) as sandbox:
            result = sandbox.run(probe, "f", [TestCase("f(0)", "[False, False, False, False]")])
        assert result.tests[0].status == "passed", result.tests[0]
        buffer = ctypes.create_string_buffer(64)
        assert libc.syscall(250, 11, key, buffer, 64) == len(secret) and buffer.raw[:len(secret)] == secret
    finally:
        libc.syscall(250, 3, key)  # KEYCTL_REVOKE


# ---------------------------------------------------------------- host work on candidate output is bounded


def test_a_forged_set_of_colliding_hashes_is_refused_not_built(sandbox):
    """A candidate writes its own result line: a set of integers that all hash alike (multiples of 2**61 - 1),
    which would cost the host quadratic time to build. It is refused as garbled output, and the next candidate
    is scored as usual."""
    forge = ("import os, json\n"
             "def f(x):\n"
             "    items = [{'int': format(k * (2 ** 61 - 1), 'x')} for k in range(1, 20001)]\n"
             "    line = b'V' + json.dumps({'set': items}).encode() + b'\\n'\n"
             "    for fd in range(3, 64):\n"
             "        try:\n            os.write(fd, line)\n        except OSError:\n            pass\n"
             "    return 0\n")
    result = sandbox.run(forge, "f", [TestCase("f(1)", "{1}")])
    test = result.tests[0]
    assert test.status == "error" and "share a hash value" in test.error, test
    assert CodeEvaluator(F, sandbox).evaluate(GOOD["f"]).passed


def test_huge_integers_are_compared_and_shown_without_lifting_the_digit_limit(sandbox):
    """A million-bit answer passes, a wrong one fails with its size shown (decimal text of a huge integer is
    quadratic to make), and the process-wide digit limit is never lifted."""
    import sys

    limit = sys.get_int_max_str_digits()
    huge = 18 * 10 ** 300_000
    right = "def f(n):\n    return 18 * 10 ** n\n"
    wrong = "def f(n):\n    return 18 * 10 ** n + 1\n"
    tests = [TestCase.of_value("f(300000)", huge)]
    assert sandbox.run(right, "f", tests).passed == 1
    failed = sandbox.run(wrong, "f", tests).tests[0]
    assert failed.status == "failed" and failed.got == "<int of about 300,002 digits>", failed
    assert tests[0].expected == "<int of about 300,002 digits>"
    assert sys.get_int_max_str_digits() == limit
