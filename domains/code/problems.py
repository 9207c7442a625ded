"""Programming problems: loaders for every file format we read (the `Problem` record is in evaluator.py).

Formats (each read from any path; `load_problems` tells them apart by their fields):

- TextGrad's LeetCode-Hard file (``leetcode_hard_39.jsonl``): task_id, prompt, test (asserts), signature, docstring.
- Reflexion's LeetCodeHardGym file (``reflexion_leetcode_hard_40.jsonl``): task_id, prompt, visible_tests (asserts).
  Neither LeetCode file has hidden tests (the papers submitted to LeetCode online), so `hidden_tests` is empty.
- HumanEval+ (``HumanEvalPlus.jsonl.gz``): visible tests are the first 3 of ``base_input``; hidden tests are every
  input of ``base_input + plus_input`` with the canonical solution's output as expected value, compared with the
  task's ``atol``; HumanEval/32 (``find_zero``, any root is right) by its residual instead (answer rule
  "polynomial-root"). A program sees the prompt's own imports and the typing names, nothing else it did not import.
  Expected values are made on first use, in the sandbox, and cached (expected.py).
- Our own format (``.json`` list, ``.jsonl``, or ``.yaml``/``.yml`` with the same fields), one object per problem::

      {"id": "trapping-rain-water",            # unique name
       "entry_point": "trap",                  # the function the tests call
       "signature": "def trap(height: list[int]) -> int:",
       "statement": "...the task in words, with examples...",
       "visible_tests": ["assert trap([0,1,0,2,1,0,1,3,2,1,2,1]) == 6", ...]   # or {"call": ..., "expected": ...}
       "hidden_tests": [...same forms...],     # optional
       "reference_solution": "def trap(...)...",  # optional: with a generator, makes the hidden tests
       "generator": "def generate(rng):\\n    return ([...],)",  # optional: random.Random -> tuple of arguments
       "hidden_count": 40, "seed": 0,          # optional, defaults shown
       "atol": 0.0,                            # optional float tolerance
       "starting_code": "..."}                 # optional first candidate instead of a zero-shot one

  When ``hidden_tests`` is absent and ``reference_solution`` + ``generator`` are given, the hidden tests are made by
  differential testing: ``hidden_count`` random inputs from ``generate(random.Random(seed + i))``, expected values
  from the reference. Both run in the sandbox like any candidate, on first use, never while the file is loaded
  (expected.py); what they return is cached.
"""

from __future__ import annotations

import ast
import gzip
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from domains.code.evaluator import LazyTests, Problem
from domains.code.expected import ReferenceRunner
from domains.code.sandbox import TestCase
from domains.code.worker import DEFAULT_PREAMBLE

SHIPPED_PROBLEMS = Path(__file__).with_name("problems") / "hard.jsonl"


# ---------------------------------------------------------------- tests from asserts


def parse_assert(text: str, entry_point: str | None = None) -> TestCase:
    """``assert f(args) == expected`` -> TestCase("f(args)", "expected"); any other shape is a ValueError."""
    try:
        node = ast.parse(text.strip()).body
    except SyntaxError as exc:
        raise ValueError(f"test {text!r} is not valid Python: {exc.msg}") from None
    if not (len(node) == 1 and isinstance(node[0], ast.Assert) and isinstance(node[0].test, ast.Compare)
            and len(node[0].test.ops) == 1 and isinstance(node[0].test.ops[0], ast.Eq)
            and isinstance(node[0].test.left, ast.Call)):
        raise ValueError(f"test {text!r} is not of the form `assert {entry_point or 'f'}(...) == expected`")
    compare = node[0].test
    called = compare.left.func
    if entry_point and not (isinstance(called, ast.Name) and called.id == entry_point):
        raise ValueError(f"test {text!r} does not call the entry point {entry_point!r}")
    return TestCase(call=ast.unparse(compare.left), expected=ast.unparse(compare.comparators[0]))


def _test_case(item: Any, entry_point: str) -> TestCase:
    if isinstance(item, str):
        return parse_assert(item, entry_point)
    if isinstance(item, dict) and isinstance(item.get("call"), str) and isinstance(item.get("expected"), str):
        return TestCase(item["call"], item["expected"])
    raise ValueError(f"a test must be an assert string or {{'call': str, 'expected': str}}, got {item!r}")


def call_source(entry_point: str, args: Iterable[Any]) -> str:
    return f"{entry_point}({', '.join(repr(a) for a in args)})"


