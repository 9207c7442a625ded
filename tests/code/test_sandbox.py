"""The sandbox with real hostile programs: each is contained, reported, and leaves the machine as it was."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from domains.code.evaluator import Problem
from domains.code.sandbox import Limits, Sandbox, TestCase

from .conftest import FAST, needs_bwrap, sandbox_processes

TESTS = [TestCase("add_one(1)", "2"), TestCase("add_one(-5)", "-4"), TestCase("add_one(10**20)", "10**20 + 1")]
GOOD = "def add_one(x):\n    return x + 1\n"
_ADD_ONE = Problem(id="add-one", statement="Return x + 1.", entry_point="add_one", signature="def add_one(x: int) -> int:",
                   visible_tests=TESTS)
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox uid is used only when running as root")


def statuses(result):
    return [t.status for t in result.tests]


def assert_unharmed(sandbox):
    """The worker still answers, a good program still passes, and no candidate process is left behind."""
    assert sandbox.run(GOOD, "add_one", TESTS).passed == len(TESTS)
    if os.geteuid() == 0:
        deadline = time.monotonic() + 5
        while sandbox_processes() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sandbox_processes() == []


def test_correct_and_wrong_programs_are_classified(sandbox):
    good = sandbox.run(GOOD, "add_one", TESTS)
    assert good.loaded and statuses(good) == ["passed"] * 3
    wrong = sandbox.run("def add_one(x):\n    return x + 1 if x > 0 else x\n", "add_one", TESTS)
    assert statuses(wrong) == ["passed", "failed", "passed"]
    assert wrong.tests[1].got == "-5" and wrong.tests[1].expected == "-4"


def test_syntax_error_and_missing_entry_point_are_reported_once(sandbox):
    broken = sandbox.run("def add_one(x)\n    return x\n", "add_one", TESTS)
    assert broken.load_status == "syntax-error" and "line 1" in broken.load_error and broken.tests == []
    missing = sandbox.run("def add(x):\n    return x + 1\n", "add_one", TESTS)
    assert missing.load_status == "missing-entry-point" and "add_one" in missing.load_error


def test_exceptions_carry_the_candidate_traceback(sandbox):
    result = sandbox.run("def add_one(x):\n    items = []\n    return items[x]\n", "add_one", TESTS[:1])
    test = result.tests[0]
    assert test.status == "error" and test.error.startswith("IndexError")
    assert test.traceback == "line 3 in add_one: return items[x]"


def test_floats_compare_with_tolerance(sandbox):
    tests = [TestCase("third(1)", "0.3333333333333333")]
    close = sandbox.run("def third(x):\n    return x / 3 + 1e-9\n", "third", tests)
    far = sandbox.run("def third(x):\n    return x / 3 + 1e-3\n", "third", tests)
    assert statuses(close) == ["passed"] and statuses(far) == ["failed"]


def test_infinite_loop_times_out_and_the_rest_still_run(sandbox):
    code = "def add_one(x):\n    while x < 0:\n        pass\n    return x + 1\n"
    result = sandbox.run(code, "add_one", TESTS)
    assert statuses(result) == ["passed", "timeout", "passed"]
    assert_unharmed(sandbox)


def test_hanging_top_level_code_is_reported_once(sandbox):
    result = sandbox.run("while True:\n    pass\n", "add_one", TESTS)
    assert result.load_status == "timeout" and result.tests == []
    assert_unharmed(sandbox)


def test_fork_bomb_is_contained(sandbox):
    code = ("import os\n"
            "def add_one(x):\n"
            "    while True:\n"
            "        try:\n"
            "            os.fork()\n"
            "        except OSError:\n"
            "            pass\n")
    result = sandbox.run(code, "add_one", TESTS[:1])
    assert statuses(result) in (["timeout"], ["error"])
    assert_unharmed(sandbox)


def test_a_process_that_escapes_its_group_is_still_killed(sandbox):
    code = ("import os, time\n"
            "def add_one(x):\n"
            "    if os.fork() == 0:\n"
            "        os.setsid()\n"
            "        if os.fork() == 0:\n"
            "            time.sleep(300)\n"
            "        os._exit(0)\n"
            "    return x + 1\n")
    result = sandbox.run(code, "add_one", TESTS[:1])
    assert statuses(result) == ["passed"]
    assert_unharmed(sandbox)


def test_memory_bomb_is_contained():
    # A small limit and a generous clock: under heavy machine load, filling 256 MB can outlast a 1 s clock.
    with Sandbox(Limits(memory_mb=128, test_timeout_s=10.0, total_timeout_s=20.0)) as sandbox:
        _memory_bombs(sandbox)


def _memory_bombs(sandbox):
    result = sandbox.run("def add_one(x):\n    block = bytearray(10**10)\n    return x + 1\n", "add_one", TESTS[:1])
    assert statuses(result) == ["memory-exceeded"]
    growing = sandbox.run("def add_one(x):\n    a = []\n    while True:\n        a.append(' ' * 10**6)\n",
                          "add_one", TESTS[:1])
    assert statuses(growing) == ["memory-exceeded"]
    assert_unharmed(sandbox)


@needs_bwrap
def test_network_is_unreachable(sandbox):
    code = ("import socket\n"
            "def add_one(x):\n"
            "    socket.create_connection(('1.1.1.1', 80), timeout=2)\n"
            "    return x + 1\n")
    result = sandbox.run(code, "add_one", TESTS[:1])
    assert result.tests[0].status == "error" and "unreachable" in result.tests[0].error.lower()


def test_write_outside_the_temp_dir_fails(sandbox, tmp_path):
    ours = Path(__file__).resolve().parent / "written_by_candidate.txt"  # not even visible under bubblewrap
    system = "/usr/lib/written_by_candidate.txt"  # visible, read-only
    for target in (ours, system):
        code = f"def add_one(x):\n    open({str(target)!r}, 'w').write('x')\n    return x + 1\n"
        result = sandbox.run(code, "add_one", TESTS[:1])
        assert result.tests[0].status == "error"
        assert any(why in result.tests[0].error for why in ("Read-only file system", "Permission denied",
                                                             "No such file or directory"))
        assert not Path(target).exists()
    writes_tmp = sandbox.run("def add_one(x):\n    open('inside.txt', 'w').write('fine')\n    return x + 1\n",
                             "add_one", TESTS[:1])
    assert statuses(writes_tmp) == ["passed"]


@needs_bwrap
def test_user_files_and_hidden_tests_are_invisible(sandbox):
    from domains.code.problems import SHIPPED_PROBLEMS

    code = ("import os\n"
            "def seen(x):\n"
            f"    return [os.path.exists(p) for p in ({str(SHIPPED_PROBLEMS)!r}, {str(Path.home())!r} + '/.bashrc', "
            f"{os.getcwd()!r})]\n")
    result = sandbox.run(code, "seen", [TestCase("seen(0)", "[False, False, False]")])
    assert statuses(result) == ["passed"], result.tests[0].got


def test_environment_secret_is_not_readable(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    code = ("import os\n"
            "def leaked(x):\n"
            "    found = [v for v in os.environ.values()]\n"
            "    for pid in os.listdir('/proc'):\n"
            "        try:\n"
            "            found.append(open(f'/proc/{pid}/environ', 'rb').read().decode(errors='replace'))\n"
            "        except OSError:\n"
            "            pass\n"
            "    return any('sk-test-secret' in f for f in found)\n")
    with Sandbox(FAST) as fresh:  # started after the secret was set in our environment
        result = fresh.run(code, "leaked", [TestCase("leaked(0)", "False")])
    assert statuses(result) == ["passed"], result


@root_only
def test_candidate_runs_as_the_unprivileged_uid(sandbox):
    result = sandbox.run("import os\ndef uid(x):\n    return os.getuid()\n", "uid", [TestCase("uid(0)", "65534")])
    assert statuses(result) == ["passed"]


def test_a_dead_worker_is_restarted(sandbox):
    assert sandbox.ping()
    os.killpg(sandbox._process.pid, 9)
    sandbox._process.wait()
    assert not sandbox.alive()
    assert sandbox.run(GOOD, "add_one", TESTS).passed == 3
    assert sandbox.restarts >= 1


def test_fallback_without_bubblewrap_warns_and_still_runs():
    with pytest.warns(RuntimeWarning, match="NOT contained"):
        with Sandbox(FAST, use_bubblewrap=False) as weak:
            good = weak.run(GOOD, "add_one", TESTS)
            looping = weak.run("def add_one(x):\n    while True:\n        pass\n", "add_one", TESTS[:1])
    assert good.passed == 3 and weak.contained_by == "subprocess"
    assert statuses(looping) == ["timeout"]


def test_bad_arguments_are_named():
    with Sandbox(FAST) as sb:
        with pytest.raises(ValueError, match="not a Python identifier"):
            sb.run(GOOD, "add one", TESTS)
        with pytest.raises(TypeError, match="code must be a str"):
            sb.run(b"x", "add_one", TESTS)


@pytest.mark.slow
def test_200_hostile_candidates_while_good_ones_keep_scoring():
    hostile = [
        "def add_one(x):\n    while True:\n        pass\n",
        "import os\ndef add_one(x):\n    while True:\n        try:\n            os.fork()\n        except OSError:\n"
        "            pass\n",
        "def add_one(x):\n    a = []\n    while True:\n        a.append(' ' * 10**6)\n",
        "import os\ndef add_one(x):\n    os._exit(1)\n",
        "import sys\nsys.setrecursionlimit(10**6)\ndef add_one(x):\n    return add_one(x)\n",
    ]
    limits = Limits(test_timeout_s=0.3, total_timeout_s=2.0, memory_mb=256, processes=16)
    good_results = []
    with Sandbox(limits) as sb:
        for i in range(200):
            result = sb.run(hostile[i % len(hostile)], "add_one", TESTS[:1])
            assert result.tests and result.tests[0].status != "passed"
            if i % 10 == 0:
                good_results.append(sb.run(GOOD, "add_one", TESTS).passed)
        assert good_results == [3] * 20
        assert_unharmed(sb)


def test_a_forked_process_starts_its_own_worker_and_leaves_the_parents_alone():
    """A process pool forks a copy of the domain and its sandbox (a batch's pool initializer hands the domain to its
    workers): each copy starts a worker of its own, even when another thread held the sandbox's lock at the fork,
    and the parent's worker keeps running. A pickled copy of the domain carries no sandbox and makes its own."""
    import multiprocessing
    import pickle
    from concurrent.futures import ProcessPoolExecutor

    from domains.code.plugin import CodeDomain

    domain = CodeDomain(FAST)
    parent = domain.sandbox()
    assert parent.run(GOOD, "add_one", TESTS).passed == 3
    parent_worker = parent._process.pid
    assert pickle.loads(pickle.dumps(domain))._sandbox is None
    pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork"), initializer=_keep_inherited,
                               initargs=(domain,))
    try:
        with parent._lock:  # as if another thread were running a job when the pool forks its workers
            inherited = [pool.submit(_passed_in_inherited_sandbox, i) for i in range(4)]
        pickled = [pool.submit(_passed_in_pickled_domain, domain) for _ in range(2)]
        results = [f.result(timeout=120) for f in inherited + pickled]
    finally:
        for process in list(pool._processes.values()):
            process.kill()
        pool.shutdown(wait=True, cancel_futures=True)
    assert [passed for passed, _ in results] == [3] * 6
    assert parent_worker not in {worker for _, worker in results}
    assert parent.alive() and parent._process.pid == parent_worker and parent.run(GOOD, "add_one", TESTS).passed == 3
    domain.close()


