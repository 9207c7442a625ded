"""How often a TGD step on code gave the current program back, and whether the critic's feedback held a copy of it.

    python3 bench/quality/copies.py [CASSETTE_DIR]   (default: bench/quality/cassettes/code)

Session 4's cassettes (before the copy note and the fresh re-ask): `git worktree add /tmp/s4 9f07331`, then
`python3 bench/quality/copies.py /tmp/s4/bench/quality/cassettes/code`.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

FENCE = re.compile(r"```(?:python)?\n(.*?)```", re.S)
VALUE = re.compile(r"<IMPROVED_VARIABLE>\n?(.*?)</IMPROVED_VARIABLE>", re.S)


def norm(code: str) -> str:
    return "\n".join(line.rstrip() for line in code.strip().splitlines() if line.strip())


def reply_value(text: str | None) -> str | None:
    found = VALUE.search(text or "")
    return norm(re.sub(r"^```(?:python)?\n|```\s*$", "", found.group(1).strip())) if found else None


def section(text: str, tag: str) -> str:
    return text.split(f"<{tag}>\n", 1)[1].split(f"</{tag}>", 1)[0] if f"<{tag}>" in text else ""


def main(root: Path) -> Counter:
    counts: Counter = Counter()
    for cassette in sorted(root.glob("*/*.jsonl")):
        if cassette.name.endswith(".evals.jsonl"):
            continue
        for line in cassette.read_text(encoding="utf-8").splitlines():
            exchange = json.loads(line)
            user = exchange["request"]["messages"][-1]["content"]
            if "<FEEDBACK>" not in user or "<VARIABLE>" not in user:
                continue  # not a TGD step (a critique, a sample, a fresh re-ask)
            current = norm(section(user, "VARIABLE"))
            copies = {norm(b) for b in FENCE.findall(section(user, "FEEDBACK"))}
            kind = "named re-ask" if "Your previous proposal was identical" in user else "step"
            copy = "with a copy" if current in copies else "without a copy"
            counts[f"{kind} {copy}"] += 1
            counts[f"{kind} {copy}: reply = current program"] += reply_value(exchange["text"]) == current
    return counts


if __name__ == "__main__":
    found = main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "cassettes" / "code")
    for key in sorted(found):
        print(f"{key}: {found[key]}")