def _function_name(prompt: str) -> str:
    for node in ast.walk(ast.parse(prompt)):
        if isinstance(node, ast.FunctionDef):
            return node.name
    raise ValueError("no function definition found in the prompt")


def _def_line(prompt: str, name: str) -> str:
    return next(line.strip() for line in prompt.splitlines() if line.lstrip().startswith(f"def {name}("))


def declared_preamble(prompt: str) -> str:
    """What a program for this prompt sees without importing it: the typing names (the task text says
    `from typing import *` is done) and the prompt's own top-level imports, which the model reads."""
    try:
        nodes = ast.parse(prompt).body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return DEFAULT_PREAMBLE
    imports = [ast.unparse(n) for n in nodes if isinstance(n, (ast.Import, ast.ImportFrom))]
    return DEFAULT_PREAMBLE + "".join(line + "\n" for line in imports)


# Tasks whose statement accepts several answers, by entry point: judged by the rule, not by equality.
HUMANEVAL_ANSWER_RULES = {"find_zero": "polynomial-root"}


# ---------------------------------------------------------------- loaders


def _read_records(path: Path) -> list[dict]:
    if not path.exists():
        raise FileNotFoundError(f"problem file {path} does not exist")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        text = f.read()
    if path.suffix in (".yaml", ".yml"):
        return _yaml_records(path, text)
    stripped = text.lstrip()
    try:
        if stripped.startswith("["):
            records = json.loads(text)
        else:
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON or JSON lines ({exc})") from None
    if not all(isinstance(r, dict) for r in records):
        raise ValueError(f"{path}: every problem must be a JSON object")
    return records


def _yaml_records(path: Path, text: str) -> list[dict]:
    from tgdomains.files import load_yaml

    data = load_yaml(text, str(path), limit=16 << 20, max_nodes=1_000_000)  # no aliases; size, values, error bounded
    records = data.get("problems") if isinstance(data, dict) and "problems" in data else data
    records = [records] if isinstance(records, dict) else records
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ValueError(f"{path}: expected a list of problems (or a mapping with a `problems` list)")
    return records


def load_textgrad_leetcode(path: str | Path) -> list[Problem]:
    """TextGrad's LeetCode-Hard file: visible tests from `test`; no hidden tests."""
    problems = []
    for r in _read_records(Path(path)):
        name = _function_name(r["prompt"])
        tests = [parse_assert(t, name) for t in r["test"].splitlines() if t.strip()]
        problems.append(Problem(id=r["task_id"], statement=r["prompt"], entry_point=name,
                                signature=_def_line(r["prompt"], name), visible_tests=tests, source=str(path),
                                preamble=declared_preamble(r["prompt"])))
    return problems


def load_reflexion_leetcode(path: str | Path) -> list[Problem]:
    """Reflexion's LeetCodeHardGym file: visible tests from `visible_tests`; no hidden tests."""
    problems = []
    for r in _read_records(Path(path)):
        name = _function_name(r["prompt"])
        tests = [parse_assert(t, name) for t in r["visible_tests"]]
        problems.append(Problem(id=r["task_id"], statement=r["prompt"], entry_point=name,
                                signature=_def_line(r["prompt"], name), visible_tests=tests, source=str(path),
                                preamble=declared_preamble(r["prompt"])))
    return problems


def load_humaneval_plus(path: str | Path, visible_count: int = 3, *,
                        runner: ReferenceRunner | None = None) -> list[Problem]:
    """HumanEval+: hidden = canonical outputs on base_input + plus_input; visible = the first base inputs. Nothing
    runs now: the canonical solution runs in the sandbox when a problem's tests are first used (`runner`, one for
    the whole file by default)."""
    runner = runner or ReferenceRunner()
    problems = []
    for r in _read_records(Path(path)):
        name = r["entry_point"]
        preamble = declared_preamble(r["prompt"])
        solution = r["prompt"] + r["canonical_solution"]
        inputs = list(r["base_input"]) + list(r["plus_input"])
        what = f"{path}: {r['task_id']}"

        def make(count: int, solution=solution, name=name, inputs=inputs, preamble=preamble,
                 what=what) -> list[TestCase]:
            calls = [call_source(name, args) for args in inputs[:count]]
            values = runner.outputs(solution, name, calls, preamble=preamble, what=what)
            return [TestCase.of_value(call, value) for call, value in zip(calls, values, strict=True)]

        visible, everything = min(visible_count, len(r["base_input"])), len(inputs)
        problems.append(Problem(id=r["task_id"], statement=r["prompt"], entry_point=name,
                                signature=_def_line(r["prompt"], name),
                                visible_tests=LazyTests(lambda make=make, n=visible: make(n)),
                                hidden_tests=lambda make=make, n=everything: make(n),
                                atol=float(r.get("atol") or 0.0), source=str(path), preamble=preamble,
                                answer_rule=HUMANEVAL_ANSWER_RULES.get(name)))
    return problems


