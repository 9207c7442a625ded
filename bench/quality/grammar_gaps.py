"""The code replies that version 1 of the code value grammar let through and the parser could not use: a line of
the program that is a mangled tag.

    python3 bench/quality/grammar_gaps.py    # reads the committed cassettes and results; no model

Version 1 (domains/code/value_format.py) forbids a line that starts with a backquote and the exact closing tag, so
when the 1.5B model wants to close the block before the fence, it writes the tag slightly wrong inside the program
("</IMPROVED_VARIABLE/>", "</IMPROVED_VARIABLE", "<IMPROVED_VARIABLE>"): the program no longer compiles and the
step is lost. This counts, per method, the grammared replies whose block holds a line whose first visible character
is "<" (version 2 refuses every one of them), how many of those the code domain's extractor cannot compile, the
distinct requests involved, the commonest such lines, and how many of the programs that do not compile would if
read only up to their first tag line. Then, for every method recorded in both the suite "code"
(version 1) and "code-g2" (the same problems and budgets under version 2, session 11), the two side by side.
"""

from __future__ import annotations

import ast
import json
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # the checkout
sys.path.insert(0, str(HERE))  # run.py beside this file: the results files' names

from run import results_stem  # noqa: E402

from domains.code.evaluator import extract_code  # noqa: E402
from tgdomains.parsing import tagged_blocks  # noqa: E402


def is_tag_line(line: str) -> bool:
    """A line whose first visible character is "<" (what version 2 refuses)."""
    return line.lstrip().startswith("<")


def tag_lines(reply: str) -> list[str]:
    """The tag lines of the reply's program."""
    blocks = tagged_blocks(reply)
    body = blocks[-1] if blocks else reply.split("```python\n", 1)[-1]
    return [line.strip() for line in body.splitlines() if is_tag_line(line)]


def compiles(reply: str, cut: bool = False) -> bool:
    """Whether the reply's program compiles; with `cut`, the program up to its first tag line (what a parser that
    read a tag line as the end of the program would keep)."""
    code = extract_code(reply)
    if cut:
        lines = code.splitlines()
        code = "\n".join(lines[:next((i for i, line in enumerate(lines) if is_tag_line(line)), len(lines))])
    try:
        ast.parse(code)
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
                    if not compiles(entry["text"]):
                        tally["of those, not compiling"] += 1
                        tally["compiling when cut there"] += compiles(entry["text"], cut=True)
                    requests.add(entry["key"])
                    lines.update(line[:40] for line in found)
    return {"methods": methods, "lines": lines, "requests": len(requests)}


def render(counts: dict) -> str:
    rows = sorted(counts["methods"].items(), key=lambda kv: -kv[1]["grammared replies"])
    keys = ["grammared replies", "with a tag line", "of those, not compiling", "compiling when cut there"]
    out = ["| method | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    for method, tally in rows:
        out.append(f"| {method} | " + " | ".join(str(tally[k]) for k in keys) + " |")
    total = sum((t for _, t in rows), Counter())
    out.append("| **all** | " + " | ".join(str(total[k]) for k in keys) + " |")
    out.append(f"\n{counts['requests']} distinct requests. Commonest tag lines: "
               + ", ".join(f"`{line}` {n}" for line, n in counts["lines"].most_common(6)))
    return "\n".join(out)


def compare(seed: int = 0) -> str:
    """The methods of results_code.json and results_code-g2.json (or their `seed`'s) side by side."""
    def rows(suite: str) -> dict[tuple[str, str], dict]:
        path = HERE / f"{results_stem(suite, seed)}.json"
        runs = json.loads(path.read_text(encoding="utf-8"))["runs"] if path.exists() else []
        return {(r["method"], r["instance"]): r for r in runs}

    v1, v2 = rows("code"), rows("code-g2")
    out = [f"seed {seed}:", "", "| method (problems in both) | solved on hidden tests, v1 / v2 | mean best visible pass rate | "
           "evaluations | unusable replies | completion tokens |", "|---|---|---|---|---|---|"]
    for method in dict.fromkeys(m for m, _ in v2):
        both = [i for m, i in v2 if m == method and (method, i) in v1]
        if not both:
            continue
        pair = [[v[method, i] for i in both] for v in (v1, v2)]
        solved = [sum(r["final"].get("hidden_pass_rate") == 1 for r in rs) for rs in pair]
        best = [sum(r["best_score"] for r in rs) / len(rs) for rs in pair]
        total = {k: [sum(r[k] for r in rs) for rs in pair] for k in ("evaluations", "unusable", "completion_tokens")}
        out.append(f"| {method} ({len(both)}) | {solved[0]} / {solved[1]} | {best[0]:.3f} / {best[1]:.3f} | "
                   + " | ".join(f"{a} / {b}" for a, b in total.values()) + " |")
    return "\n".join(out)


if __name__ == "__main__":
    print(render(count()))
    for seed in (0, 1):
        print()
        print(compare(seed))
