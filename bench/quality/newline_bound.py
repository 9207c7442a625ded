"""The code replies that looped on empty lines, asked again under the bounded value grammar.

    python3 bench/quality/newline_bound.py    # one model call per distinct request (17 here), then the summary
    python3 bench/quality/newline_bound.py --summary   # the summary of results_newline_bound.jsonl only

Every distinct request of the committed code cassettes (code and code-hard) whose reply ran to the token limit on
empty lines is sent to the local model again, with the same messages, temperature and seed, the default value
grammar replaced by `value_format(max_blank_lines=2, no_tag_line_starts=True)` (domains/code/value_format.py).
results_newline_bound.jsonl keeps each new reply; the summary reads them with the code domain's own parser and says
how they ended (a usable program: its problem's entry point with its parameters; an empty block; a block without the
entry point; a block that does not parse; cut off again) and the tokens decoded before and after.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # the checkout: tgdomains and domains
sys.path.insert(0, str(HERE))  # cutoffs.py and run.py beside this file

from cutoffs import kind  # noqa: E402
from run import SUITES, instance_name  # noqa: E402

from domains.code.value_format import value_format  # noqa: E402
from tgdomains.domain import ParseError, get_domain  # noqa: E402
from tgdomains.engines.base import ReplyFormat, Request  # noqa: E402

RESULTS = HERE / "results_newline_bound.jsonl"
BOUNDED = {"max_blank_lines": 2, "no_tag_line_starts": True}


def looped(entry: dict) -> bool:
    """A reply cut at the token limit on a run of empty lines (as cutoffs.py counts them)."""
    return entry.get("finish_reason") == "length" and kind(entry["text"]) == "empty lines"


def loop_requests() -> list[tuple[str, dict]]:
    """(the first cassette holding it, the cassette entry) for each distinct request that looped."""
    found: dict[str, tuple[str, dict]] = {}
    for path in sorted(p for suite in ("code", "code-hard") for p in HERE.glob(f"cassettes/{suite}/*/*.jsonl")):
        if path.name.endswith(".evals.jsonl"):
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            if looped(entry) and entry["key"] not in found:
                found[entry["key"]] = (str(path.relative_to(HERE)), entry)
    return list(found.values())


def bounded_request(recorded: dict) -> Request:
    """The recorded request with its value grammar swapped for the bounded one (the rest of the reply grammar, the
    critique before the tag, is kept)."""
    fmt = recorded["reply_format"]
    old, new = value_format().gbnf.strip(), value_format(**BOUNDED).gbnf.strip()
    if old not in fmt["grammar"]:
        raise SystemExit("a looped request's grammar does not hold the default value grammar: was it changed?")
    reply_format = ReplyFormat(fmt["name"], fmt["grammar"].replace(old, new), fmt.get("value_schema"),
                               fmt.get("max_tokens"))
    return Request.build(recorded["model"], recorded["messages"], recorded["temperature"], recorded["max_tokens"],
                         recorded["seed"], recorded["stop"], reply_format)


@functools.cache
def problem_of(cassette: str):
    """The code problem a cassette (cassettes/SUITE/INSTANCE/METHOD.jsonl) was recorded on."""
    suite, instance = Path(cassette).parts[1:3]
    args = next(a for a in SUITES[suite].instances if instance_name(a) == instance)
    return get_domain("code").load(dict(args))


def outcome(row: dict) -> str:
    if row["finish_reason"] == "length":
        return "cut off again"
    try:
        get_domain("code").parse(row["text"], problem_of(row["cassette"]))
    except ParseError as error:
        message = str(error)
        if "holds no code" in message:
            return "an empty block"
        return "a block without the entry point" if "entry point" in message else "a block that does not parse"
    return "a usable program"


def ask_again() -> None:
    from tgdomains.engines.local import LocalEngine

    engine = LocalEngine(n_threads=int(os.environ.get("TGDOMAINS_LOCAL_THREADS", "1")))
    todo = loop_requests()
    done = {json.loads(line)["key"] for line in RESULTS.read_text().splitlines()} if RESULTS.exists() else set()
    for n, (where, entry) in enumerate(todo, 1):
        if entry["key"] in done:
            continue
        request = bounded_request(entry["request"])
        print(f"[{n}/{len(todo)}] {where} (T {request.temperature:g}) ...", end=" ", flush=True)
        t0 = time.monotonic()
        reply = engine.generate(request.chat(), **request.options())
        row = {"key": entry["key"], "cassette": where, "temperature": request.temperature,
               "before_tokens": entry["usage"][1], "after_tokens": reply.usage.completion_tokens,
               "finish_reason": reply.finish_reason, "text": reply.text, "wall_s": round(time.monotonic() - t0, 1)}
        print(f"{outcome(row)}, {row['after_tokens']} tokens, {row['wall_s']} s", flush=True)
        with RESULTS.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def summary() -> str:
    rows = [json.loads(line) for line in RESULTS.read_text(encoding="utf-8").splitlines()]
    kinds = Counter(outcome(r) for r in rows)
    before, after = sum(r["before_tokens"] for r in rows), sum(r["after_tokens"] for r in rows)
    return (f"{len(rows)} distinct requests that looped on empty lines; under the bounded grammar: "
            + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
            + f"; tokens decoded {before} before, {after} after")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--summary", action="store_true", help="only summarize results_newline_bound.jsonl")
    if not p.parse_args(argv).summary:
        ask_again()
    print(summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
