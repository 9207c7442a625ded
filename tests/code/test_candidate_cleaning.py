"""The code domain's reply -> candidate path: test code small models append is stripped, cut-off programs are not
trimmed into a start."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from domains import code
from domains.code.evaluator import parse_candidate, strip_test_code
from domains.code.plugin import CodeDomain, zero_shot_solution
from tgdomains.engines.base import BaseEngine, Completion, Usage

PROGRAM = "def trap(height):\n    return sum(height)\n"


@pytest.fixture()
def trap():
    return code.find_problem(code.load_problems(), "trapping-rain-water")


def test_module_level_asserts_main_blocks_and_prints_are_stripped(trap):
    reply = (f"```python\nimport sys\n{PROGRAM}\nassert trap([0, 1, 0, 2]) == 1\nprint(trap([4, 2, 3]))\n"
             "trap([1])\ncheck(trap)\nif __name__ == '__main__':\n    print(trap([1, 2]))\n"
             "sys.setrecursionlimit(10000)\n```")
    got = parse_candidate(reply, trap)
    assert got == f"import sys\n{PROGRAM}\nsys.setrecursionlimit(10000)\n"


def test_asserts_inside_the_function_are_kept(trap):
    program = "def trap(height):\n    assert isinstance(height, list)\n    return 0\n"
    assert strip_test_code(program, trap) == program


@dataclass(frozen=True)
class _Reply(Completion):
    finish_reason: str | None = None


class _Cut(BaseEngine):
    model = "cut"

    def __init__(self, replies):
        super().__init__()
        self.replies, self.requests = list(replies), []

    def _complete(self, request):
        self.requests.append(request.to_dict())
        text, reason = self.replies.pop(0)
        return _Reply(text, Usage(1, 1), finish_reason=reason)


def test_a_cut_off_zero_shot_program_is_asked_again_shorter(trap):
    cut = "```python\ndef trap(height):\n    # a long explanation\n    total = 0\n    for i in range(len("
    engine = _Cut([(cut, "length"), (f"```python\n{PROGRAM}```", "stop")])
    assert zero_shot_solution(CodeDomain(), trap, engine) == PROGRAM
    again = engine.requests[1]["messages"][-1]["content"]
    assert "cut off at the token limit" in again and "for i in range(len(" in again


def test_a_program_cut_off_twice_starts_from_the_bare_signature_not_a_trimmed_prefix(trap):
    cut = "def trap(height):\n    total = 0\n    for i in range(len(height)):\n        total +="
    engine = _Cut([(cut, "length"), (cut, "length")])
    start = zero_shot_solution(CodeDomain(), trap, engine)
    assert "total" not in start and start.rstrip().endswith("pass")
