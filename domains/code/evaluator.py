"""Score a program on a problem's visible tests in the sandbox, and give the hidden-test verdict at the end.

`CodeEvaluator(problem, sandbox)`: score = fraction of visible tests passed; passed = every visible test passes. The
loss text lists failing tests first (input, expected, got or error). Hidden tests are only counted by
`hidden_verdict`: their inputs and outputs never appear in any text this module writes, and they run on a worker
that is stopped right after, so no later candidate runs where they have been. Whether a test passes is decided in
this process (sandbox.py), never in the sandbox. Parsing a reply into a program is here too (`parse_candidate`).

`Problem` is the domain's instance type (problems.py reads it from every supported file format).
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from domains.code.sandbox import ExecutionResult, Sandbox, TestCase, TestResult
from domains.code.worker import DEFAULT_PREAMBLE
from tgdomains.domain import ParseError
from tgdomains.evaluation import Evaluation
from tgdomains.parsing import fenced_blocks, tagged_blocks

SHOWN_FAILURES = 5  # failing tests listed in the loss text; the rest are counted
SHOWN_CHARS = 200  # inputs, expected values and outputs are cut to this many characters


class LazyTests(Sequence):
    """Tests made on first use (by a problem file's own code, in the sandbox: expected.py), then kept. Reads like
    the list it stands for: len, indexing, iteration, `+` with a list, == with a list."""

    def __init__(self, make: Callable[[], list[TestCase]]) -> None:
        self._make: Callable[[], list[TestCase]] | None = make
        self._tests: list[TestCase] = []

    def tests(self) -> list[TestCase]:
        if self._make is not None:
            self._tests, self._make = list(self._make()), None
        return self._tests

    def __len__(self) -> int:
        return len(self.tests())

    def __getitem__(self, index):  # type: ignore[override]
        return self.tests()[index]

    def __iter__(self):
        return iter(self.tests())

    def __add__(self, other: Sequence[TestCase]) -> list[TestCase]:
        return self.tests() + list(other)

    def __radd__(self, other: Sequence[TestCase]) -> list[TestCase]:
        return list(other) + self.tests()

    def __eq__(self, other: object) -> bool:
        return self.tests() == (other.tests() if isinstance(other, LazyTests) else other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"LazyTests({'not made yet' if self._make is not None else len(self._tests)})"


@dataclass
class Problem:
    """One task. `hidden_tests` never reach an LLM: only the evaluator's final verdict uses them."""

    id: str
    statement: str
    entry_point: str
    signature: str
    visible_tests: list[TestCase] | LazyTests
    hidden_tests: list[TestCase] | Callable[[], list[TestCase]] = field(default_factory=list, repr=False)
    atol: float = 0.0
    starting_code: str | None = None
    source: str = ""  # the file it came from
    # What a program sees without importing it: the typing names the task text says are imported, plus what the
    # problem itself declares (a HumanEval+ prompt's own imports). Nothing else is in scope.
    preamble: str = DEFAULT_PREAMBLE
    answer_rule: str | None = None  # None: equal to the expected value; else a rule of sandbox.ANSWER_RULES

    def hidden(self) -> list[TestCase]:
        """The hidden tests, computed on first use where the format makes them lazily."""
        if callable(self.hidden_tests):
            self.hidden_tests = self.hidden_tests()
        return self.hidden_tests


def _cut(text: str | None, limit: int = SHOWN_CHARS) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[: limit - 20] + f" ... ({len(text)} chars)"


def code_lines(code: str) -> int:
    """Lines that hold code: not blank, not only a comment (docstrings count: they are statements)."""
    try:
        tokens = tokenize.generate_tokens(io.StringIO(code).readline)
        return len({t.start[0] for t in tokens if t.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE,
                                                                  tokenize.INDENT, tokenize.DEDENT,
                                                                  tokenize.ENDMARKER)})
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return sum(1 for line in code.splitlines() if line.strip() and not line.strip().startswith("#"))


# ---------------------------------------------------------------- parsing a reply into code


def extract_code(reply: str) -> str:
    """The program in a reply: inside <IMPROVED_VARIABLE> tags and/or a ``` fence, or the bare text."""
    text = reply or ""
    tagged = tagged_blocks(text)
    if tagged:
        text = tagged[-1]
    fences = fenced_blocks(text)
    if fences:
        python = [body for lang, body in fences if lang in ("", "python", "py", "python3")]
        # Several blocks (e.g. the solution, then a usage example): the one that defines the most functions.
        text = max(python or [body for _, body in fences], key=lambda body: (body.count("def "), len(body)))
    else:
        text = _strip_prose(text)
    return text.strip("\n").rstrip() + "\n" if text.strip() else ""


_CODE_START = re.compile(r"^(def |class |import |from |@)")


