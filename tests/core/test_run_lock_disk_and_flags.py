"""One writer per run directory, a wall-time budget that survives resume, a full disk
that loses nothing, and numeric flags checked before anything runs.

Replies come from `kill_worker.reply`, a function of the request alone, so an interrupted-and-resumed run can be
compared step for step with one that was never interrupted.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

FAULTS = Path(__file__).resolve().parents[1] / "faults"
sys.path.insert(0, str(FAULTS))
from arithmetic_domain import ArithmeticDomain, Target  # noqa: E402
from fault_helpers import check_record, complete_lines  # noqa: E402
from kill_worker import reply  # noqa: E402

from tgdomains import cli  # noqa: E402
from tgdomains.engines import ScriptedEngine  # noqa: E402
from tgdomains.records import RecordWriteError, RunRecord  # noqa: E402
from tgdomains.run import RunConfig, optimize, resume  # noqa: E402
from tgdomains.runlock import LOCK_FILE, RunDirectoryLocked, RunLock  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TARGET = Target("t997", 997)
TIMING = ("eval_s", "step_s", "elapsed_s")


def comparable(steps) -> list[dict]:
    return [{k: v for k, v in (s if isinstance(s, dict) else s.to_dict()).items() if k not in TIMING}
            for s in steps]


def run(run_dir: Path, iterations: int = 8, **kw):
    kw.setdefault("engine", ScriptedEngine(reply))
    kw.setdefault("progress", False)
    return optimize(ArithmeticDomain(), TARGET, run_dir=run_dir, iterations=iterations, **kw)


def hold_lock_in_another_process(run_dir: Path) -> subprocess.Popen:
    code = ("import sys, time; from tgdomains.runlock import RunLock; lock = RunLock(sys.argv[1]).acquire(); "
            "print('ready', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(run_dir)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "ready"
    return proc


# -- one writer per run directory --------------------------------------------------------------------------------


def test_a_second_writer_is_refused_at_once_naming_the_holder(tmp_path):
    run(tmp_path / "r", iterations=2)
    before = (tmp_path / "r" / "steps.jsonl").read_bytes()
    holder = hold_lock_in_another_process(tmp_path / "r")
    try:
        t0 = time.monotonic()
        with pytest.raises(RunDirectoryLocked) as refused:
            run(tmp_path / "r", iterations=6, resume=True)
        assert time.monotonic() - t0 < 5  # refused, not queued
        message = str(refused.value)
        assert f"pid {holder.pid}" in message and socket.gethostname() in message and "started 20" in message
        assert (tmp_path / "r" / "steps.jsonl").read_bytes() == before  # the refused run wrote nothing
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path):
    run(tmp_path / "r", iterations=2)
    holder = hold_lock_in_another_process(tmp_path / "r")
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    said = []
    result = run(tmp_path / "r", iterations=6, resume=True, progress=said.append)
    assert f"took over the lock of {tmp_path / 'r'} from pid {holder.pid}" in said[0]
    assert [s.iteration for s in result.steps] == list(range(7))
    assert (tmp_path / "r" / LOCK_FILE).read_text() == ""  # released: nobody holds it now


def test_two_runs_in_one_process_cannot_share_a_directory(tmp_path):
    with RunLock(tmp_path / "r"):
        with pytest.raises(RunDirectoryLocked, match=f"pid {os.getpid()}"):
            run(tmp_path / "r", iterations=2)
    run(tmp_path / "r", iterations=2)  # released on leaving the block


def test_the_lock_is_released_when_a_run_fails(tmp_path):
    def broken(messages):
        raise KeyboardInterrupt  # a BaseException: the run stops without finishing

    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "r", engine=ScriptedEngine(broken))
    assert run(tmp_path / "r", resume=True).steps[-1].iteration == 8


@pytest.mark.slow
def test_resume_started_twice_through_the_cli_has_one_writer(tmp_path):
    """Two `tgdomains optimize --resume DIR` at once: the second is refused naming the first; a SIGKILLed
    holder's lock is taken over; the steps end as those of one uninterrupted run."""
    from tgdomains.domain import get_domain
    from tgdomains.engines import RecordingEngine

    domain = get_domain("radiotherapy")
    instance = domain.load({"case": "prostate-2d"})
    plan = json.loads(domain.initial(instance).value)

    def model(messages):
        if "IMPROVED_VARIABLE" not in messages[-1]["content"]:
            return "Raise the PTV weight: coverage is short."
        plan["PTV"]["weight"] *= 1.3
        return f"<IMPROVED_VARIABLE>{json.dumps(plan)}</IMPROVED_VARIABLE>"

    cassette = tmp_path / "cassette.jsonl"
    reference = optimize(domain, instance, engine=RecordingEngine(ScriptedEngine(model), cassette),
                         run_dir=tmp_path / "reference", iterations=10, progress=False)
    run_dir = tmp_path / "cli"

    def start(*args):
        return subprocess.Popen([sys.executable, "-m", "tgdomains.cli", "optimize", "radiotherapy", *args,
                                 "--replay", str(cassette), "--quiet"], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})

    def holding(proc):  # wait until proc holds the lock, then freeze it there
        deadline = time.monotonic() + 120
        while f'"pid": {proc.pid}' not in _read(run_dir / LOCK_FILE):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-2000:]
            time.sleep(0.02)
        proc.send_signal(signal.SIGSTOP)

    first = start("--case", "prostate-2d", "--iterations", "3", "--run-dir", str(run_dir))
    assert first.wait(timeout=300) == 0, first.stderr.read()[-2000:]
    a = start("--resume", str(run_dir), "--iterations", "6")
    holding(a)
    b = start("--resume", str(run_dir), "--iterations", "6")
    _, err = b.communicate(timeout=300)
    a.send_signal(signal.SIGCONT)
    assert b.returncode == 1 and f"in use by another run (pid {a.pid} on {socket.gethostname()}" in err, err
    assert a.wait(timeout=300) == 0, a.stderr.read()[-2000:]
    c = start("--resume", str(run_dir), "--iterations", "10")
    holding(c)
    c.kill()  # SIGKILL while holding the lock (and stopped)
    c.wait()
    d = subprocess.run([sys.executable, "-m", "tgdomains.cli", "optimize", "radiotherapy", "--resume", str(run_dir),
                        "--iterations", "10", "--replay", str(cassette)], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert d.returncode == 0 and f"from pid {c.pid}" in d.stderr, d.stderr[-2000:]
    steps, _ = complete_lines(run_dir / "steps.jsonl")
    assert [s["id"] for s in steps] == list(range(11))
    # replayed usage differs from recorded usage, and the dose engine reports its own seconds in `details`
    def essentials(step):
        ev = step["evaluation"]
        return [step["id"], step["parent"], step["value"], step["status"], ev["score"], ev["metrics"], ev["text"]]

    assert [essentials(s) for s in steps] == [essentials(s.to_dict()) for s in reference.steps]


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


# -- the wall-time budget counts every start ---------------------------------------------------------------------


def test_a_resumed_run_honours_the_time_budget_it_was_started_with(tmp_path):
    domain = ArithmeticDomain()

    def slow(value):
        time.sleep(0.04)
        return domain.evaluate(value, TARGET)

    calls = []

    def killed_after_six(messages):
        calls.append(1)
        if len(calls) > 12:  # two or three calls an iteration: some iterations, then the process "dies"
            raise KeyboardInterrupt
        return reply(messages)

    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "r", iterations=100, engine=ScriptedEngine(killed_after_six), evaluate=slow,
            time_budget_s=60)
    steps = RunRecord(tmp_path / "r").read_steps()
    spent = steps[-1].elapsed_s
    n = len(steps)
    assert n >= 4 and spent >= sum(s.evaluated for s in steps) * 0.04  # each evaluation sleeps 0.04 s
    assert [s.elapsed_s for s in steps] == sorted(s.elapsed_s for s in steps)
    # a budget already spent before the kill: the resumed run stops at once
    result = resume(tmp_path / "r", engine=ScriptedEngine(reply), domain=domain, evaluate=slow, progress=False, time_budget_s=spent)
    assert len(result.steps) == n and result.stop_reason == f"time budget ({spent} s) reached"
    best = RunRecord(tmp_path / "r").read_best()
    assert best["wall_s"] >= spent
    # with some budget left, it goes on and the clock keeps counting from where it was
    more = resume(tmp_path / "r", engine=ScriptedEngine(reply), domain=domain, evaluate=slow, progress=False,
                  time_budget_s=best["wall_s"] + 0.2)
    assert len(more.steps) > n and more.steps[n].elapsed_s >= best["wall_s"]


