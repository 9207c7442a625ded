"""How often the critic denies a failure: feedback replies on a failing code evaluation that call the program correct.

    python3 bench/quality/critic.py

Reads every feedback request (prompts.BACKWARD_EVALUATION, TGD's backward call) in the committed code and code-hard
cassettes whose evaluation lists failing tests, once per distinct request (the reply cache makes a repeated
request a repeated reply), and counts the replies that say the program is correct or needs no change. Such
feedback gives the step nothing to act on; `--show-evaluation` puts the failing tests in the step prompt instead.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

CASSETTES = Path(__file__).resolve().parent / "cassettes"
DENIAL = re.compile(r"does not need to be changed|no changes? (are |is )?(needed|necessary|required)|"
                    r"is (already )?correct", re.IGNORECASE)


def main() -> None:
    for suite in ("code", "code-hard"):
        seen: dict[str, bool] = {}
        for path in sorted((CASSETTES / suite).glob("*/*.jsonl")):
            if path.name.endswith(".evals.jsonl"):
                continue
            for line in path.read_text(encoding="utf-8").splitlines():
                entry = json.loads(line)
                messages = entry["request"]["messages"]
                if not messages[0]["content"].startswith("You give feedback"):
                    continue
                evaluation = messages[-1]["content"].split("<EVALUATION>", 1)[-1].split("</EVALUATION>", 1)[0]
                if "Failing" in evaluation:
                    seen.setdefault(entry["key"], bool(DENIAL.search(entry["text"] or "")))
        print(f"{suite}: {len(seen)} distinct feedback requests on a failing program; "
              f"{sum(seen.values())} replies call it correct or say no change is needed")


if __name__ == "__main__":
    main()
