"""The evaluator: scores, loss text, code extraction, signature rule, and hidden tests kept out of every text."""

from __future__ import annotations

import json

import pytest

from domains.code.evaluator import CodeEvaluator, Problem, code_lines, extract_code, parse_candidate
from domains.code.sandbox import TestCase
from tgdomains.domain import ParseError

SECRET = 987654321  # appears only in hidden tests


@pytest.fixture()
def problem():
    return Problem(
        id="clamp", statement="Return x clamped to [0, 10].", entry_point="clamp", signature="def clamp(x: int) -> int:",
        visible_tests=[TestCase("clamp(5)", "5"), TestCase("clamp(-3)", "0"), TestCase("clamp(42)", "10")],
        hidden_tests=[TestCase(f"clamp({SECRET})", "10"), TestCase("clamp(7)", "7"), TestCase("clamp(-1)", "0")],
    )


def test_correct_program_passes(problem, sandbox):
    ev = CodeEvaluator(problem, sandbox).evaluate("def clamp(x):\n    return max(0, min(10, x))\n")
    assert ev.passed and ev.valid and ev.score == 1.0
    assert ev.metrics["visible_passed"] == 3 and ev.metrics["code_lines"] == 2
    assert ev.text == "All 3 visible tests pass."


def test_wrong_program_lists_failing_tests_first(problem, sandbox):
    ev = CodeEvaluator(problem, sandbox).evaluate("def clamp(x):\n    return max(0, x)\n")
    assert not ev.passed and ev.score == pytest.approx(2 / 3)
    first, failing = ev.text.splitlines()[:2]
    assert first == "2 of 3 visible tests pass. Failing:"
    assert failing == "- clamp(42) expected 10, got 42"


def test_errors_and_timeouts_are_described(problem, sandbox):
    ev = CodeEvaluator(problem, sandbox).evaluate("def clamp(x):\n    if x < 0:\n        raise ValueError('negative')\n    while x > 10:\n"
                  "        pass\n    return x\n")
    assert ("clamp(-3) expected 0, but it raised ValueError: negative at line 3 in clamp: "
            "raise ValueError('negative')") in ev.text
    assert "clamp(42) expected 10, but it timed out" in ev.text


def test_programs_that_do_not_load_are_invalid_with_the_reason(problem, sandbox):
    ev = CodeEvaluator(problem, sandbox).evaluate("def clamp(x)\n    return x\n")
    assert not ev.valid and ev.score == 0.0 and ev.text.startswith("The code does not compile: SyntaxError")
    ev = CodeEvaluator(problem, sandbox).evaluate("def other(x):\n    return x\n")
    assert not ev.valid and "defines no function `clamp`" in ev.text


def test_hidden_tests_never_appear_in_any_evaluation_text(problem, sandbox):
    wrong = "def clamp(x):\n    return x\n"
    ev = CodeEvaluator(problem, sandbox).evaluate(wrong)
    assert str(SECRET) not in ev.text and str(SECRET) not in json.dumps(ev.to_dict())
    verdict = CodeEvaluator(problem, sandbox).hidden_verdict(wrong, hidden_sandbox=sandbox)
    assert verdict["hidden_total"] == 3 and verdict["hidden_passed"] == 1
    assert verdict["hidden_pass_rate"] == pytest.approx(1 / 3)
    assert str(SECRET) not in json.dumps(verdict)


def test_hidden_verdict_without_hidden_tests(problem, sandbox):
    problem.hidden_tests = []
    verdict = CodeEvaluator(problem, sandbox).hidden_verdict("def clamp(x):\n    return max(0, min(10, x))\n",
                                                      hidden_sandbox=sandbox)
    assert verdict["hidden_pass_rate"] is None and verdict["visible_pass_rate"] == 1.0


@pytest.mark.parametrize("reply", [
    "Here it is:\n```python\ndef clamp(x):\n    return x\n```\nDone.",
    "def clamp(x):\n    return x\n",
    "<IMPROVED_VARIABLE>\n```\ndef clamp(x):\n    return x\n```\n</IMPROVED_VARIABLE>",
    "```python\nclass Solution:\n    def clamp(self, x):\n        return x\n```",
])
def test_code_is_extracted_from_fenced_bare_and_tagged_replies(problem, reply):
    code = parse_candidate(reply, problem)
    assert "def clamp(" in code and "```" not in code and "Done" not in code


def test_prose_around_a_bare_program_is_dropped(problem):
    reply = "Sure! Here is my solution:\ndef clamp(x):\n    return max(0, min(10, x))\nThis runs in O(1) time."
    assert parse_candidate(reply, problem) == "def clamp(x):\n    return max(0, min(10, x))\n"


def test_the_largest_fenced_block_is_taken():
    reply = "```python\nimport math\n\ndef f(x):\n    return g(x)\n\ndef g(x):\n    return x\n```\nUsage:\n```python\nf(1)\n```"
    assert extract_code(reply).startswith("import math")


def test_signature_changes_are_rejected_with_the_reason(problem):
    with pytest.raises(ParseError, match=r"changes the signature to `clamp\(x, lo\)`; keep `clamp\(x\)`"):
        parse_candidate("def clamp(x, lo):\n    return x\n", problem)
    with pytest.raises(ParseError, match="does not define the entry point `clamp`"):
        parse_candidate("def clip(x):\n    return x\n", problem)
    with pytest.raises(ParseError, match="SyntaxError"):
        parse_candidate("def clamp(x):\nreturn x\n", problem)
    with pytest.raises(ParseError, match="no code"):
        parse_candidate("```python\n```", problem)


def test_code_lines_skip_blanks_and_comments():
    assert code_lines("# header\n\ndef f(x):\n    # why\n    return (x +\n            1)\n") == 3
