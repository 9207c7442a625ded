"""A program for constrained decoding: one fenced Python block (lines that never start with a backquote and never
hold the closing tag). Syntax and signature are still checked by the code domain's parser.
"""

from __future__ import annotations

from tgdomains.grammar import CLOSE, ValueFormat, avoiding

MAX_TOKENS = 1536  # HumanEval/129's replies were cut at 512; a long program plus a short critique fits in this


def value_format() -> ValueFormat:
    # a line may not start with "`": "```" would end the fence
    first, rules = avoiding("code-rest", CLOSE, exclude="\n", first_exclude="`")
    gbnf = "\n".join([
        'value ::= "\\n"? "```python\\n" code-line+ "```" "\\n"?',
        f'code-line ::= {first}? "\\n"',
        *rules,
    ])
    return ValueFormat("python-block", gbnf, max_tokens=MAX_TOKENS)
