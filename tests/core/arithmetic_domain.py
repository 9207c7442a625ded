"""A small real domain for core tests: integer arithmetic expressions scored against a target number.

Its evaluator really computes (with Python's ast, no eval), so runner tests exercise a true evaluate/parse path
without depending on a heavy domain.
"""

from __future__ import annotations

import ast
import operator
from dataclasses import dataclass

from tgdomains.domain import ParseError, Start
from tgdomains.evaluation import Evaluation

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}


def _compute(node: ast.AST) -> int:
    if isinstance(node, ast.Expression):
        return _compute(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_compute(node.left), _compute(node.right))
    raise ValueError(f"unsupported syntax: {ast.dump(node)[:60]}")


@dataclass
class Target:
    id: str
    number: int


class ArithmeticDomain:
    """Find an expression of small integers with + - * whose value equals the target."""

    name = "arithmetic"
    objectives = {"score": "max", "length": "min"}

    def __init__(self) -> None:
        self.evaluated: list[str] = []

    def add_arguments(self, parser, *, batch=False):
        parser.add_argument("--number", type=int, default=24)

    def load(self, args):
        return Target(f"n{args.get('number', 24)}", int(args.get("number", 24)))

    def load_many(self, args):
        return [Target(f"n{n}", n) for n in args.get("numbers", [24])]

    def context(self, instance):
        return f"Write an arithmetic expression of integers with + - * equal to {instance.number}."

    def initial(self, instance, engine=None):
        return Start("1 + 1", "arithmetic expression", constraints=["use only integers, +, - and *"])

    def parse(self, raw_text, instance):
        text = raw_text.strip().strip("`").strip()
        try:
            _compute(ast.parse(text, mode="eval"))
        except (SyntaxError, ValueError) as exc:
            raise ParseError(f"not an integer arithmetic expression: {exc}") from None
        return text

    def evaluate(self, value, instance):
        self.evaluated.append(value)
        try:
            got = _compute(ast.parse(value, mode="eval"))
        except (SyntaxError, ValueError) as exc:
            return Evaluation.invalid(f"invalid expression: {exc}")
        gap = abs(got - instance.number)
        return Evaluation(score=-gap, metrics={"value": got, "gap": gap, "length": len(value)}, passed=gap == 0,
                          text=f"The expression equals {got}; the target is {instance.number} (off by {gap}).")

    def finalize(self, value, instance):
        return {"length": len(value)}

    def strategies(self):
        return {}

    def report(self, run_dir, out_dir):
        return []


def tagged(value: str, critique: str = "") -> str:
    return f"{critique}<IMPROVED_VARIABLE>{value}</IMPROVED_VARIABLE>"
