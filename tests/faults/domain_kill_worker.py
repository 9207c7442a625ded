"""One optimization of a real domain that resumes from RUN_DIR; tests/<domain>/test_*_kill_resume.py SIGKILL it.

    python tests/faults/domain_kill_worker.py DOMAIN RUN_DIR

The LLM is scripted: every reply is drawn from the domain's CANDIDATES by a hash of the request, so a run killed
and resumed any number of times asks the same requests, gets the same replies and must write the steps of a run
never killed. The evaluators are the real ones (sandboxed tests, docking, dose and fluence optimization).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tgdomains.domain import get_domain  # noqa: E402
from tgdomains.engines import ScriptedEngine  # noqa: E402
from tgdomains.run import optimize  # noqa: E402

TAG = "IMPROVED_VARIABLE"
WRONG_TRAPS = [f"def trap(height):\n    return sum(height) - {k}\n" for k in range(4)] + \
    ["def trap(height):\n    return max(height, default=0)\n", "def trap(height):\n    return len(height)\n"]
PLANS = [{"PTV": {"weight": w, "dose_Gy": 78}, "rectum": {"weight": 100, "dose_Gy": 50},
          "bladder": {"weight": 100, "dose_Gy": 50}, "femoral_head_L": {"weight": 100, "dose_Gy": 40},
          "femoral_head_R": {"weight": 100, "dose_Gy": 40}, "body": {"weight": 100, "dose_Gy": 60}}
         for w in (150, 200, 300)]
MOLECULES = ["CCO", "CC(=O)O", "CCN", "c1ccccc1O"]
LATENCY_S = {"code": 0.03, "radiotherapy": 0.0, "molecules": 0.1}
SETUPS = {  # domain: (instance arguments, candidate texts, iterations)
    "code": ({"task_id": "trapping-rain-water"}, [f"```python\n{p}```" for p in WRONG_TRAPS], 30),
    "radiotherapy": ({"case": "prostate-2d"}, [json.dumps(p) for p in PLANS], 4),
    "molecules": ({"target": "DRD2", "start": "benzene", "exhaustiveness": 1, "docking_workers": 1}, MOLECULES, 10),
}


def reply_for(candidates: list[str], latency_s: float):
    def reply(messages: list[dict[str, str]]) -> str:
        time.sleep(latency_s)  # an LLM's latency: kills land between steps as well as inside them
        h = int(hashlib.sha256(repr(messages).encode()).hexdigest(), 16)
        if not any(f"<{TAG}>" in m["content"] for m in messages):
            if "python" in messages[-1]["content"].lower() and "feedback" not in messages[0]["content"].lower():
                return candidates[h % len(candidates)]  # a zero-shot first program
            return f"Feedback #{h % 997}: change it."
        return f"Try this. <{TAG}>{candidates[h % len(candidates)]}</{TAG}>"

    return reply


def run(domain_name: str, run_dir: str):
    domain = get_domain(domain_name)
    args, candidates, iterations = SETUPS[domain_name]
    instance = domain.load(args)
    # the TGD chain on every domain: each iteration is one scripted LLM step and one evaluation
    return optimize(domain, instance, engine=ScriptedEngine(reply_for(candidates, LATENCY_S[domain_name])),
                    strategy="chain", run_dir=run_dir, resume=True, iterations=iterations, progress=False,
                    meta={"instance_args": args})


if __name__ == "__main__":
    get_domain(sys.argv[1])  # import the plug-in before saying ready, so kills land in the run itself
    print("ready", flush=True)
    run(sys.argv[1], sys.argv[2])
    print("done", flush=True)
