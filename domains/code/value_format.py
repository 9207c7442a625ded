"""A program for constrained decoding: one fenced Python block (lines that never start with a backquote and never
hold the closing tag). Syntax and signature are still checked by the code domain's parser.

`value_format(max_blank_lines=2, no_tag_line_starts=True)` is the bounded variant that
bench/quality/newline_bound.py measures: every reply of the committed code cassettes that ran to the token limit on
empty lines is an open fence followed by nothing but newlines (15 of the 70 had begun the closing tag inside it,
which the grammar lets a line start but not finish). It is not the default yet: the grammar is part of every code
request, so switching changes every code cassette, and the switch waits for a re-recording of the code tables
(bench/quality/README.md).
"""

from __future__ import annotations

from tgdomains.grammar import CLOSE, ValueFormat, avoiding

MAX_TOKENS = 1536  # HumanEval/129's replies were cut at 512; a long program plus a short critique fits in this


def value_format(max_blank_lines: int | None = None, no_tag_line_starts: bool = False) -> ValueFormat:
    """`max_blank_lines`: at most this many empty lines in a row (None: any number). `no_tag_line_starts`: no line
    starts with "<" (no Python statement does; a line of a string literal that does cannot be written)."""
    # a line may not start with "`": "```" would end the fence
    first, rules = avoiding("code-rest", CLOSE, exclude="\n", first_exclude="`<" if no_tag_line_starts else "`")
    if max_blank_lines is None:
        body = ['value ::= "\\n"? "```python\\n" code-line+ "```" "\\n"?', f'code-line ::= {first}? "\\n"']
    else:
        if max_blank_lines < 0:
            raise ValueError(f"max_blank_lines must be >= 0 or None, got {max_blank_lines}")
        blanks = " ".join(['"\\n"?'] * max_blank_lines) or '""'
        body = ['value ::= "\\n"? "```python\\n" blank-lines (text-line blank-lines)* "```" "\\n"?',
                f"blank-lines ::= {blanks}", f'text-line ::= {first} "\\n"']
    return ValueFormat("python-block", "\n".join([*body, *rules]), max_tokens=MAX_TOKENS)
