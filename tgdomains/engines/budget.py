"""RunEngine: the engine one run talks to — its own usage meter, and budgets checked before every call."""

from __future__ import annotations

from typing import Any

from tgdomains.engines.base import BaseEngine, Completion, Engine, Request, Usage


class BudgetExceeded(RuntimeError):
    """The run's token or cost budget is spent; no further call is made."""


class RunEngine(BaseEngine):
    """Wraps a (possibly shared) engine so a run counts only its own calls and stops at its budget.

    The check happens before each call, so a budget is overshot by at most the one call that crossed it.
    """

    def __init__(self, engine: Engine, token_budget: int | None = None, cost_budget: float | None = None,
                 call_budget: int | None = None) -> None:
        super().__init__()
        self.engine = engine
        self.model = engine.model
        self.token_budget = token_budget
        self.cost_budget = cost_budget
        self.call_budget = call_budget

    def restore(self, spent: dict[str, float]) -> None:
        """Count what a resumed run already spent (its steps' usage), so its budgets do not start again."""
        u = self.usage
        u.calls, u.cache_hits = int(spent["llm_calls"]), int(spent["cache_hits"])
        u.prompt_tokens, u.completion_tokens = int(spent["prompt_tokens"]), int(spent["completion_tokens"])
        u.cost_usd = float(spent["cost_usd"])

    def exhausted(self) -> str | None:
        u = self.usage
        if self.token_budget is not None and u.prompt_tokens + u.completion_tokens >= self.token_budget:
            return f"token budget spent ({u.prompt_tokens + u.completion_tokens} >= {self.token_budget})"
        if self.call_budget is not None and u.calls + u.cache_hits >= self.call_budget:
            return f"LLM call budget spent ({u.calls + u.cache_hits} >= {self.call_budget})"
        if self.cost_budget is not None and u.cost_usd >= self.cost_budget:
            return f"cost budget spent (${u.cost_usd:.4f} >= ${self.cost_budget})"
        return None

    def _complete(self, request: Request) -> Completion:
        reason = self.exhausted()
        if reason:
            raise BudgetExceeded(reason)
        return self.engine.generate(request.chat(), **request.options())

    def cost(self, usage: Usage) -> float:
        return getattr(self.engine, "cost", lambda u: 0.0)(usage)

    def settings(self) -> dict[str, Any]:
        return getattr(self.engine, "settings", dict)()

    def describe(self) -> str:
        return getattr(self.engine, "describe", lambda: repr(self.engine))()
