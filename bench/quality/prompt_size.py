"""Prompt tokens of one scripted chain run, to compare momentum's formats before/after (issue 14, fix e).

The code domain, trapping-rain-water, 5 iterations, momentum 3, scripted replies (fixed feedback text, five
distinct wrong programs), real sandbox evaluations. Run it under two checkouts and compare:

    PYTHONPATH=$PWD python3 bench/quality/prompt_size.py                # this checkout
    PYTHONPATH=/path/to/old/checkout python3 bench/quality/prompt_size.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from domains import code
from domains.code.plugin import CodeDomain
from tgdomains.engines.scripted import ScriptedEngine
from tgdomains.run import optimize

FEEDBACK = ("The function returns the sum of the heights instead of the trapped water. For each index the water "
            "above it is min(max height to its left, max height to its right) minus its own height; compute the "
            "running maxima from both ends with two pointers, and add the difference only when it is positive. "
            "The failing tests show inputs where the answer is far below the sum, e.g. [4,2,0,3,2,5] expects 9. ") * 2


def program(k: int) -> str:
    return (f"def trap(height):\n    # attempt {k}\n    total = 0\n    for i, h in enumerate(height):\n"
            f"        left = max(height[:i + 1])\n        right = max(height[i:])\n"
            f"        total += max(0, min(left, right) - h - {k})\n    return total\n")


def main() -> None:
    replies = []
    for k in range(1, 6):
        replies += [FEEDBACK, f"<IMPROVED_VARIABLE>\n```python\n{program(k)}```\n</IMPROVED_VARIABLE>"]
    engine = ScriptedEngine(replies)
    problem = code.find_problem(code.load_problems(), "trapping-rain-water")
    problem.starting_code = "def trap(height):\n    return sum(height)\n"
    with tempfile.TemporaryDirectory() as tmp:
        result = optimize(CodeDomain(), problem, engine=engine, run_dir=Path(tmp) / "r", iterations=5, momentum=3,
                          restart="never", progress=False)  # five edits: momentum's table grows each step
    root = Path(code.__file__).resolve().parents[2]
    commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    steps = [r for r in engine.requests if "<FEEDBACK>" in r["messages"][-1]["content"]]
    json.dump({"checkout": str(root), "commit": commit, "llm_calls": result.usage["llm_calls"],
               "prompt_tokens": result.usage["prompt_tokens"],
               "step_prompt_tokens": [sum(len(m["content"]) for m in r["messages"]) // 4 for r in steps],
               "best_score": result.best_evaluation.score}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