_INHERITED = []  # the domain a pool worker got through fork (its initializer's argument, never pickled)


def _keep_inherited(domain) -> None:
    _INHERITED.append(domain)


def _passed_in_inherited_sandbox(_: int) -> tuple[int, int]:
    sandbox = _INHERITED[0].sandbox()  # the parent's Sandbox object, copied by the fork
    return sandbox.run(GOOD, "add_one", TESTS).passed, sandbox._process.pid


def _passed_in_pickled_domain(domain) -> tuple[int, int]:
    assert domain._sandbox is None
    return domain.evaluate(GOOD, _ADD_ONE).metrics["visible_passed"], domain.sandbox()._process.pid


def test_garbage_on_the_result_channel_is_reported_not_trusted_blindly(sandbox):
    # A candidate can write to its own result pipe; malformed records must not break the caller.
    code = ("import os\n"
            "def add_one(x):\n"
            "    for fd in range(3, 10):\n"
            "        try:\n"
            "            os.write(fd, b'{\"load\": 5}\\n{\"status\": \"bogus\", \"time_s\": \"x\", \"got\": 5}\\n[1]\\n')\n"
            "        except OSError:\n"
            "            pass\n"
            "    return x + 1\n")
    result = sandbox.run(code, "add_one", TESTS)
    assert len(result.tests) == 3 and "error" in statuses(result)
    assert all(isinstance(t.time_s, float) and (t.got is None or isinstance(t.got, str)) for t in result.tests)
    assert_unharmed(sandbox)
