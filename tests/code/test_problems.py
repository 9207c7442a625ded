"""Problem files: every supported format loads, our shipped problems are sound, bad files get clear errors."""

from __future__ import annotations

import json

import pytest

from domains.code.expected import ReferenceRunner
from domains.code.problems import (
    SHIPPED_PROBLEMS,
    differential_tests,
    find_problem,
    load_problems,
    parse_assert,
)
from domains.code.sandbox import TestCase

from .conftest import shared_file


def test_parse_assert_splits_call_and_expected():
    assert parse_assert("assert f([1,2], k=3) == [3]", "f") == TestCase("f([1, 2], k=3)", "[3]")
    with pytest.raises(ValueError, match="does not call the entry point 'g'"):
        parse_assert("assert f(1) == 2", "g")
    with pytest.raises(ValueError, match="not of the form"):
        parse_assert("assert f(1) != 2", "f")


def test_textgrad_leetcode_file():
    problems = load_problems(shared_file("leetcode_hard_39.jsonl"))
    assert len(problems) == 39
    p = find_problem(problems, "minimum-time-to-visit-a-cell-in-a-grid")
    assert p.entry_point == "minimumTime" and p.signature.startswith("def minimumTime(grid")
    assert p.visible_tests[1] == TestCase("minimumTime([[0, 2, 4], [3, 2, 1], [1, 0, 4]])", "-1")
    assert p.hidden() == []


def test_reflexion_leetcode_file():
    problems = load_problems(shared_file("reflexion_leetcode_hard_40.jsonl"))
    assert len(problems) == 40
    assert all(p.visible_tests and p.entry_point.isidentifier() for p in problems)
    assert problems[0].entry_point == "minReverseOperations"  # the file's entry_point field is the slug


def test_humaneval_plus_hidden_tests_come_from_the_canonical_solution(sandbox):
    problems = load_problems(shared_file("HumanEvalPlus.jsonl.gz"))
    assert len(problems) == 164
    p = find_problem(problems, "HumanEval/0")
    hidden = p.hidden()
    assert len(hidden) > 100 and len(p.visible_tests) == 3
    canonical = ("def has_close_elements(numbers, threshold):\n"
                 "    s = sorted(numbers)\n"
                 "    return any(b - a < threshold for a, b in zip(s, s[1:]))\n")
    assert sandbox.run(canonical, p.entry_point, hidden, atol=p.atol).passed == len(hidden)
    wrong = "def has_close_elements(numbers, threshold):\n    return False\n"
    assert sandbox.run(wrong, p.entry_point, hidden, atol=p.atol).passed < len(hidden)


def test_own_format_with_generator_makes_hidden_tests(tmp_path):
    record = {
        "id": "double", "entry_point": "double", "signature": "def double(x: int) -> int:",
        "statement": "Return twice x.", "visible_tests": ["assert double(2) == 4", {"call": "double(0)", "expected": "0"}],
        "reference_solution": "def double(x):\n    return 2 * x\n",
        "generator": "def generate(rng):\n    return (rng.randint(-100, 100),)\n", "hidden_count": 7, "seed": 3,
    }
    path = tmp_path / "mine.json"
    path.write_text(json.dumps([record]))
    (problem,) = load_problems(path)
    hidden = problem.hidden()
    assert len(hidden) == 7
    assert all(eval(t.expected) == 2 * eval(t.call.removeprefix("double")) for t in hidden)


