"""Host CPU for the worst results a candidate can forge: what the calling process spends decoding, comparing and
showing one record of the largest size the worker lets through (32 MB), for each shape we could think of.

A candidate can write any "V" line on its result pipe, so the host must be bounded on any text, not only on what
`encode_plain` makes. Each shape is decoded with `decode_plain` (refused or accepted), compared with `same` against
an expected value, and shown with `shown_repr`, in this process, timed with `time.process_time` (CPU, not wall).
Then the same end to end: a candidate in the sandbox writes the worst one on its pipe, and the host's CPU for the
whole `Sandbox.run` is measured.

    python3 bench/code/bench_forged_results.py --out bench/code/results_forged.json
    python3 bench/code/bench_forged_results.py --colliding 8000,16000   # the quadratic set, any version of the code
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from domains.code import worker
from domains.code.sandbox import Limits, Sandbox, TestCase, decode_plain, same, shown_repr

RECORD = worker.MAX_RECORD_BYTES
MERSENNE = 2 ** 61 - 1  # every multiple of it hashes to 0


def colliding_ints(n: int) -> list[dict]:
    return [{"int": format(k * MERSENNE, "x")} for k in range(1, n + 1)]


def fill(make_item, budget: int = RECORD - 1024) -> list:
    """As many items as fit in one record."""
    sample = len(json.dumps(make_item(10 ** 6))) + 2
    return [make_item(i) for i in range(budget // sample)]


def shapes() -> dict[str, str]:
    big_hex = "f" * (RECORD - 64)
    return {
        "set of colliding ints (1 record)": json.dumps({"set": fill(lambda i: {"int": format((i + 1) * MERSENNE, "x")})}),
        "dict of colliding int keys (1 record)": json.dumps(
            {"dict": fill(lambda i: [{"int": format((i + 1) * MERSENNE, "x")}, 0])}),
        "set of colliding tuples (1 record)": json.dumps(
            {"set": fill(lambda i: {"tuple": [{"int": format((i + 1) * MERSENNE, "x")}]})}),
        "set of distinct ints (1 record)": json.dumps({"set": fill(lambda i: i * 7919 + 10 ** 6)}),
        "flat list of small ints (1 record)": json.dumps(fill(lambda i: 7)),
        "list of one-element tuples (1 record)": json.dumps(fill(lambda i: {"tuple": [1]})),
        "one integer of 32 MB of hex": json.dumps({"int": big_hex}),
        "one string of 32 MB": json.dumps("x" * (RECORD - 64)),
        "lists nested 100 deep, wide at the bottom": json.dumps(
            json.loads("[" * 100 + ",".join(["1"] * ((RECORD - 1024) // 2)) + "]" * 100)),
        "packed floats (1 record)": json.dumps({"f64": "A" * ((RECORD - 64) // 4 * 4)}),
    }


def host_cpu(text: str) -> dict:
    expected = {1, 2, 3}
    t0 = time.process_time()
    try:
        value = decode_plain(text)
        outcome = "accepted"
    except ValueError as exc:
        value, outcome = None, f"refused: {exc}"
    t1 = time.process_time()
    same(value, expected)
    shown = shown_repr(value)
    t2 = time.process_time()
    return {"bytes": len(text), "outcome": outcome[:120], "decode_cpu_s": round(t1 - t0, 3),
            "compare_and_show_cpu_s": round(t2 - t1, 3), "shown_chars": len(shown)}


def end_to_end(n: int, tests: int = 1) -> dict:
    """A candidate writes a set of `n` colliding ints on its result pipe in each of `tests` tests (8 fill a job's
    256 MB); the host's CPU for the whole run."""
    forge = ("import os, json\n"
             "def f(x):\n"
             f"    items = [{{'int': format(k * {MERSENNE}, 'x')}} for k in range(1, {n + 1})]\n"
             "    line = b'V' + json.dumps({'set': items}).encode() + b'\\n'\n"
             "    for fd in range(3, 64):\n"
             "        try:\n            os.write(fd, line)\n        except OSError:\n            pass\n"
             "    return 0\n")
    with Sandbox(Limits(test_timeout_s=30.0, total_timeout_s=300.0)) as sandbox:  # building the forgery is slow
        sandbox.ping()
        t0, w0 = time.process_time(), time.perf_counter()
        result = sandbox.run(forge, "f", [TestCase(f"f({i})", "{1}") for i in range(tests)])
        cpu, wall = time.process_time() - t0, time.perf_counter() - w0
    return {"elements": n, "tests": tests, "statuses": [t.status for t in result.tests] or result.load_status,
            "errors": sorted({(t.error or "")[:120] for t in result.tests}), "host_cpu_s": round(cpu, 3),
            "wall_s": round(wall, 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--colliding", help="only decode colliding sets of these sizes (comma-separated)")
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.colliding:
        results = {f"colliding set of {n}": host_cpu(json.dumps({"set": colliding_ints(int(n))}))
                   for n in args.colliding.split(",")}
    else:
        results = {name: host_cpu(text) for name, text in shapes().items()}
        most = (RECORD - 1024) // (len(json.dumps({"int": format(10 ** 6 * MERSENNE, "x")})) + 2)
        results["end to end: candidate forges a 1-record colliding set"] = end_to_end(most)
        results["end to end: 8 tests, each a 1-record colliding set (a whole job)"] = end_to_end(most, tests=8)
    results = {"load_avg_1min_at_end": os.getloadavg()[0], "record_bytes": RECORD, "results": results}
    print(json.dumps(results, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
