"""The code value grammar: one fenced Python block, read back whole by the code domain's extractor."""

import pytest
from gbnf import Grammar, llama_cpp_reads
from hypothesis import HealthCheck, assume, given, settings

from domains.code.evaluator import extract_code
from domains.code.value_format import value_format, value_format_version
from tgdomains.grammar import reply_format
from tgdomains.optimizer import extract_tagged

FORMAT = reply_format(value_format())
REPLY = Grammar(FORMAT.grammar)
# A known gap, left for the grammar's next version (it changes every code request): a line may hold ``` after its
# first character ("a```"), which both grammars admit and the extractor reads as the end of the fence. Hypothesis
# found it in session 10; 3 of the 1553 value blocks in the committed code cassettes hold one.
MID_LINE_FENCE = "```"


def test_a_program_in_a_fence_is_admitted_and_a_stray_fence_or_closing_tag_is_not():
    program = "def f(a, b):\n    return a < b and '</div>' != ''\n"
    assert REPLY.matches(f"Fixed it.\n<IMPROVED_VARIABLE>\n```python\n{program}```\n</IMPROVED_VARIABLE>")
    assert not REPLY.matches("<IMPROVED_VARIABLE>\ndef f(): pass\n</IMPROVED_VARIABLE>")  # no fence
    assert not REPLY.matches("<IMPROVED_VARIABLE>\n```python\n```x\n```\n</IMPROVED_VARIABLE>")
    assert not REPLY.matches("<IMPROVED_VARIABLE>\n```python\ns = '</IMPROVED_VARIABLE>'\n```\n</IMPROVED_VARIABLE>")
    assert FORMAT.max_tokens and FORMAT.max_tokens > 512  # HumanEval/129's replies were cut off at 512


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(REPLY.strings(alphabet="a=<:( \n`", max_repeat=4))
def test_every_reply_the_grammar_admits_gives_the_extractor_its_whole_block(reply):
    value = extract_tagged(reply)
    body = value.strip("\n").removeprefix("```python\n").removesuffix("```")
    assume(MID_LINE_FENCE not in body)
    assert extract_code(value).strip() == body.strip()


def test_llama_cpp_reads_the_code_grammar():
    assert llama_cpp_reads(FORMAT.grammar)


BOUNDED = reply_format(value_format(max_blank_lines=2, no_tag_line_starts=True))


def test_the_bounded_grammar_admits_two_empty_lines_in_a_row_and_no_line_starting_with_a_tag():
    """The committed code cassettes' 1536-token loops: a fence, then only newlines (the model wanted to write the
    closing tag inside the fence). The bounded grammar stops both; the default admits them (it is what was recorded)."""
    bounded = Grammar(BOUNDED.grammar)
    wrap = "<IMPROVED_VARIABLE>\n```python\n{}```\n</IMPROVED_VARIABLE>".format
    two_gaps = "import os\n\n\ndef f():\n\n    return 1\n\n\n"
    assert bounded.matches(wrap(two_gaps)) and REPLY.matches(wrap(two_gaps))
    assert bounded.matches(wrap(""))  # an empty block ends at once (the parser says it is empty)
    for looping in ("def f():\n    pass\n\n\n\n", "\n\n\n", "</IMPROVED_VARIABLE\n"):
        assert REPLY.matches(wrap(looping)) and not bounded.matches(wrap(looping)), looping
    assert bounded.matches(wrap("x = 1 < 2  # '<' inside a line is fine\n"))
    assert Grammar(reply_format(value_format(max_blank_lines=0)).grammar).matches(wrap("a = 1\nb = 2\n"))
    assert not Grammar(reply_format(value_format(max_blank_lines=0)).grammar).matches(wrap("a = 1\n\nb = 2\n"))
    assert llama_cpp_reads(BOUNDED.grammar)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(Grammar(BOUNDED.grammar).strings(alphabet="a=<:( \n`", max_repeat=4))
def test_every_reply_the_bounded_grammar_admits_gives_the_extractor_its_whole_block(reply):
    value = extract_tagged(reply)
    body = value.strip("\n").removeprefix("```python\n").removesuffix("```")
    assume(MID_LINE_FENCE not in body)
    assert extract_code(value).strip() == body.strip()
    assert "\n\n\n\n" not in body


VERSION_2 = reply_format(value_format_version(2))


def test_version_2_refuses_tag_lines_empty_line_runs_backquotes_and_an_empty_block():
    """What the model wrote under version 1 and lost a step to (bench/quality/grammar_gaps.py): a mangled closing tag
    as a line of the program, at the start or after indentation; a run of empty lines to the token limit; a ``` inside
    a line (the extractor ends the fence there); an empty block."""
    v2, v1 = Grammar(VERSION_2.grammar), REPLY
    wrap = "<IMPROVED_VARIABLE>\n```python\n{}```\n</IMPROVED_VARIABLE>".format
    program = "def f(a):\n    if a < 2:\n\n\n        return '<b>'  # a < b\n    return 0\n"
    assert v2.matches(wrap(program)) and v1.matches(wrap(program))
    for lost in ("def f():\n    pass\n</IMPROVED_VARIABLE/>\n", "def f():\n    pass\n    </IMPROVED_VARIABLE\n",
                 "def f():\n\t<IMPROVED_VARIABLE>\n", "def f():\n    pass\n\n\n\n", "x = 1  ```\n", "",
                 "def f():\n    \n    pass\n"):
        assert v1.matches(wrap(lost)) != (lost == ""), lost  # version 1 admitted every one but the empty block
        assert not v2.matches(wrap(lost)), lost
    assert llama_cpp_reads(VERSION_2.grammar)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(Grammar(VERSION_2.grammar).strings(alphabet="a=<:( \n\t`", max_repeat=4))
def test_version_2_admits_only_what_version_1_did_and_the_extractor_reads_its_whole_block(reply):
    assert REPLY.matches(reply)
    value = extract_tagged(reply)
    body = value.strip("\n").removeprefix("```python\n").removesuffix("```")
    assert "`" not in body and body.strip()
    assert extract_code(value).strip() == body.strip()


def test_the_code_domain_uses_version_1_unless_told_and_names_a_bad_version():
    from domains.code.plugin import CodeDomain
    from tgdomains.domain import get_domain

    problem = get_domain("code").load({"task_id": "burst-balloons"})
    assert get_domain("code").value_format(problem) == value_format() == value_format_version(1)
    assert CodeDomain(value_grammar=2).value_format(problem) == value_format_version(2) != value_format()
    with pytest.raises(ValueError, match="value_grammar must be one of 1, 2, got 3"):
        get_domain("code", value_grammar=3)
