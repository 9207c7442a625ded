"""Code domain: refine a Python program until it passes its tests, in a real sandbox, with hidden tests.

    from domains import code
    problems = code.load_problems()                 # the shipped hard set; or any supported file
    problem = code.find_problem(problems, "trapping-rain-water")
    domain = code.CodeDomain()                      # owns the sandbox (started on the first evaluation)
    ev = domain.evaluate(program_text, problem)     # sandboxed visible tests -> Evaluation
    result = code.optimize(problem, engine=engine, iterations=5)
    result.best_value, result.final["hidden_pass_rate"]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from domains.code.evaluator import CodeEvaluator, Problem, parse_candidate
from domains.code.problems import (
    find_problem,
    load_humaneval_plus,
    load_own_format,
    load_problems,
    load_reflexion_leetcode,
    load_textgrad_leetcode,
)
from domains.code.sandbox import Limits, Sandbox, TestCase

if TYPE_CHECKING:
    from tgdomains.engines.base import Engine
    from tgdomains.run import RunResult

__all__ = ["Problem", "TestCase", "Sandbox", "Limits", "load_problems", "load_textgrad_leetcode",
           "load_reflexion_leetcode", "load_humaneval_plus", "load_own_format", "find_problem", "CodeEvaluator",
           "parse_candidate", "optimize", "CodeDomain"]


def optimize(problem: Problem, *, engine: Engine | None = None, strategy: str | None = None,
             **settings: Any) -> RunResult:
    """Optimize a program for `problem` with any strategy; `settings` go to `tgdomains.run.optimize` (run_dir,
    iterations (default 5), budgets, the strategy's settings, progress ...).

    The result's `final` holds the hidden-test verdict (hidden_pass_rate, hidden_passed, hidden_total).
    """
    from domains.code.plugin import CodeDomain
    from tgdomains.run import optimize as run

    return run(CodeDomain(), problem, engine=engine, strategy=strategy, **settings)


def __getattr__(name: str) -> Any:
    if name == "CodeDomain":
        from domains.code.plugin import CodeDomain

        return CodeDomain
    raise AttributeError(name)
