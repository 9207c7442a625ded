"""A program for constrained decoding: one fenced Python block whose lines never start with a backquote (a "```"
would end the fence) and never hold the closing tag. Syntax and signature are still checked by the code domain's
parser.

Known gap (measured over the committed code cassettes): the model sometimes writes a mangled closing tag as a line of
the program ("</IMPROVED_VARIABLE/>"), which the grammar admits because the line never completes the exact tag; that
program then fails to compile and the step is lost. A stricter grammar that refused such lines, empty-line runs and
backquotes ended those losses but solved fewer problems (4 of 14 against 7), so this one stays.
"""

from __future__ import annotations

from tgdomains.grammar import CLOSE, ValueFormat, avoiding

MAX_TOKENS = 1536  # HumanEval/129's replies were cut at 512; a long program plus a short critique fits in this


def value_format() -> ValueFormat:
    """The code value grammar: a fenced Python block of lines that never start with a backquote."""
    first, rules = avoiding("code-rest", CLOSE, exclude="\n", first_exclude="`")
    body = ['value ::= "\\n"? "```python\\n" code-line+ "```" "\\n"?', f'code-line ::= {first}? "\\n"']
    return ValueFormat("python-block", "\n".join([*body, *rules]), max_tokens=MAX_TOKENS)
