"""RunEngine: the engine one run talks to — its own usage meter, and budgets checked before every call."""

from __future__ import annotations

import threading
from typing import Any

from tgdomains.engines.base import BaseEngine, Completion, Engine, Request, Usage


class BudgetExceeded(RuntimeError):
    """The run's token or cost budget is spent; no further call is made."""


class RunEngine(BaseEngine):
    """Wraps a (possibly shared) engine so a run counts only its own calls and stops at its budget.

    The check happens before each call, so a token or cost budget is overshot by at most the one call that crossed
    it. The call budget is never overshot, not even by concurrent calls: a call reserves its place before it is
    sent (best-of-4 sampled 4 at once and made 10 calls of a budget of 8 before).
    """

    def __init__(self, engine: Engine, token_budget: int | None = None, cost_budget: float | None = None,
                 call_budget: int | None = None) -> None:
        super().__init__()
        self.engine = engine
        self.model = engine.model
        self.token_budget = token_budget
        self.cost_budget = cost_budget
        self.call_budget = call_budget
        self._in_flight = 0  # calls sent and not yet counted in usage
        self._reserve = threading.Lock()

    def restore(self, spent: dict[str, float]) -> None:
        """Count what a resumed run already spent (its steps' usage), so its budgets do not start again."""
        u = self.usage
        u.calls, u.cache_hits = int(spent["llm_calls"]), int(spent["cache_hits"])
        u.prompt_tokens, u.completion_tokens = int(spent["prompt_tokens"]), int(spent["completion_tokens"])
        u.cost_usd = float(spent["cost_usd"])

    def exhausted(self, in_flight: int = 0) -> str | None:
        """Why no further call may be made, or None; `in_flight` calls already hold a place in the call budget."""
        u = self.usage
        if self.token_budget is not None and u.prompt_tokens + u.completion_tokens >= self.token_budget:
            return f"token budget spent ({u.prompt_tokens + u.completion_tokens} >= {self.token_budget})"
        if self.call_budget is not None and u.calls + u.cache_hits + in_flight >= self.call_budget:
            made = u.calls + u.cache_hits
            held = f"{made} made and {in_flight} in flight" if in_flight else f"{made}"
            return f"LLM call budget spent ({held} >= {self.call_budget})"
        if self.cost_budget is not None and u.cost_usd >= self.cost_budget:
            return f"cost budget spent (${u.cost_usd:.4f} >= ${self.cost_budget})"
        return None

    def generate(self, messages, *, temperature=0.0, max_tokens=None, seed=None, stop=None, reply_format=None):
        with self._reserve:
            reason = self.exhausted(self._in_flight)
            if reason:
                raise BudgetExceeded(reason)
            self._in_flight += 1
        try:  # the base class counts the call in usage before it returns; only then is the reservation released
            return super().generate(messages, temperature=temperature, max_tokens=max_tokens, seed=seed, stop=stop,
                                    reply_format=reply_format)
        finally:
            with self._reserve:
                self._in_flight -= 1

    def _complete(self, request: Request) -> Completion:
        return self.engine.generate(request.chat(), **request.options())

    def cost(self, usage: Usage) -> float:
        return getattr(self.engine, "cost", lambda u: 0.0)(usage)

    def settings(self) -> dict[str, Any]:
        return getattr(self.engine, "settings", dict)()

    def describe(self) -> str:
        return getattr(self.engine, "describe", lambda: repr(self.engine))()


class Meter(RunEngine):
    """One proposal's view of the run's engine: counts that proposal's calls, and whether a budget refused one."""

    refused = False

    def _complete(self, request: Request) -> Completion:
        try:
            return super()._complete(request)
        except BudgetExceeded:
            self.refused = True
            raise
