"""Shared pieces of the reliability tests: the run-record checks, a reply function for the ArithmeticDomain."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

TAG = "IMPROVED_VARIABLE"


def is_optimizer_request(messages: list[dict[str, str]]) -> bool:
    """The optimizer's prompts (step, repair) ask for the tags in their system message; the critic's do not."""
    return f"<{TAG}>" in messages[0]["content"]


def arithmetic_replies(start: int = 1) -> Callable[[list[dict[str, str]]], str]:
    """Feedback for critic requests; for optimizer requests `k * 10` with k going up and down (never 997)."""
    counter = itertools.count(start)

    def reply(messages: list[dict[str, str]]) -> str:
        if not is_optimizer_request(messages):
            return "The value is too far from the target: change the factors."
        k = (next(counter) * 37) % 101
        return f"Better: <{TAG}>{k} * 10</{TAG}>"

    return reply


def rank(step: dict[str, Any]) -> tuple:
    """The runner's documented selection, written out again: passed first, then score, ties to the earliest."""
    ev = step["evaluation"]
    score = -math.inf if ev["score"] is None else ev["score"]
    return (bool(ev["passed"]), score, -step["iteration"])


def complete_lines(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """Every complete JSON line of steps.jsonl, and whether a torn tail followed them."""
    if not path.exists():
        return [], False
    raw = path.read_bytes()
    steps = []
    for line in raw.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            return steps, True
        steps.append(json.loads(line))  # a complete line that is not JSON is corruption: let it raise
    return steps, False


def check_record(run_dir: Path, iterations: int | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """steps.jsonl has iterations 0..n exactly once, and best.json names the true best of them."""
    steps, torn = complete_lines(run_dir / "steps.jsonl")
    assert not torn, "a finished run left a torn line"
    its = [s["iteration"] for s in steps]
    assert its == list(range(len(steps))), f"iterations not 0..n exactly once: {its}"
    if iterations is not None:
        assert its[-1] == iterations
    best = json.loads((run_dir / "best.json").read_text())
    truth = max(steps, key=rank)
    assert (best["iteration"], best["value"]) == (truth["iteration"], truth["value"])
    assert best["evaluation"] == truth["evaluation"]
    return steps, best
