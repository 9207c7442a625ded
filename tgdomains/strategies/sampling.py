"""Plain-LLM baselines as strategies: zero-shot / best-of-N sampling, and Reflexion-style retries.

They use the same prompts as the rest of the core (`prompts.solve_messages`, `prompts.reflect_messages`), the
domain's `parse`, and the run's budgets, so "same budget" comparisons with TGD are one flag apart:
`tgdomains optimize DOMAIN --strategy zero-shot --llm-call-budget 11`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from tgdomains import prompts
from tgdomains.domain import ParseError
from tgdomains.engines.budget import BudgetExceeded
from tgdomains.optimizer import extract_tagged
from tgdomains.records import StepStatus
from tgdomains.strategies import Proposal, Strategy

if TYPE_CHECKING:
    from tgdomains.records import Step
    from tgdomains.run import Meter, Run


def value_from_reply(reply: str, parse: Callable[[str], str]) -> str:
    """The tagged value of a reply, canonicalised by the domain's parser; an untagged reply is offered to the parser
    whole (as TGD does), a reply cut off inside its block is not."""
    try:
        value = extract_tagged(reply)
    except ParseError as untagged:
        if "not closed" in str(untagged):
            raise
        try:
            return parse(reply)
        except ParseError:
            raise untagged from None
    return parse(value)


def ask_for_value(run: Run, messages: list[dict[str, str]], parent: Step, *, meter: Meter, seed: int,
                  temperature: float, feedback: str = "") -> Proposal:
    """One LLM call whose reply is parsed by the domain; an unusable reply keeps the parent's value (failed)."""
    try:
        reply = meter.generate(messages, temperature=temperature, max_tokens=run.config.max_tokens, seed=seed).text
    except BudgetExceeded:
        return Proposal(parent.value, parent.id, meter=meter)  # meter.refused is set: not a step
    except Exception as exc:  # the endpoint is down: a failed step, the run goes on
        return Proposal(parent.value, parent.id, feedback=feedback, status=StepStatus.FAILED,
                        problem=f"engine error: {type(exc).__name__}: {exc}", meter=meter)
    try:
        value = value_from_reply(reply, run.parse)
    except ParseError as exc:
        return Proposal(parent.value, parent.id, feedback=feedback, status=StepStatus.FAILED, problem=str(exc),
                        meter=meter)
    except Exception as exc:  # a parser bug is still an unusable reply, not a crash
        return Proposal(parent.value, parent.id, feedback=feedback, status=StepStatus.FAILED,
                        problem=f"the value could not be checked: {type(exc).__name__}: {exc}", meter=meter)
    return Proposal(value, parent.id, feedback=feedback, meter=meter)


@dataclass
class ZeroShot(Strategy):
    """Independent solutions from the task alone, `samples` per iteration (children of the initial step)."""

    name: ClassVar[str] = "zero-shot"
    samples: int = 1
    sample_temperature: float = 0.8  # independent samples need a temperature above 0 to differ

    def check(self) -> ZeroShot:
        if self.samples < 1:
            raise ValueError(f"samples must be >= 1, got {self.samples}")
        return self

    def width(self) -> int:
        return self.samples

    def propose(self, run: Run, iteration: int, room: int | None) -> list[Proposal]:
        s = run.setup
        messages = prompts.solve_messages(s.context, s.role, s.constraints)
        n = self.samples if room is None else max(0, min(self.samples, room))
        base = run.config.seed * 100_003 + iteration * 1_000
        return run.map(lambda j: ask_for_value(run, messages, run.steps[0], meter=run.meter(), seed=base + j,
                                               temperature=self.sample_temperature), list(range(n)))


@dataclass
class BestOfN(ZeroShot):
    """Zero-shot sampling, four samples per iteration."""

    name: ClassVar[str] = "best-of-n"
    samples: int = 4


@dataclass
class Reflexion(Strategy):
    """Reflect on the latest candidate's evaluation and write a corrected value: one LLM call per iteration.
    An unusable reply is reflected on next time (with the reason), as Reflexion retries."""

    name: ClassVar[str] = "reflexion"

    def propose(self, run: Run, iteration: int, room: int | None) -> list[Proposal]:
        last = run.steps[-1]
        text = last.evaluation.text
        if last.status is StepStatus.FAILED and last.problem:
            text = f"{text}\n(Your last reply was unusable: {last.problem})"
        messages = prompts.reflect_messages(run.setup.context, last.value, text)
        return [ask_for_value(run, messages, last, meter=run.meter(), seed=run.config.seed * 100_003 + iteration,
                              temperature=run.config.temperature, feedback="(reflexion)")]