def _strip_prose(text: str) -> str:
    """Bare replies often wrap the code in sentences: keep from the first code line to the last line that still
    leaves valid Python. Text that is not valid Python either way is returned as it was (the parse error says why)."""
    if _compiles(text):
        return text
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if _CODE_START.match(line)), None)
    if start is None:
        return text
    for end in range(len(lines), start, -1):
        candidate = "\n".join(lines[start:end])
        if _compiles(candidate):
            return candidate
    return text


def _compiles(text: str) -> bool:
    try:
        ast.parse(text)
        return True
    except SyntaxError:
        return False


def _parameters(function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    args = function.args
    return [a.arg for a in args.posonlyargs + args.args]


def expected_parameters(problem: Problem) -> list[str] | None:
    """Parameter names of the problem's signature, or None when the signature cannot be read."""
    signature = problem.signature.strip()
    if not signature.startswith("def "):
        signature = "def " + signature
    try:
        tree = ast.parse(signature.rstrip(":") + ":\n    pass\n")
    except SyntaxError:
        return None
    function = tree.body[0]
    return _parameters(function) if isinstance(function, ast.FunctionDef) else None


def check_signature(code: str, problem: Problem) -> str:
    """`code` when it compiles and defines the entry point with the problem's parameters; ParseError otherwise."""
    if not code.strip():
        raise ParseError("the reply holds no code")
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        raise ParseError(f"the code does not compile: SyntaxError: {exc.msg} (line {exc.lineno})") from None
    name = problem.entry_point
    found = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name]
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Solution"):
        for n in cls.body:
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name:
                n = ast.FunctionDef(name=n.name, args=ast.arguments(
                    posonlyargs=[], args=n.args.args[1:], vararg=None, kwonlyargs=[], kw_defaults=[], kwarg=None,
                    defaults=[]), body=[], decorator_list=[])  # drop `self`
                found.append(n)
    want = expected_parameters(problem)
    shown = f"{name}({', '.join(want)})" if want is not None else problem.signature
    if not found:
        raise ParseError(f"the code does not define the entry point `{name}`; keep the signature `{shown}`")
    got = _parameters(found[-1])
    if want is not None and got != want:
        raise ParseError(f"the code changes the signature to `{name}({', '.join(got)})`; keep `{shown}`")
    return code


def parse_candidate(reply: str, problem: Problem) -> str:
    """A reply's program without module-level test code, checked to keep the problem's entry point and parameters
    (ParseError says why not)."""
    return check_signature(strip_test_code(extract_code(reply), problem), problem)


_OUTPUT_CALLS = {"print", "pprint"}


