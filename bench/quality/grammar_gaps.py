"""The code replies that version 1 of the code value grammar let through and the parser could not use: a line of
the program that is a mangled tag.

    python3 bench/quality/grammar_gaps.py    # reads the committed cassettes of "code" and "code-hard"; no model

Version 1 (domains/code/value_format.py) forbids a line that starts with a backquote and the exact closing tag, so
when the 1.5B model wants to close the block before the fence, it writes the tag slightly wrong inside the program
("</IMPROVED_VARIABLE/>", "</IMPROVED_VARIABLE", "<IMPROVED_VARIABLE>"): the program no longer compiles and the
step is lost. This counts, per method, the grammared replies whose block holds a line whose first visible character
is "<" (version 2 refuses every one of them), how many of those the code domain's extractor cannot compile, the
distinct requests involved, and the commonest such lines.
"""

from __future__ import annotations

import ast
import json
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # the checkout

from domains.code.evaluator import extract_code  # noqa: E402
from tgdomains.parsing import tagged_blocks  # noqa: E402


def tag_lines(reply: str) -> list[str]:
    """The lines of the reply's program whose first visible character is "<"."""
    blocks = tagged_blocks(reply)
    body = blocks[-1] if blocks else reply.split("```python\n", 1)[-1]
    return [line.strip() for line in body.splitlines() if line.lstrip().startswith("<")]


def compiles(reply: str) -> bool:
    try:
        ast.parse(extract_code(reply))
        return True
    except SyntaxError:
        return False


def count() -> dict:
    methods: dict[str, Counter] = {}
    lines: Counter = Counter()
    requests: set[str] = set()
    for suite in ("code", "code-hard"):
        for path in sorted((HERE / "cassettes" / suite).glob("*/*.jsonl")):
            if path.name.endswith(".evals.jsonl"):
                continue
            method = path.name.removesuffix(".jsonl").split(".seed")[0]
            tally = methods.setdefault(method, Counter())
            for raw in path.read_text(encoding="utf-8").splitlines():
                entry = json.loads(raw)
                form = entry["request"].get("reply_format") or {}
                if not form.get("name", "").endswith("python-block"):
                    continue  # a free-text request (zero-shot's samples, the critic): no value grammar
                tally["grammared replies"] += 1
                found = tag_lines(entry["text"])
                if found:
                    tally["with a tag line"] += 1
                    tally["of those, not compiling"] += not compiles(entry["text"])
                    requests.add(entry["key"])
                    lines.update(line[:40] for line in found)
    return {"methods": methods, "lines": lines, "requests": len(requests)}


def render(counts: dict) -> str:
    rows = sorted(counts["methods"].items(), key=lambda kv: -kv[1]["grammared replies"])
    out = ["| method | grammared replies | with a tag line | of those, not compiling |", "|---|---:|---:|---:|"]
    for method, tally in rows:
        out.append(f"| {method} | {tally['grammared replies']} | {tally['with a tag line']} | "
                   f"{tally['of those, not compiling']} |")
    total = sum((t for _, t in rows), Counter())
    out.append(f"| **all** | {total['grammared replies']} | {total['with a tag line']} | "
               f"{total['of those, not compiling']} |")
    out.append(f"\n{counts['requests']} distinct requests. Commonest tag lines: "
               + ", ".join(f"`{line}` {n}" for line, n in counts["lines"].most_common(6)))
    return "\n".join(out)


if __name__ == "__main__":
    print(render(count()))