# -- a full or failing disk -----------------------------------------------------------------------------------------


def failing_writes(monkeypatch, fail_at: int, errno_: int = errno.ENOSPC, partial: bool = True):
    """os.write to steps.jsonl: the `fail_at`-th step is half written, then the disk refuses (ENOSPC/EIO)."""
    real_write = os.write
    seen = {"steps": 0}

    def write(fd, data):
        if not os.readlink(f"/proc/self/fd/{fd}").endswith("steps.jsonl"):
            return real_write(fd, data)
        seen["steps"] += 1
        if seen["steps"] == fail_at and partial:
            return real_write(fd, bytes(data[:len(data) // 2]))  # a short write: the disk took half the line
        if seen["steps"] >= fail_at:
            raise OSError(errno_, os.strerror(errno_))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)


@pytest.mark.parametrize("errno_", [errno.ENOSPC, errno.EIO])
def test_a_step_the_disk_refuses_stops_the_run_and_loses_nothing(tmp_path, monkeypatch, errno_):
    reference = run(tmp_path / "reference", iterations=12)
    with monkeypatch.context() as patch:
        failing_writes(patch, fail_at=6, errno_=errno_)
        with pytest.raises(RecordWriteError) as refused:
            run(tmp_path / "r", iterations=12)
    message = str(refused.value)
    assert os.strerror(errno_) in message and "step 5" in message and f"--resume {tmp_path / 'r'}" in message
    raw = (tmp_path / "r" / "steps.jsonl").read_bytes()
    assert raw.endswith(b"\n") and len(raw.splitlines()) == 5  # the half line was cut off again
    assert comparable(RunRecord(tmp_path / "r").read_steps()) == comparable(reference.steps[:5])
    assert not (tmp_path / "r" / "best.json").exists()
    resumed = run(tmp_path / "r", iterations=12, resume=True)
    assert comparable(resumed.steps) == comparable(reference.steps)
    check_record(tmp_path / "r", iterations=12)


def test_a_damaged_line_inside_steps_jsonl_is_an_error_not_a_silent_cut(tmp_path):
    run(tmp_path / "r", iterations=4)
    path = tmp_path / "r" / "steps.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2][:40] + b"\n"
    path.write_bytes(b"".join(lines))
    with pytest.raises(ValueError, match="line 3 of 5 is not JSON"):
        RunRecord(tmp_path / "r").read_steps()
    assert path.read_bytes() == b"".join(lines)  # left as it was: the complete steps after it are still there


@pytest.fixture
def small_disk(tmp_path):
    """A 192 KiB tmpfs (root only), unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_stops_the_run_clearly_and_resume_after_freeing_space_loses_nothing(tmp_path, small_disk):
    long_feedback = "x" * 1500

    def chatty(messages):  # big steps: the disk fills within a few iterations
        text = reply(messages)
        return text if "IMPROVED_VARIABLE" in messages[0]["content"] else text + long_feedback

    reference = run(tmp_path / "reference", iterations=40, engine=ScriptedEngine(chatty))
    filler = small_disk / "filler"
    with open(filler, "wb") as f:  # leave about 32 KiB
        f.write(b"\0" * (160 * 1024))
    with pytest.raises(RecordWriteError, match="No space left on device") as refused:
        run(small_disk / "r", iterations=40, engine=ScriptedEngine(chatty))
    assert f"--resume {small_disk / 'r'}" in str(refused.value)
    kept = RunRecord(small_disk / "r").read_steps(repair=False)
    assert 0 < len(kept) < 41 and (small_disk / "r" / "steps.jsonl").read_bytes().endswith(b"\n")
    assert comparable(kept) == comparable(reference.steps[:len(kept)])
    assert not list((small_disk / "r").glob("*.tmp"))  # no half-written temporary file left behind
    filler.unlink()  # space freed
    resumed = run(small_disk / "r", iterations=40, engine=ScriptedEngine(chatty), resume=True)
    assert comparable(resumed.steps) == comparable(reference.steps)
    check_record(small_disk / "r", iterations=40)


# -- numbers on the command line ------------------------------------------------------------------------------------

BAD_NUMBERS = [
    ("optimize", "radiotherapy", "--iterations", "-3"),
    ("optimize", "radiotherapy", "--time-budget", "-1"),
    ("optimize", "radiotherapy", "--time-budget", "nan"),
    ("optimize", "radiotherapy", "--cost-budget", "-0.5"),
    ("optimize", "radiotherapy", "--token-budget", "-10"),
    ("optimize", "radiotherapy", "--llm-call-budget", "-1"),
    ("optimize", "radiotherapy", "--evaluation-budget", "0"),
    ("optimize", "radiotherapy", "--max-tokens", "0"),
    ("optimize", "radiotherapy", "--temperature", "-0.1"),
    ("optimize", "radiotherapy", "--momentum", "-1"),
    ("optimize", "radiotherapy", "--population", "0"),
    ("optimize", "radiotherapy", "--proposals", "0"),
    ("optimize", "radiotherapy", "--samples", "0"),
    ("optimize", "radiotherapy", "--iterations", "three"),
    ("batch", "radiotherapy", "--workers", "0"),
    ("optimize", "molecules", "--exhaustiveness", "0"),
    ("optimize", "molecules", "--exhaustiveness", "65"),
    ("optimize", "molecules", "--docking-workers", "0"),
    ("optimize", "molecules", "--min-similarity", "1.5"),
    ("optimize", "molecules", "--sa-max", "0"),
]


@pytest.mark.parametrize("argv", BAD_NUMBERS, ids=[" ".join(a[2:]) for a in BAD_NUMBERS])
def test_every_numeric_flag_is_range_checked_before_anything_runs(argv, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([*argv, "--run-dir" if argv[0] == "optimize" else "--out", str(tmp_path / "r"),
                  "--engine", "openai", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--no-cache"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and f"argument {argv[2]}: must be " in err and argv[3] in err
    assert not (tmp_path / "r").exists()


def test_the_python_api_refuses_the_same_numbers(tmp_path):
    for bad in ({"time_budget_s": -1}, {"cost_budget": -0.5}, {"max_tokens": 0}, {"iterations": -3},
                {"temperature": float("nan")}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            RunConfig(**bad).check()
        with pytest.raises(ValueError, match=next(iter(bad))):
            run(tmp_path / "r", **{"iterations": 3, **bad})
