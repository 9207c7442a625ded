"""A good candidate's latency while hostile candidates (loops, fork bombs, memory bombs) run beside it.

Sandbox A runs `--hostile` hostile programs back to back; sandbox B meanwhile scores a good program (10 asserts)
again and again. The good program's latency and a small pure-Python task in this process are measured before
and during the hostile stream, in the same run: the ratio says how much the hostile load slows the rest.

    python3 bench/code/bench_hostile.py [--hostile 100]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from pathlib import Path

from domains.code.sandbox import Limits, Sandbox, TestCase

GOOD = "def add(a, b):\n    return a + b\n"
TESTS = [TestCase(f"add({i}, {i + 1})", str(2 * i + 1)) for i in range(10)]
HOSTILE = [
    "def add(a, b):\n    while True:\n        pass\n",
    "import os\ndef add(a, b):\n    while True:\n        try:\n            os.fork()\n        except OSError:\n            pass\n",
    "def add(a, b):\n    x = []\n    while True:\n        x.append(' ' * 10**6)\n",
]
LIMITS = Limits(test_timeout_s=0.5, total_timeout_s=2.0, memory_mb=256, processes=16)


def good_latency_ms(sandbox: Sandbox, stop: threading.Event | None, n: int) -> list[float]:
    times = []
    while (stop is None and len(times) < n) or (stop is not None and not stop.is_set()):
        t0 = time.perf_counter()
        assert sandbox.run(GOOD, "add", TESTS).passed == 10, "a good candidate was scored wrong"
        times.append((time.perf_counter() - t0) * 1000)
    return times


def local_task_ms() -> float:
    t0 = time.perf_counter()
    sum(i * i for i in range(200_000))
    return (time.perf_counter() - t0) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hostile", type=int, default=100)
    ap.add_argument("--out", default=str(Path(__file__).with_name("results_hostile.json")))
    args = ap.parse_args()
    with Sandbox(LIMITS) as hostile_box, Sandbox(LIMITS) as good_box:
        hostile_box.ping()
        before = good_latency_ms(good_box, None, 200)
        local_before = [local_task_ms() for _ in range(10)]

        stop = threading.Event()
        during: list[float] = []
        watcher = threading.Thread(target=lambda: during.extend(good_latency_ms(good_box, stop, 0)))
        watcher.start()
        t0 = time.perf_counter()
        statuses: dict[str, int] = {}
        local_during = []
        for i in range(args.hostile):
            result = hostile_box.run(HOSTILE[i % len(HOSTILE)], "add", TESTS[:1])
            status = result.tests[0].status if result.tests else result.load_status
            statuses[status] = statuses.get(status, 0) + 1
            if i % 10 == 0:
                local_during.append(local_task_ms())
        hostile_s = time.perf_counter() - t0
        stop.set()
        watcher.join()

    p50 = statistics.median
    results = {
        "contained_by": good_box.contained_by, "load_avg_1min_at_end": os.getloadavg()[0],
        "hostile": args.hostile, "hostile_statuses": statuses, "hostile_wall_s": round(hostile_s, 2),
        "good_candidates_during": len(during),
        "good_ms_before": {"p50": round(p50(before), 2), "p90": round(statistics.quantiles(before, n=10)[8], 2)},
        "good_ms_during": {"p50": round(p50(during), 2), "p90": round(statistics.quantiles(during, n=10)[8], 2)},
        "good_p50_ratio_during_over_before": round(p50(during) / p50(before), 2),
        "local_task_ms_before": round(p50(local_before), 2), "local_task_ms_during": round(p50(local_during), 2),
        "worker_restarts": hostile_box.restarts + good_box.restarts,
    }
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
