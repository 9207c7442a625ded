"""Baselines on the same LLM-call budget as a TextGrad run: zero-shot sampling and Reflexion-style retries.

A TextGrad run with `iterations` updates spends 1 call for the first program and 2 per update (feedback, step),
plus one per repair request when a reply is unusable; pass that count (`RunResult.usage["llm_calls"]`, at least
`1 + 2 * iterations`) as `llm_calls` to give a baseline the same budget. Each stops early when the visible tests
pass; each ends with the hidden-test verdict of its best program, like the runner's `finalize`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from domains.code import evaluator
from domains.code.plugin import CodeDomain, zero_shot_solution
from domains.code.problems import Problem
from tgdomains.evaluation import Evaluation

if TYPE_CHECKING:
    from tgdomains.engines.base import Engine


@dataclass
class BaselineResult:
    method: str
    best_value: str
    best_evaluation: Evaluation
    final: dict[str, Any]
    llm_calls: int
    attempts: list[dict[str, Any]] = field(default_factory=list)  # value and evaluation of each program tried

    @property
    def passed(self) -> bool:
        return self.best_evaluation.passed


def _result(method: str, attempts: list[tuple[str, Evaluation]], calls: int, problem: Problem) -> BaselineResult:
    best_value, best = attempts[0]
    for value, ev in attempts[1:]:
        if ev.better_than(best):
            best_value, best = value, ev
    return BaselineResult(method, best_value, best, evaluator.hidden_verdict(best_value, problem), calls,
                          [{"value": v, "evaluation": e.to_dict()} for v, e in attempts])


def zero_shot(problem: Problem, *, engine: Engine, llm_calls: int = 1, temperature: float = 0.8,
              seed: int = 0) -> BaselineResult:
    """Up to `llm_calls` independent zero-shot programs (the first at temperature 0); the best on visible tests."""
    domain = CodeDomain()
    attempts = []
    for i in range(llm_calls):
        value = zero_shot_solution(domain, problem, engine, temperature=0.0 if i == 0 else temperature, seed=seed + i)
        attempts.append((value, evaluator.evaluate(value, problem)))
        if attempts[-1][1].passed:
            break
    return _result("zero-shot", attempts, len(attempts), problem)


def reflexion(problem: Problem, *, engine: Engine, llm_calls: int = 11, seed: int = 0) -> BaselineResult:
    """Zero-shot, then repeatedly: reflect on the failing visible tests and write a corrected program (1 call each)."""
    from tgdomains import prompts

    domain = CodeDomain()
    context = domain.context(problem)
    value = zero_shot_solution(domain, problem, engine, seed=seed)
    attempts = [(value, evaluator.evaluate(value, problem))]
    calls = 1
    while calls < llm_calls and not attempts[-1][1].passed:
        last_value, last = attempts[-1]
        reply = engine.generate(prompts.reflect_messages(context, last_value, last.text), seed=seed + calls).text
        calls += 1
        try:
            value = evaluator.parse_candidate(reply, problem)
        except Exception as exc:  # an unusable reply is an attempt that failed: reflect on that next
            attempts.append((last_value, Evaluation(score=last.score, metrics=last.metrics, passed=False,
                                                    valid=last.valid, text=f"{last.text}\n(Your last reply was "
                                                    f"unusable: {exc})", details=last.details)))
            continue
        attempts.append((value, evaluator.evaluate(value, problem)))
    return _result("reflexion", attempts, calls, problem)
