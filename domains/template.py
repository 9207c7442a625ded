"""The template for a new domain: copy this file, rename the classes, replace the evaluator. It is a real domain —
integer arithmetic expressions scored against a target number — and the core's tests run on it.

To add a domain:
1. Copy this file to ``domains/<name>/plugin.py`` (or anywhere importable) and write the five methods marked
   REQUIRED; everything else has a default in `Domain` (flags, batches, objectives, finalize, report ...).
   As the domain grows, move the instance type and the evaluator class to ``domains/<name>/evaluator.py``: that is
   where code, molecules and radiotherapy keep theirs (docs/architecture.md, "One shape for every domain").
2. Register the class in ``pyproject.toml`` and reinstall (``pip install -e .``):
       [project.entry-points."tgdomains.domains"]
       arithmetic = "domains.template:ArithmeticDomain"
3. Check the contract: ``tgdomains.checks.check_domain(ArithmeticDomain(), {"number": 24})`` (a test should).
4. Run it: ``tgdomains optimize arithmetic --number 24 --strategy chain`` (any strategy works the same way).

Candidate values are always text. `evaluate` must never raise for a bad candidate: it returns
`Evaluation.invalid(reason)`, and its `text` is what the LLM reads, so say concretely what is wrong.
"""

from __future__ import annotations

import argparse
import ast
import operator
from dataclasses import dataclass
from typing import Any

from tgdomains.domain import Domain, ParseError, Start
from tgdomains.evaluation import Evaluation
from tgdomains.parsing import strip_fence

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}


def compute(node: ast.AST) -> int:
    """The value of an expression of integers with + - * (Python's ast, never eval: candidates are untrusted)."""
    if isinstance(node, ast.Expression):
        return compute(node.body)
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](compute(node.left), compute(node.right))
    raise ValueError(f"unsupported syntax: {ast.dump(node)[:60]}")


@dataclass
class Target:
    """The instance type: picklable, with an ``id`` (runs, batches and resume need both)."""

    id: str
    number: int


@dataclass
class ArithmeticEvaluator:
    """Scores values for one instance. What the real tool keeps between evaluations (a worker process, a loaded
    model, a memo) belongs to this object or to the domain object, never to the module."""

    target: Target

    def evaluate(self, value: str) -> Evaluation:
        try:
            got = compute(ast.parse(value, mode="eval"))
        except (SyntaxError, ValueError) as exc:
            return Evaluation.invalid(f"invalid expression: {exc}")
        gap = abs(got - self.target.number)
        return Evaluation(score=-gap, metrics={"value": got, "gap": gap, "length": len(value)}, passed=gap == 0,
                          text=f"The expression equals {got}; the target is {self.target.number} (off by {gap}).")


class ArithmeticDomain(Domain):
    """Find an expression of small integers with + - * whose value equals the target."""

    name = "arithmetic"
    default_iterations = 10

    def add_arguments(self, parser: argparse.ArgumentParser, *, batch: bool = False) -> None:
        parser.add_argument("--number", type=int, default=24, help="the target number (default 24)")

    def load(self, args: dict[str, Any]) -> Target:  # REQUIRED: an instance from CLI flags (or the same keys)
        number = int(args.get("number", 24))
        return Target(f"n{number}", number)

    def instance_args(self, instance: Target) -> dict[str, Any]:  # what `load` rebuilds it from (run.json, resume)
        return {"number": instance.number}

    def context(self, instance: Target) -> str:  # REQUIRED: the task as every prompt shows it
        return f"Write an arithmetic expression of integers with + - * equal to {instance.number}."

    def initial(self, instance: Target, engine: Any = None) -> Start:  # REQUIRED: the first value and its rules
        return Start("1 + 1", "arithmetic expression", constraints=["use only integers, +, - and *"])

    def parse(self, raw_text: str, instance: Target) -> str:  # REQUIRED: a reply's value, canonical, or ParseError
        text = strip_fence(raw_text).strip()
        try:
            compute(ast.parse(text, mode="eval"))
        except (SyntaxError, ValueError) as exc:
            raise ParseError(f"not an integer arithmetic expression: {exc}") from None
        return text

    def evaluator(self, instance: Target) -> ArithmeticEvaluator:  # by convention: the instance's evaluator
        return ArithmeticEvaluator(instance)

    def evaluate(self, value: str, instance: Target) -> Evaluation:  # REQUIRED: the real tool's verdict
        return self.evaluator(instance).evaluate(value)

    def objectives(self, instance: Target) -> dict[str, str]:  # optional: a Pareto front beside the score
        return {"length": "min"}

    def finalize(self, value: str, instance: Target) -> dict[str, Any]:  # optional: verdicts for best.json
        return {"length": len(value)}
