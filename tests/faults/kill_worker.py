"""One optimization of the ArithmeticDomain that resumes from RUN_DIR; tests/core/test_kill_resume.py SIGKILLs it.

    python tests/faults/kill_worker.py RUN_DIR MODE

MODE picks the run's configuration (see MODES). Replies depend only on the request, so a run killed and resumed
any number of times must write exactly the steps of a run never killed. Small random sleeps in the engine and
the evaluator (from an unseeded generator) make the kills land at varied moments.
"""

from __future__ import annotations

import hashlib
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from arithmetic_domain import ArithmeticDomain, Target  # noqa: E402

from tgdomains.engines import ScriptedEngine  # noqa: E402
from tgdomains.run import optimize  # noqa: E402

TAG = "IMPROVED_VARIABLE"
TARGET = Target("t997", 997)  # prime and > 49 * 39: no reply reaches it, every run goes to its last iteration
ITERATIONS = 30
MODES = {
    "plain": {"momentum": 3},
    "no_momentum": {"momentum": 0, "seed": 5},
}


def reply(messages: list[dict[str, str]]) -> str:
    """Deterministic in the request: feedback for the critic; for the optimizer, `a * b`, sometimes untagged
    (a repair follows), sometimes a value it has seen before (a duplicate)."""
    h = int(hashlib.sha256(repr(messages).encode()).hexdigest(), 16)
    if f"<{TAG}>" not in messages[0]["content"]:
        return f"Feedback #{h % 997}: move the product towards the target."
    if h % 7 == 0:
        return "I would multiply bigger numbers."  # no tags: the optimizer asks for a repair
    a, b = (h >> 8) % 50, (h >> 16) % 40
    if h % 5 == 0:
        a, b = 20, 30  # a value met before: the runner must not score it twice
    return f"critique {h % 89}. <{TAG}>{a} * {b}</{TAG}>"


def run(run_dir: str, mode: str, *, jitter: bool = True, progress: bool = False):
    rng = random.Random()
    domain = ArithmeticDomain()

    def slow_reply(messages):
        if jitter:
            time.sleep(rng.uniform(0, 0.012))
        return reply(messages)

    def evaluate(value):
        if jitter:
            time.sleep(rng.uniform(0, 0.004))
        return domain.evaluate(value, TARGET)

    return optimize(domain, TARGET, engine=ScriptedEngine(slow_reply), run_dir=run_dir, resume=True,
                    evaluate=evaluate, iterations=ITERATIONS, progress=progress, **MODES[mode])


if __name__ == "__main__":
    print("ready", flush=True)
    run(sys.argv[1], sys.argv[2])
    print("done", flush=True)
