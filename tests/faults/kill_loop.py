"""SIGKILL a worker script at random moments and start it again until one start runs to its end."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

from fault_helpers import complete_lines

ROOT = Path(__file__).resolve().parents[2]


def _complete_count(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def wait_to_kill(proc: subprocess.Popen, steps_path: Path, rng: random.Random, *, most_new_steps: int = 2,
                 jitter_s: float = 0.05, at_once: float = 0.1, poll_s: float = 0.005) -> bool:
    """Wait for the moment to kill `proc`: after it has written a random number (0..most_new_steps) of new complete
    steps, then a random jitter (mid-step: inside an LLM call, an evaluation or a write); with probability
    `at_once`, right away (while run.json or the first step is written). Counting steps instead of seconds puts
    the kills mid-run on a fast machine and on a loaded one alike. True: still running, kill it now."""
    if rng.random() < at_once:
        return proc.poll() is None
    target = _complete_count(steps_path) + rng.randint(0, most_new_steps)
    while proc.poll() is None:
        if _complete_count(steps_path) >= target:
            time.sleep(rng.uniform(0.0, jitter_s))
            return proc.poll() is None
        time.sleep(poll_s)
    return False


def kill_until_done(argv: list[str], steps_path: Path, rng: random.Random, *, jitter_s: float = 0.05,
                    most_new_steps: int = 2, deadline_s: float = 240, starts: int = 40, env: dict[str, str] | None = None) -> list[int]:
    """Run `python argv...`, SIGKILL it at a random moment (after its "ready" line, see `wait_to_kill`), again and
    again; after every kill the complete steps must extend those seen before, with ids 0..n. Returns the number
    of complete steps at each kill."""
    kills: list[int] = []
    prev: list[dict] = []
    deadline = time.monotonic() + deadline_s
    for _ in range(starts):
        assert time.monotonic() < deadline, f"ran out of time after {len(kills)} kills"
        proc = subprocess.Popen([sys.executable, *argv], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env={**os.environ, **(env or {})})
        try:
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()[-3000:]
            if wait_to_kill(proc, steps_path, rng, most_new_steps=most_new_steps, jitter_s=jitter_s):
                proc.kill()
                proc.communicate(timeout=60)
                steps, _ = complete_lines(steps_path)
                assert [s["id"] for s in steps] == list(range(len(steps)))
                assert steps[:len(prev)] == prev, "a complete step was lost or rewritten"
                prev = steps
                kills.append(len(steps))
                continue
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=60)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0 and "done" in out, err[-3000:]
        return kills
    raise AssertionError(f"never finished in {starts} starts")


def essentials(step: dict) -> list:
    """What a kill must not change: all but wall-clock times (evaluators report their own in details, *_s metrics)."""
    ev = step["evaluation"]
    metrics = {k: v for k, v in ev["metrics"].items() if not k.endswith("_s")}  # max_test_s ... are timings
    return [step["id"], step["iteration"], step["parent"], step["duplicate_of"], step["value"], step["status"],
            step["feedback"], step["problem"], step["usage"], ev["score"], metrics, ev["passed"], ev["text"]]


def check_domain_kill_resume(domain: str, tmp_path: Path, *, jitter_s: float = 0.05, min_kills: int = 2,
                             env: dict[str, str] | None = None, seed: int = 0) -> list[int]:
    """A run of tests/faults/domain_kill_worker.py for DOMAIN, SIGKILLed and resumed until it ends, writes the
    steps (and best.json's choice) of the same run never killed."""
    worker = str(ROOT / "tests" / "faults" / "domain_kill_worker.py")
    reference = tmp_path / "reference"
    done = subprocess.run([sys.executable, worker, domain, str(reference)], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    killed = tmp_path / "killed"
    kills = kill_until_done([worker, domain, str(killed)], killed / "steps.jsonl", random.Random(f"{domain}{seed}"),
                            jitter_s=jitter_s, env=env)
    assert len(kills) >= min_kills, kills
    steps, torn = complete_lines(killed / "steps.jsonl")
    expected, _ = complete_lines(reference / "steps.jsonl")
    assert not torn and [essentials(s) for s in steps] == [essentials(s) for s in expected]
    best, best_ref = (json.loads((d / "best.json").read_text()) for d in (killed, reference))
    assert (best["id"], best["value"], best["stop_reason"]) == (best_ref["id"], best_ref["value"],
                                                                best_ref["stop_reason"])
    print(f"\n{domain}: {len(kills)} SIGKILLs, complete steps at each: {kills}")
    return kills
