"""A program for constrained decoding: one fenced Python block. Syntax and signature are still checked by the code
domain's parser.

Two versions, because the grammar is part of every code request (a cassette recorded under one does not replay
under the other):

- version 1, `value_format()`, the default: lines that never start with a backquote and never hold the closing tag.
  Every code table but "code-g2" was recorded under it (bench/quality/ pins it for "code" and "code-hard").
- version 2, `CodeDomain(value_grammar=2)`: lines that hold no backquote, no "<" as their first visible character
  and no whitespace-only run, at most two empty lines in a row, and at least one line of code.

Why version 2 was tried (bench/quality/grammar_gaps.py counts it over the committed code cassettes): under version 1
the model often writes a mangled closing tag as a line of the program ("</IMPROVED_VARIABLE/>", "</IMPROVED_VARIABLE",
"<IMPROVED_VARIABLE>"), which version 1 admits because the line never completes the exact tag; the program then
fails to compile and the step is lost (433 of 1715 constrained replies). It also closes the other gaps: a reply that
runs to the token limit on empty lines (bench/quality/newline_bound.py), a "```" inside a line (the extractor reads it
as the end of the fence) and an empty block. Why it is not the default: on the code suite at seed 0 (session 11,
suite "code-g2") the chain under it had no unusable reply (7 under version 1) and 49 evaluations instead of 36, but
solved 4 problems instead of 7 (one seed; why is not established: bench/quality/README.md, session 11). The price of its rules:
a program cannot hold a backquote or a line of a multi-line string starting with "<".

`value_format(max_blank_lines=2, no_tag_line_starts=True)` is the bounded variant newline_bound.py measured
(a subset of version 1, a superset of version 2).
"""

from __future__ import annotations

from tgdomains.grammar import CLOSE, ValueFormat, avoiding

MAX_TOKENS = 1536  # HumanEval/129's replies were cut at 512; a long program plus a short critique fits in this

VERSIONS = (1, 2)
DEFAULT_VERSION = 1


def value_format_version(version: int = DEFAULT_VERSION) -> ValueFormat:
    """The code value grammar by version number (see the module docstring)."""
    if version == 1:
        return value_format()
    if version == 2:
        return value_format(max_blank_lines=2, no_tag_line_starts=True, strict_lines=True)
    raise ValueError(f"value_grammar must be one of {', '.join(map(str, VERSIONS))}, got {version!r}")


def value_format(max_blank_lines: int | None = None, no_tag_line_starts: bool = False,
                 strict_lines: bool = False) -> ValueFormat:
    """`max_blank_lines`: at most this many empty lines in a row (None: any number). `no_tag_line_starts`: no line
    starts with "<" (no Python statement does; a line of a string literal that does cannot be written).
    `strict_lines` (with `max_blank_lines`): no backquote anywhere, no "<" after a line's indentation either, no
    line of only spaces and tabs, and at least one line of code."""
    if strict_lines and max_blank_lines is None:
        raise ValueError("strict_lines needs max_blank_lines")
    if strict_lines:
        first, rules = avoiding("code-rest", CLOSE, exclude="\n`", first_exclude="< \t")
        text_line = f'text-line ::= [ \\t]* {first} "\\n"'
    else:
        # a line may not start with "`": "```" would end the fence
        first, rules = avoiding("code-rest", CLOSE, exclude="\n", first_exclude="`<" if no_tag_line_starts else "`")
        text_line = f'text-line ::= {first} "\\n"'
    if max_blank_lines is None:
        body = ['value ::= "\\n"? "```python\\n" code-line+ "```" "\\n"?', f'code-line ::= {first}? "\\n"']
    else:
        if max_blank_lines < 0:
            raise ValueError(f"max_blank_lines must be >= 0 or None, got {max_blank_lines}")
        blanks = " ".join(['"\\n"?'] * max_blank_lines) or '""'
        lines = "text-line blank-lines (text-line blank-lines)*" if strict_lines else "(text-line blank-lines)*"
        body = [f'value ::= "\\n"? "```python\\n" blank-lines {lines} "```" "\\n"?',
                f"blank-lines ::= {blanks}", text_line]
    return ValueFormat("python-block", "\n".join([*body, *rules]), max_tokens=MAX_TOKENS)