def strip_test_code(code: str, problem: Problem) -> str:
    """`code` without the module-level test code small models append: `assert` statements, an
    `if __name__ == "__main__":` block, and bare calls of print, the entry point or a test_*/check* function. Such
    code runs at import, so a failing example assert meant "no test ran"; the program itself is kept verbatim."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code  # check_signature says what does not compile
    drop: set[int] = set()
    for node in tree.body:
        if _is_test_statement(node, problem.entry_point):
            drop.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    if not drop:
        return code
    kept = [line for i, line in enumerate(code.splitlines(), 1) if i not in drop]
    return "\n".join(kept).rstrip() + "\n"


def _is_test_statement(node: ast.stmt, entry_point: str) -> bool:
    if isinstance(node, ast.Assert):
        return True
    if isinstance(node, ast.If):  # if __name__ == "__main__":
        test = node.test
        return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__")
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        func = node.value.func
        name = func.id if isinstance(func, ast.Name) else ""
        return name in _OUTPUT_CALLS or name == entry_point or name.startswith(("test", "check"))
    return False


# ---------------------------------------------------------------- evaluation


@dataclass
class CodeEvaluator:
    """Scores programs for one problem on `sandbox` (the domain's, shared by all its evaluators and started once).

    `evaluate` runs the visible tests; `hidden_verdict` the hidden ones, on a worker that sees no other job."""

    problem: Problem
    sandbox: Sandbox

    def run_tests(self, code: str, tests: list[TestCase], sandbox: Sandbox | None = None, *,
                  retire_worker: bool = False) -> ExecutionResult:
        problem = self.problem
        return (sandbox or self.sandbox).run(code, problem.entry_point, tests, atol=problem.atol,
                                             retire_worker=retire_worker, preamble=problem.preamble,
                                             answer_rule=problem.answer_rule)

    def evaluate(self, code: str) -> Evaluation:
        """Run `code` on the visible tests in the sandbox (never raises for a bad program)."""
        problem = self.problem
        result = self.run_tests(code, problem.visible_tests)
        lines = code_lines(code)
        total = len(problem.visible_tests)
        details: dict[str, Any] = {"load_status": result.load_status, "load_error": result.load_error,
                                   "tests": [_shown(t) for t in result.tests], "sandbox_s": result.time_s}
        if not result.loaded:
            metrics = {"visible_pass_rate": 0.0, "visible_passed": 0, "visible_total": total, "code_lines": lines}
            return Evaluation(score=0.0, metrics=metrics, passed=False, valid=False,
                              text=_load_failure_text(result, problem), details=details)
        passed = result.passed
        rate = passed / total if total else 0.0
        metrics = {"visible_pass_rate": rate, "visible_passed": passed, "visible_total": total, "code_lines": lines,
                   "max_test_s": max((t.time_s for t in result.tests), default=0.0)}
        return Evaluation(score=rate, metrics=metrics, passed=total > 0 and passed == total, valid=True,
                          text=_loss_text(result, total), details=details)

    def hidden_verdict(self, code: str, *, hidden_sandbox: Sandbox | None = None) -> dict[str, Any]:
        """Counts on the hidden tests (never their contents), plus the visible ones, for the run record.

        The hidden tests run on `hidden_sandbox`, whose worker is stopped right after; by default on a sandbox of
        its own with the same limits, so the evaluator's sandbox never sees a hidden test."""
        problem = self.problem
        visible = self.run_tests(code, problem.visible_tests)
        verdict: dict[str, Any] = {"visible_passed": visible.passed, "visible_total": len(problem.visible_tests),
                                   "visible_pass_rate": visible.passed / len(problem.visible_tests)
                                   if problem.visible_tests else None}
        hidden = problem.hidden()
        if not hidden:
            verdict.update(hidden_passed=0, hidden_total=0, hidden_pass_rate=None,
                           hidden_note="this problem file has no hidden tests")
            return verdict
        if hidden_sandbox is None:
            with Sandbox(self.sandbox.limits, use_bubblewrap=self.sandbox.use_bubblewrap) as private:
                result = self.run_tests(code, hidden, private, retire_worker=True)
        else:
            result = self.run_tests(code, hidden, hidden_sandbox, retire_worker=True)
        verdict.update(hidden_passed=result.passed, hidden_total=len(hidden),
                       hidden_pass_rate=result.passed / len(hidden),
                       hidden_statuses=dict(Counter(t.status for t in result.tests)) if result.loaded
                       else {result.load_status: len(hidden)})
        return verdict


def _shown(test: TestResult) -> dict[str, Any]:
    return {"status": test.status, "call": _cut(test.call), "expected": _cut(test.expected), "got": _cut(test.got),
            "error": test.error, "traceback": test.traceback, "time_s": test.time_s}


def _load_failure_text(result: ExecutionResult, problem: Problem) -> str:
    status = result.load_status
    if status == "syntax-error":
        return f"The code does not compile: {result.load_error}. No test ran."
    if status == "missing-entry-point":
        return f"The code runs but defines no function `{problem.entry_point}`. No test ran."
    if status == "timeout":
        return f"Running the module's top-level code did not finish ({result.load_error}). No test ran."
    if status == "memory-exceeded":
        return f"The module's top-level code ran out of memory ({result.load_error}). No test ran."
    if status == "sandbox-error":
        return f"The program could not be run: {result.load_error}."
    return f"The module's top-level code raised {result.load_error}. No test ran."


def _describe(test: TestResult) -> str:
    head = f"{_cut(test.call)} expected {_cut(test.expected)}"
    if test.status == "failed":
        return f"{head}, got {_cut(test.got)}" if test.got is not None else f"{head}, but it {_cut(test.error)}"
    if test.status == "timeout":
        return f"{head}, but it timed out: {test.error}"
    if test.status == "memory-exceeded":
        return f"{head}, but it ran out of memory: {test.error}"
    where = f" at {test.traceback.splitlines()[-1]}" if test.traceback else ""
    return f"{head}, but it raised {_cut(test.error)}{where}"


def _loss_text(result: ExecutionResult, total: int) -> str:
    failing = [t for t in result.tests if t.status != "passed"]
    if not failing:
        return f"All {total} visible tests pass."
    lines = [f"{result.passed} of {total} visible tests pass. Failing:"]
    lines += [f"- {_describe(t)}" for t in failing[:SHOWN_FAILURES]]
    if len(failing) > SHOWN_FAILURES:
        lines.append(f"- ... and {len(failing) - SHOWN_FAILURES} more failing tests")
    passing = [t for t in result.tests if t.status == "passed"]
    if passing:
        lines.append("Passing: " + "; ".join(_cut(t.call, 80) for t in passing[:3])
                     + (f" and {len(passing) - 3} more" if len(passing) > 3 else ""))
    return "\n".join(lines)
