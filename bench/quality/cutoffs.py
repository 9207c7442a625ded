"""Replies cut at the token limit in the committed cassettes, per domain, and how they ended.

    python3 bench/quality/cutoffs.py

A cut-off reply (finish_reason "length") is never trimmed into a value, but it costs a whole token limit of
decoding; its tail says why it ran on: a run of empty lines (the code value grammar allows any number), a repeating
pattern (SMILES ring or branch loops), or other text.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

CASSETTES = Path(__file__).resolve().parent / "cassettes"


def kind(text: str) -> str:
    tail = text[-300:]
    if tail.strip() == "":
        return "empty lines"
    if re.search(r"(.{2,40}?)\1{5,}$", tail, re.S):
        return "repeating tail"
    return "other"


def main() -> None:
    counts: Counter = Counter()
    for path in sorted(CASSETTES.glob("*/*/*.jsonl")):
        if path.name.endswith(".evals.jsonl"):
            continue
        domain = path.parts[-3]
        for line in path.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            counts[domain, "calls"] += 1
            if entry.get("finish_reason") == "length":
                counts[domain, "cut off"] += 1
                counts[domain, f"cut off: {kind(entry['text'])}"] += 1
    for domain in sorted({d for d, _ in counts}):
        parts = ", ".join(f"{k} {n}" for (d, k), n in sorted(counts.items()) if d == domain and k != "calls")
        print(f"{domain}: {counts[domain, 'calls']} recorded calls; {parts or 'none cut off'}")


if __name__ == "__main__":
    main()
