"""Reply grammars for constrained decoding: a reply the parser cannot read is never sampled.

The optimizer's reply format is: an optional short critique, then exactly one
``<IMPROVED_VARIABLE>value</IMPROVED_VARIABLE>`` block, then nothing. `reply_format(value)` writes that format as a
llama.cpp GBNF grammar (rule `root`), with the value either free text or a domain's own grammar (a `ValueFormat`:
JSON with exactly a plan's structures and bounded numbers, one SMILES line, a fenced Python block).

The free-text grammar is exactly what `tgdomains.optimizer.extract_tagged` reads from a reply of that shape (a
critique of at most CRITIQUE_CHARS characters without "<"): the value never contains a closing tag
(case-insensitively, as the parser matches it) and has a non-whitespace character. "Text avoiding a word" is
written as the states of the automaton that tracks how much of the word was just seen (`avoiding`). tests/core/test_grammar.py checks the
grammar against the parser in both directions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tgdomains.engines.base import ReplyFormat
from tgdomains.prompts import TAG

OPEN = f"<{TAG}>"
CLOSE = f"</{TAG}>"

# Python's str.strip() whitespace: the value must hold one character outside it (the parser rejects "  \n").
# (tests/core/test_grammar.py checks this list against str.isspace over every code point)
PYTHON_WHITESPACE = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B)))
                     + "\u2028\u2029\u202f\u205f\u3000")


@dataclass(frozen=True)
class ValueFormat:
    """What a domain's value looks like, for engines that constrain decoding.

    gbnf:        GBNF rules defining the rule `value` (helper rules should carry a domain prefix);
    json_schema: the value's JSON Schema when the value is JSON (for endpoints that take a schema), else None;
    max_tokens:  a reply's token limit that fits a whole value plus a short critique.
    """

    name: str
    gbnf: str
    json_schema: dict[str, Any] | None = None
    max_tokens: int | None = None


def literal(text: str) -> str:
    """A GBNF string literal."""
    return json.dumps(text, ensure_ascii=True)


def char_class(chars: str, negated: bool = False) -> str:
    """A GBNF character class holding `chars` (or everything else)."""
    out = []
    for ch in sorted(set(chars)):
        if ch in "]\\^-[":
            out.append("\\" + ch)
        elif ch.isprintable() and ord(ch) < 128 and ch != " ":
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02X}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(f"\\U{ord(ch):08X}")
    return "[" + ("^" if negated else "") + "".join(out) + "]"


def _cases(ch: str) -> str:
    return ch.lower() + ch.upper() if ch.lower() != ch.upper() else ch


def avoiding(name: str, word: str, exclude: str = "", first_exclude: str = "") -> tuple[str, list[str]]:
    """Rules `name0` .. `nameN` for any text (without the characters in `exclude`) that never contains `word`,
    case-insensitively; `nameK` is the state "the last K characters were the start of `word`", each may end.

    Returns (entry, rules): `entry` is the GBNF for "one character (not in `first_exclude` either), then the
    rest" from state 0, for callers that need a first character (a non-empty text). `word` must start with a character found nowhere else in it (true
    of both tags: "<"), so the automaton never falls back to a partial match other than that first character.
    """
    first = word[0]
    if first.lower() in word[1:].lower() or first in exclude:
        raise ValueError(f"avoiding({word!r}): the first character must not recur in the word")
    rules = []
    for k in range(len(word)):
        alternatives = []
        expected = _cases(word[k]) if k else ""
        if k and k + 1 < len(word):
            alternatives.append(f"{char_class(expected)} {name}{k + 1}")
        # elif k + 1 == len(word): reading the word's last character would complete it, so it has no transition
        alternatives.append(f"{literal(first)} {name}1")
        alternatives.append(f"{char_class(first + expected + exclude, negated=True)} {name}0")
        rules.append(f"{name}{k} ::= ({' | '.join(alternatives)})?")
    first_ok = f"{literal(first)} {name}1 | " if first not in first_exclude else ""
    entry = f"({first_ok}{char_class(first + exclude + first_exclude, negated=True)} {name}0)"
    return entry, rules


def free_text_value() -> ValueFormat:
    """Any value the parser accepts: no closing tag inside, at least one non-whitespace character."""
    _, rules = avoiding("value-rest", CLOSE)
    first_visible = (f"({literal('<')} value-rest1 | {char_class('<' + PYTHON_WHITESPACE, negated=True)} "
                     f"value-rest0)")
    gbnf = "\n".join([f"value ::= {char_class(PYTHON_WHITESPACE)}* {first_visible}", *rules])
    return ValueFormat("text", gbnf)


CRITIQUE_CHARS = 400  # about 100 tokens: two or three sentences, then the model must write the block


def reply_format(value: ValueFormat | None = None, *, critique_chars: int = CRITIQUE_CHARS) -> ReplyFormat:
    """The whole reply's grammar: a critique of at most `critique_chars` characters without "<" (0: none), then
    <IMPROVED_VARIABLE>value</IMPROVED_VARIABLE>, then nothing. The bound keeps a rambling model from spending
    its token limit before the value."""
    value = value or free_text_value()
    critique = f"[^<]{{0,{critique_chars}}} " if critique_chars else ""
    root = f"root ::= {critique}{literal(OPEN)} value {literal(CLOSE)}"
    grammar = "\n".join([root, value.gbnf.strip()]) + "\n"
    schema = json.dumps(value.json_schema, sort_keys=True) if value.json_schema is not None else None
    return ReplyFormat(name=f"improved-variable/{value.name}", grammar=grammar, value_schema=schema,
                       max_tokens=value.max_tokens)


def reply_format_for(domain: Any, instance: Any) -> ReplyFormat:
    """The reply format of an optimizer request on `instance`: the domain's value grammar (free text when its
    `value_format` gives None). A run builds it once (`RunView.reply_format`)."""
    return reply_format(domain.value_format(instance))


# -- building blocks for domains' value grammars --------------------------------------------------------------


def integer_upto(limit: int, lowest: int = 0) -> str:
    """GBNF for the JSON integers lowest..limit (lowest 0 or 1; no leading zeros)."""
    if lowest not in (0, 1) or limit < lowest:
        raise ValueError(f"integer_upto({limit}, {lowest}): need lowest in (0, 1) and limit >= lowest")
    digits = str(limit)
    if len(digits) == 1:
        return f"[{lowest}-{limit}]"
    alternatives = [f"[{lowest}-9]"]
    for length in range(2, len(digits)):  # every shorter number
        alternatives.append("[1-9]" + " [0-9]" * (length - 1))
    for i, d in enumerate(digits):  # same length: agree on a prefix of `limit`, then a smaller digit, then any
        low = 1 if i == 0 else 0
        if int(d) > low:
            head = literal(digits[:i]) + " " if i else ""
            alternatives.append(f"{head}[{low}-{int(d) - 1}]" + " [0-9]" * (len(digits) - i - 1))
    alternatives.append(literal(digits))
    return "(" + " | ".join(alternatives) + ")"


def number_upto(limit: float, *, positive: bool = False, decimals: int = 3) -> str:
    """GBNF for JSON numbers in [0, floor(limit)] — in [1, floor(limit)] when `positive` — with at most
    `decimals` decimals. (Slightly stricter than the bound when `limit` is not whole: always inside it.)"""
    top = int(limit)
    lowest = 1 if positive else 0
    if top < lowest:
        raise ValueError(f"number_upto({limit}): no number in range")
    parts = [f'{literal(str(top))} ("." "0"{{1,{decimals}}})?']
    if top - 1 >= lowest:
        parts.insert(0, f'{integer_upto(top - 1, lowest)} ("." [0-9]{{1,{decimals}}})?')
    return "(" + " | ".join(parts) + ")"
