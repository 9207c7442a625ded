"""What a strategy sees of a run: its settings (`RunConfig`), what every proposal shares (`Setup`) and a read-only
`RunView` of the run so far. The run loop (`tgdomains.run`) builds the view; strategies import this module, never
the loop, so the two cannot grow into each other.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from tgdomains import pareto, seeds
from tgdomains.engines.budget import Meter
from tgdomains.records import Step

if TYPE_CHECKING:
    from tgdomains.domain import Domain
    from tgdomains.engines.base import ReplyFormat

T = TypeVar("T")


@dataclass(frozen=True)
class RunConfig:
    """What every strategy shares: the budgets and the sampling settings. Stored in run.json."""

    iterations: int | None = None  # strategy iterations at most (None: the domain's default_iterations)
    seed: int = 0
    temperature: float = 0.0
    max_tokens: int | None = None
    token_budget: int | None = None
    cost_budget: float | None = None
    time_budget_s: float | None = None
    evaluation_budget: int | None = None  # distinct candidates evaluated, the initial one included
    llm_call_budget: int | None = None  # every request counts: feedback, steps, repairs (cache hits too)

    def check(self) -> RunConfig:
        for name in ("iterations", "token_budget", "evaluation_budget", "llm_call_budget"):
            value = getattr(self, name)
            if value is not None and value < (1 if name == "evaluation_budget" else 0):
                raise ValueError(f"{name} must be {'>= 1' if name == 'evaluation_budget' else '>= 0'}, got {value}")
        for name in ("cost_budget", "time_budget_s", "temperature"):
            value = getattr(self, name)
            if value is not None and not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        return self


@dataclass(frozen=True)
class Setup:
    """What every proposal of a run shares: from the domain on a fresh run, from run.json on resume."""

    role: str
    constraints: list[str]
    examples: list[str]
    context: str


class RunView:
    """A strategy's read-only window on one run: the domain and instance, `config`, `setup`, the steps so far, the
    reply format of the run's optimizer requests, a fresh `meter()` per proposal, `map` for concurrent calls and
    `seed`/`sampler_seed`, the only seeds a strategy uses (so a resumed run proposes what it would have)."""

    def __init__(self, domain: Domain, instance: Any, config: RunConfig, setup: Setup, steps: list[Step],
                 meter: Callable[[], Meter], reply_format: ReplyFormat) -> None:
        self.domain, self.instance, self.config, self.setup = domain, instance, config, setup
        self.reply_format = reply_format
        self._steps, self._meter = steps, meter

    @property
    def steps(self) -> tuple[Step, ...]:
        """Every step so far, in order (step i has id i)."""
        return tuple(self._steps)

    @property
    def candidates(self) -> list[Step]:
        """The evaluated steps: one per distinct value."""
        return candidates_of(self._steps)

    @property
    def best(self) -> Step:
        return best_of(self._steps)

    @property
    def objectives(self) -> dict[str, str]:
        """The domain's objectives for this instance, plus the score (what population search keeps a front of)."""
        return pareto.with_score(self.domain.objectives(self.instance))

    def meter(self) -> Meter:
        """A fresh metered engine for one proposal: its calls become that proposal's step usage."""
        return self._meter()

    def parse(self, raw: str) -> str:
        return self.domain.parse(raw, self.instance)

    def seed(self, iteration: int, slot: int | None = None) -> int:
        """The seed of an LLM request at `iteration` (`slot`: which of several; see `tgdomains.seeds`)."""
        return seeds.request_seed(self.config.seed, iteration, slot)

    def sampler_seed(self, iteration: int) -> int:
        """The seed of a strategy's own random draws at `iteration` (parents, a GA's operators, a TPE sampler)."""
        return seeds.sampler_seed(self.config.seed, iteration)

    def rng(self, iteration: int) -> random.Random:
        return random.Random(self.sampler_seed(iteration))

    @staticmethod
    def map(fn: Callable[[Any], T], items: list[Any], workers: int | None = None) -> list[T]:
        """fn over items in threads (LLM calls overlap); results in order. One item runs inline."""
        if len(items) <= 1:
            return [fn(item) for item in items]
        with ThreadPoolExecutor(max_workers=workers or len(items), thread_name_prefix="tg-llm") as pool:
            return list(pool.map(fn, items))


def candidates_of(steps: list[Step]) -> list[Step]:
    """The evaluated steps of a run: one per distinct value."""
    return [s for s in steps if s.evaluated]


def best_of(steps: list[Step]) -> Step:
    """The run's best step: passed first, then score, ties to the earliest (`Step.rank`)."""
    return max(candidates_of(steps) or steps, key=Step.rank)