def load_own_format(path: str | Path, *, runner: ReferenceRunner | None = None) -> list[Problem]:
    """Our JSON / JSON-lines format (see the module docstring)."""
    problems = []
    for i, r in enumerate(_read_records(Path(path))):
        where = f"{path}: problem {r.get('id', i)!r}"
        missing = [k for k in ("id", "entry_point", "statement", "visible_tests") if k not in r]
        if missing:
            raise ValueError(f"{where} lacks the field(s) {', '.join(missing)}")
        name = r["entry_point"]
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"{where}: entry_point {name!r} is not a Python identifier")
        try:
            visible = [_test_case(t, name) for t in r["visible_tests"]]
            hidden: list[TestCase] | Callable[[], list[TestCase]] = [_test_case(t, name) for t in r.get("hidden_tests", [])]
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        if not visible:
            raise ValueError(f"{where}: visible_tests is empty; the optimizer needs at least one test to learn from")
        if "hidden_tests" not in r and r.get("reference_solution") and r.get("generator"):
            runner = runner or ReferenceRunner()
            hidden = _differential_factory(r, name, runner, where)
        problems.append(Problem(id=str(r["id"]), statement=r["statement"], entry_point=name,
                                signature=r.get("signature") or f"def {name}(...):", visible_tests=visible,
                                hidden_tests=hidden, atol=float(r.get("atol", 0.0)),
                                starting_code=r.get("starting_code"), source=str(path)))
    return problems


def _differential_factory(record: dict, name: str, runner: ReferenceRunner, where: str) -> Callable[[], list[TestCase]]:
    def make() -> list[TestCase]:
        return differential_tests(record["reference_solution"], record["generator"], name,
                                  count=int(record.get("hidden_count", 40)), seed=int(record.get("seed", 0)),
                                  runner=runner, what=where)
    return make


def differential_tests(reference: str, generator: str, entry_point: str, *, count: int = 40, seed: int = 0,
                       runner: ReferenceRunner | None = None, what: str = "the problem") -> list[TestCase]:
    """Hidden tests by differential testing: `count` inputs from the generator, expected values from the reference.
    Both run in the sandbox (`runner`'s), never here."""
    runner = runner or ReferenceRunner()
    draws = [f"generate(__import__('random').Random({seed + i}))" for i in range(count)]
    generated = runner.outputs(generator, "generate", draws, preamble="", what=f"{what}: generator")
    bad = next((args for args in generated if not isinstance(args, (tuple, list))), None)
    if bad is not None:
        raise ValueError(f"{what}: the generator must return a tuple of arguments, got {type(bad).__name__}")
    try:
        calls = [call_source(entry_point, args) for args in generated]
    except ValueError as exc:  # an argument too long to write as source
        raise ValueError(f"{what}: a generated input cannot be written as a call ({exc})") from None
    values = runner.outputs(reference, entry_point, calls, preamble=DEFAULT_PREAMBLE, what=f"{what}: reference")
    return [TestCase.of_value(call, value) for call, value in zip(calls, values, strict=True)]


def load_problems(path: str | Path | None = None) -> list[Problem]:
    """Any supported file, its format told by its fields; None = our shipped hard problems."""
    path = Path(path) if path is not None else SHIPPED_PROBLEMS
    records = _read_records(path)
    if not records:
        raise ValueError(f"{path} holds no problems")
    first = records[0]
    if "plus_input" in first:
        return load_humaneval_plus(path)
    if "statement" in first:
        return load_own_format(path)
    if "visible_tests" in first and "prompt" in first:
        return load_reflexion_leetcode(path)
    if "signature" in first and "test" in first:
        return load_textgrad_leetcode(path)
    raise ValueError(f"{path}: unknown problem format (fields: {', '.join(sorted(first))}); "
                     "see domains/code/problems.py for the formats read")


def find_problem(problems: list[Problem], task_id: str) -> Problem:
    for problem in problems:
        if problem.id == task_id:
            return problem
    known = ", ".join(p.id for p in problems[:8]) + (" ..." if len(problems) > 8 else "")
    raise KeyError(f"no problem with id {task_id!r}; known ids: {known}")
