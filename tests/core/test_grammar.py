"""The reply grammar against the reply parser, both directions (hypothesis), and llama.cpp reading every grammar.

Direction 1: every reply the grammar admits is read by `extract_tagged`, with the value the grammar put inside the
tags. Direction 2: any string is admitted exactly when the parser reads a value from it AND, as the parser reads
it, it has the format's shape: a critique of at most CRITIQUE_CHARS characters without "<" before the first
opening tag, the tags as the grammar writes them, nothing after the first closing tag.
"""

import re

import pytest
from gbnf import Grammar, llama_cpp_reads
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tgdomains import grammar as g
from tgdomains.domain import ParseError
from tgdomains.optimizer import extract_tagged

REPLY = g.reply_format()
MATCHER = Grammar(REPLY.grammar)
FRAGMENTS = ["<IMPROVED_VARIABLE>", "</IMPROVED_VARIABLE>", "</improved_variable>", "<Improved_Variable>",
             "</IMPROVED_VARIABLE", "</IMPROVED", "<", "/", ">", "<<", "\n", " ", "\t", "\xa0", "\u2003", "a",
             "x = 1", "é", "🙂", ""]
texts = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=4), max_size=8).map("".join)
fast = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parsed(reply: str) -> str | None:
    try:
        return extract_tagged(reply)
    except ParseError:
        return None


def test_python_whitespace_is_every_code_point_strip_removes():
    assert set(g.PYTHON_WHITESPACE) == {chr(c) for c in range(0x110000) if chr(c).isspace()}


@fast
@given(MATCHER.strings(alphabet="<>/I_ \n\xa0aé", max_repeat=12))
def test_every_reply_the_grammar_admits_is_parsed_with_its_value(reply):
    assert MATCHER.matches(reply)
    inner = reply[reply.index(g.OPEN) + len(g.OPEN):-len(g.CLOSE)]
    assert parsed(reply) == inner.strip("\n")


def in_shape(reply: str) -> bool:
    """The format's shape, cut where the parser cuts (first opening tag, then the first closing tag after it)."""
    opening = re.search(g.OPEN, reply, re.I)
    if opening is None:
        return False
    closing = re.search(g.CLOSE, reply[opening.end():], re.I)
    if closing is None:
        return False
    critique = reply[:opening.start()]
    return ("<" not in critique and len(critique) <= g.CRITIQUE_CHARS and opening.group(0) == g.OPEN
            and reply[opening.end() + closing.start():] == g.CLOSE)


@fast
@given(critique=texts, value=texts)
def test_a_reply_of_the_format_shape_is_admitted_exactly_when_the_parser_reads_its_value(critique, value):
    reply = critique + g.OPEN + value + g.CLOSE
    assert MATCHER.matches(reply) == (parsed(reply) is not None and in_shape(reply))
    if "<" not in critique and len(critique) <= g.CRITIQUE_CHARS and MATCHER.matches(reply):
        assert parsed(reply) == value.strip("\n")


@fast
@given(texts)
def test_any_string_is_admitted_exactly_when_the_parser_reads_it_in_the_format_shape(text):
    assert MATCHER.matches(text) == (parsed(text) is not None and in_shape(text))


@pytest.mark.parametrize("reply", [
    "no tags at all",
    "<IMPROVED_VARIABLE>cut off before the end",
    "<IMPROVED_VARIABLE>\n  \n</IMPROVED_VARIABLE>",  # empty value
    "<IMPROVED_VARIABLE>a</IMPROVED_VARIABLE> and text after",
    "<IMPROVED_VARIABLE>a</IMPROVED_VARIABLE><IMPROVED_VARIABLE>b</IMPROVED_VARIABLE>",  # two blocks
    "a critique saying a < b <IMPROVED_VARIABLE>v</IMPROVED_VARIABLE>",  # "<" in the critique
    "x" * (g.CRITIQUE_CHARS + 1) + "<IMPROVED_VARIABLE>v</IMPROVED_VARIABLE>",  # a critique that rambles
])
def test_replies_outside_the_format_are_not_admitted(reply):
    assert not MATCHER.matches(reply)


def test_the_critique_can_be_left_out_and_the_value_spans_lines():
    assert MATCHER.matches("<IMPROVED_VARIABLE>\ndef f(a, b):\n    return a < b </ 2\n</IMPROVED_VARIABLE>")
    assert not Grammar(g.reply_format(critique_chars=0).grammar).matches("hi<IMPROVED_VARIABLE>v</IMPROVED_VARIABLE>")


@pytest.mark.parametrize("limit", [0, 1, 7, 9, 10, 19, 99, 100, 120, 157, 999, 10000])
def test_integer_and_number_ranges(limit):
    ints = Grammar(f"root ::= {g.integer_upto(limit)}")
    for n in range(0, max(limit + 30, 120)):
        assert ints.matches(str(n)) == (n <= limit), n
    assert not ints.matches("01") and not ints.matches("-1") and not ints.matches("")
    numbers = Grammar(f"root ::= {g.number_upto(limit + 0.5)}")
    for text, ok in [(str(limit), True), (f"{limit}.0", True), (f"{limit}.5", False), (str(limit + 1), False),
                     ("0.25", limit >= 1), ("0.", False), ("1e3", False), ("0.1234", False)]:
        assert numbers.matches(text) == ok, (limit, text)
    if limit >= 1:
        positive = Grammar(f"root ::= {g.number_upto(limit, positive=True)}")
        assert not positive.matches("0") and not positive.matches("0.5") and positive.matches("1")
        assert positive.matches(str(limit)) and not positive.matches(str(limit + 1))


def test_llama_cpp_reads_the_reply_grammar_and_refuses_a_broken_one():
    assert llama_cpp_reads(REPLY.grammar)
    assert llama_cpp_reads(g.reply_format(critique_chars=0).grammar)
    assert not llama_cpp_reads('root ::= "unclosed')
