"""The code value grammar: one fenced Python block, read back whole by the code domain's extractor."""

from gbnf import Grammar, llama_cpp_reads
from hypothesis import HealthCheck, assume, given, settings

from domains.code.evaluator import extract_code
from domains.code.value_format import value_format
from tgdomains.grammar import reply_format
from tgdomains.optimizer import extract_tagged

FORMAT = reply_format(value_format())
REPLY = Grammar(FORMAT.grammar)
# A known gap, left for the grammar's next version (it changes every code request): a line may hold ``` after its
# first character ("a```"), which the grammar admits and the extractor reads as the end of the fence; 3 of the 1553
# value blocks in the committed code cassettes hold one.
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


def test_the_code_domain_constrains_replies_to_its_value_grammar():
    from tgdomains.domain import get_domain

    problem = get_domain("code").load({"task_id": "burst-balloons"})
    assert get_domain("code").value_format(problem) == value_format()