def test_own_format_in_yaml(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("problems:\n"
                    "  - id: double\n"
                    "    entry_point: double\n"
                    "    statement: Return twice x.\n"
                    "    visible_tests: ['assert double(2) == 4']\n"
                    "    hidden_tests: [{call: 'double(5)', expected: '10'}]\n")
    (problem,) = load_problems(path)
    assert problem.visible_tests == [TestCase("double(2)", "4")] and problem.hidden() == [TestCase("double(5)", "10")]
    path.write_text("problems: [1, 2]\n")
    with pytest.raises(ValueError, match="expected a list of problems"):
        load_problems(path)


def test_own_format_errors_name_the_problem_and_field(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"id": "x", "statement": "s", "visible_tests": []}) + "\n")
    with pytest.raises(ValueError, match="'x' lacks the field\\(s\\) entry_point"):
        load_problems(path)
    path.write_text(json.dumps({"id": "y", "entry_point": "f", "statement": "s", "visible_tests": ["f(1) == 2"]}))
    with pytest.raises(ValueError, match="problem 'y'.*not of the form"):
        load_problems(path)
    path.write_text(json.dumps({"id": "z", "entry_point": "f", "statement": "s", "visible_tests": []}))
    with pytest.raises(ValueError, match="problem 'z': visible_tests is empty"):
        load_problems(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not JSON"):
        load_problems(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_problems(tmp_path / "missing.jsonl")
    path.write_text(json.dumps({"foo": 1}))
    with pytest.raises(ValueError, match="unknown problem format"):
        load_problems(path)


def test_shipped_problems_are_hard_sound_and_reproducible(sandbox):
    problems = load_problems()
    assert len(problems) >= 10
    records = [json.loads(line) for line in SHIPPED_PROBLEMS.read_text().splitlines()]
    runner = ReferenceRunner(use_cache=False)
    for problem, record in zip(problems, records, strict=True):
        assert 2 <= len(problem.visible_tests) <= 3 and len(problem.hidden()) >= 10
        # Differential testing from the file's own reference and generator gives exactly the stored hidden tests.
        assert differential_tests(record["reference_solution"], record["generator"], problem.entry_point,
                                  count=record["hidden_count"], seed=record["seed"], runner=runner) == problem.hidden()
        # The reference passes every visible example (the statement's examples agree with it) in the sandbox.
        result = sandbox.run(record["reference_solution"], problem.entry_point,
                             problem.visible_tests + problem.hidden())
        assert result.passed == len(problem.visible_tests) + len(problem.hidden()), problem.id


def test_loading_a_problem_file_runs_none_of_its_code(tmp_path):
    """A problem file's reference solution and generator run in the sandbox when the hidden tests are first
    needed, never in this process: what they try here (write a file of ours, lift the process-wide integer-digit
    limit, set an environment variable) does not happen, and the hidden tests still come out right."""
    import os
    import sys

    marker = tmp_path / "ran-here"
    side_effects = (f"import os, sys\ntry:\n    open({str(marker)!r}, 'w').write('x')\nexcept OSError:\n    pass\n"
                    "os.environ['TGD_RAN_HERE'] = '1'\nsys.set_int_max_str_digits(0)\n")
    record = {"id": "double", "entry_point": "double", "statement": "Return twice x.",
              "visible_tests": ["assert double(2) == 4"],
              "reference_solution": side_effects + "def double(x):\n    return 2 * x\n",
              "generator": side_effects + "def generate(rng):\n    return (rng.randint(-9, 9),)\n",
              "hidden_count": 5}
    path = tmp_path / "mine.json"
    path.write_text(json.dumps([record]))
    limit = sys.get_int_max_str_digits()
    (problem,) = load_problems(path)
    hidden = problem.hidden()
    assert len(hidden) == 5 and all(eval(t.expected) == 2 * eval(t.call.removeprefix("double")) for t in hidden)
    assert not marker.exists() and "TGD_RAN_HERE" not in os.environ and sys.get_int_max_str_digits() == limit


def test_expected_values_are_built_once_and_a_bad_cache_is_rebuilt(tmp_path):
    runner = ReferenceRunner(tmp_path)
    calls = ["f(2)", "f(10 ** 30)"]
    code = "def f(x):\n    return [x, 2.5, {x: (x,)}]\n"
    first = runner.outputs(code, "f", calls, preamble="", what="test")
    assert first == [[2, 2.5, {2: (2,)}], [10 ** 30, 2.5, {10 ** 30: (10 ** 30,)}]] and runner.built == 1
    assert runner.outputs(code, "f", calls, preamble="", what="test") == first and runner.built == 1
    (cache,) = tmp_path.glob("*.jsonl")
    cache.write_text("not what was written\n")
    assert runner.outputs(code, "f", calls, preamble="", what="test") == first and runner.built == 2
    cache.unlink()
    cache.symlink_to(tmp_path / "elsewhere.jsonl")  # a link is never followed: rebuilt, and the link replaced
    (tmp_path / "elsewhere.jsonl").write_text(cache.read_text() if cache.exists() else "")
    assert runner.outputs(code, "f", calls, preamble="", what="test") == first and runner.built == 3
    with pytest.raises(ValueError, match="test: the problem's own code failed on 1 of 2 inputs"):
        runner.outputs("def f(x):\n    return 1 // (x - 2)\n", "f", calls, preamble="", what="test")
    runner.close()
