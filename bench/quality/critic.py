"""How often the critic denies a failure: feedback replies on a failing code evaluation that call the program correct.

    python3 bench/quality/critic.py

Reads every feedback request (prompts.BACKWARD_EVALUATION, TGD's backward call) in the committed code and code-hard
cassettes whose evaluation lists failing tests, once per distinct request (the reply cache makes a repeated
request a repeated reply), and counts the replies that say the program is correct or needs no change, apart for
requests that carried `prompts.FIRM_CRITIC_NOTE` (`--firm-critic`). Such feedback gives the step nothing to act on.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # run from anywhere in the checkout

from tgdomains import prompts  # noqa: E402

CASSETTES = HERE / "cassettes"
DENIAL = re.compile(r"does not need to be changed|no changes? (are |is )?(needed|necessary|required)|"
                    r"is (already )?correct", re.IGNORECASE)


def main() -> None:
    for suite in ("code", "code-hard"):
        seen: dict[bool, dict[str, bool]] = {False: {}, True: {}}  # told firmly (FIRM_CRITIC_NOTE) or not
        for path in sorted((CASSETTES / suite).glob("*/*.jsonl")):
            if path.name.endswith(".evals.jsonl"):
                continue
            for line in path.read_text(encoding="utf-8").splitlines():
                entry = json.loads(line)
                messages = entry["request"]["messages"]
                if messages[0]["content"] != prompts.BACKWARD_EVALUATION.system:
                    continue
                user = messages[-1]["content"]
                evaluation = user.split("<EVALUATION>", 1)[-1].split("</EVALUATION>", 1)[0]
                if "Failing" in evaluation:
                    firm = user.endswith(prompts.FIRM_CRITIC_NOTE)
                    seen[firm].setdefault(entry["key"], bool(DENIAL.search(entry["text"] or "")))
        for firm, replies in seen.items():
            if replies:
                print(f"{suite}{' (firm critic)' if firm else ''}: {len(replies)} distinct feedback requests on a "
                      f"failing program; {sum(replies.values())} replies call it correct or say no change is needed")


if __name__ == "__main__":
    main()
