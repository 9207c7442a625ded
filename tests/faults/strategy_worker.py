"""A run of any strategy on the ArithmeticDomain, for the kill-and-resume tests of every strategy.

`python strategy_worker.py RUN_DIR STRATEGY` resumes RUN_DIR (or starts it) and prints "done" when the run ends.
The scripted LLM replies from the request alone (messages and seed), so concurrent calls and resumed runs get the
replies an uninterrupted run got.
"""

from __future__ import annotations

import hashlib
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from arithmetic_domain import ArithmeticDomain, Target  # noqa: E402

from tgdomains.engines.base import BaseEngine, Completion, Usage, estimate_tokens  # noqa: E402
from tgdomains.run import optimize  # noqa: E402

TAG = "IMPROVED_VARIABLE"
TARGET = Target("t997", 997)  # no reply reaches it: every run goes to its last iteration
STRATEGIES = {
    "chain": {"iterations": 30},
    "population": {"iterations": 6, "population": 3, "proposals": 2},
    "zero-shot": {"iterations": 12, "samples": 3},
    "reflexion": {"iterations": 40},
}


class HashEngine(BaseEngine):
    """Feedback for the critic; for requests that ask for the tags, `a * b` (sometimes untagged, sometimes a
    value met before), all from a hash of the request."""

    model = "hash-scripted"

    def __init__(self, jitter: bool) -> None:
        super().__init__()
        self.rng = random.Random() if jitter else None

    def _complete(self, request):
        if self.rng is not None:
            time.sleep(self.rng.uniform(0, 0.01))
        h = int(hashlib.sha256(repr((request.messages, request.seed)).encode()).hexdigest(), 16)
        if not any(f"<{TAG}>" in content for _, content in request.messages):
            reply = f"Feedback #{h % 997}: move the product towards the target."
        elif h % 7 == 0:
            reply = "I would multiply bigger numbers."
        else:
            a, b = ((20, 30) if h % 5 == 0 else ((h >> 8) % 50, (h >> 16) % 40))
            reply = f"critique {h % 89}. <{TAG}>{a} * {b}</{TAG}>"
        prompt = sum(estimate_tokens(c) for _, c in request.messages)
        return Completion(reply, Usage(prompt, estimate_tokens(reply)))


def run(run_dir: str, strategy: str, *, jitter: bool = True):
    domain = ArithmeticDomain()
    rng = random.Random()

    def evaluate(value):
        if jitter:
            time.sleep(rng.uniform(0, 0.004))
        return domain.evaluate(value, TARGET)

    return optimize(domain, TARGET, engine=HashEngine(jitter), strategy=strategy, run_dir=run_dir, resume=True,
                    evaluate=evaluate, progress=False, **STRATEGIES[strategy])


if __name__ == "__main__":
    print("ready", flush=True)
    run(sys.argv[1], sys.argv[2])
    print("done", flush=True)
