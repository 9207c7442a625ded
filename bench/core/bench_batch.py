"""Batch concurrency: 20 instances against a loopback OpenAI-compatible server that answers after 1 s.

Sequential: the instances one after another (`workers=1`). Batch: `optimize_many(..., workers=20)`. Same engine
(`OpenAIEngine` over HTTP), same replies, same evaluator (the arithmetic test domain: evaluation costs ~nothing, so
the ratio isolates how well LLM waits overlap).

    python3 bench/core/bench_batch.py            # ~90 s; writes bench/core/results_batch.json
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests" / "core"), str(ROOT / "tests" / "faults")]
from arithmetic_domain import ArithmeticDomain, Target, tagged  # noqa: E402
from fault_server import FaultServer  # noqa: E402

from tgdomains.batch import optimize_many  # noqa: E402
from tgdomains.engines import OpenAIEngine  # noqa: E402

INSTANCES = 20
ITERATIONS = 2
LATENCY_S = 1.0


def reply(messages) -> str:
    text = messages[-1]["content"]
    if "Feedback on it" in text:
        target = int(text.split("equal to ")[1].split(".")[0])
        return tagged(f"{target // 2} + {target - target // 2 - 1}")  # off by one: the run uses all iterations
    return "Move closer to the target."


def run(workers: int, server: FaultServer) -> tuple[float, dict]:
    engine = OpenAIEngine("stub", base_url=server.base_url, api_key="none")
    targets = [Target(f"n{n}", n) for n in range(10, 10 + INSTANCES)]
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        summary = optimize_many(ArithmeticDomain(), targets, engine=engine, out_dir=out, workers=workers,
                                progress=False, iterations=ITERATIONS)
        return time.perf_counter() - t0, summary


def main() -> None:
    with FaultServer(reply, ratios={"latency": 1}, latency_s=LATENCY_S, max_requests=1000,
                     lifetime_s=600) as server:
        sequential_s, seq = run(1, server)
        batch_s, bat = run(INSTANCES, server)
        calls = server.counts["latency"]
    same = [r["best_value"] for r in seq["instances"]] == [r["best_value"] for r in bat["instances"]]
    result = {"instances": INSTANCES, "iterations": ITERATIONS, "latency_s": LATENCY_S, "llm_requests": calls,
              "sequential_s": round(sequential_s, 2), "batch_s": round(batch_s, 2),
              "ratio": round(batch_s / sequential_s, 3), "same_results": same}
    print(json.dumps(result, indent=2))
    (Path(__file__).parent / "results_batch.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
