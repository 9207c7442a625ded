"""Plain-LLM baselines as strategies: zero-shot / best-of-N sampling, and Reflexion-style retries.

They use the same prompts as the rest of the core (`prompts.solve_messages`, `prompts.reflect_messages`), the
domain's `parse`, and the run's budgets, so "same budget" comparisons with TGD are one flag apart:
`tgdomains optimize DOMAIN --strategy zero-shot --llm-call-budget 11`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import takewhile
from typing import TYPE_CHECKING, ClassVar

from tgdomains import prompts
from tgdomains.domain import ParseError
from tgdomains.engines.budget import BudgetExceeded
from tgdomains.evaluation import format_score
from tgdomains.optimizer import _REPEAT_TEMPERATURES, CutOff, cut_off, retry_temperature
from tgdomains.parsing import extract_tagged
from tgdomains.records import StepStatus
from tgdomains.seeds import retry_seed
from tgdomains.strategies.base import Proposal, Strategy

if TYPE_CHECKING:
    from tgdomains.engines.base import ReplyFormat
    from tgdomains.engines.budget import Meter
    from tgdomains.records import Step
    from tgdomains.runview import RunView

_EVAL_GIST = 160  # characters of an evaluation shown where a step is named (a repeat, a past attempt)
_SAMPLE_TEMPERATURE = 0.8  # independent samples need a temperature above 0 to differ


def value_from_reply(reply: str, parse: Callable[[str], str], finish_reason: str | None = None,
                     max_tokens: int | None = None) -> str:
    """The tagged value of a reply, canonicalised by the domain's parser; an untagged reply is offered to the parser
    whole (as TGD does), a reply cut off inside its block (or at the token limit, `finish_reason` "length") is not:
    it raises `CutOff`."""
    try:
        value = extract_tagged(reply)
    except ParseError as untagged:
        if finish_reason == "length":
            raise cut_off(reply, max_tokens) from None
        if "not closed" in str(untagged):
            raise
        try:
            return parse(reply)
        except ParseError:
            raise untagged from None
    return parse(value)


def seen_values(run: RunView) -> dict[str, str]:
    """Every value the run evaluated, named as a re-ask names a repeat: its step, score and evaluation gist."""
    return {s.value: f"step #{s.id} (score {format_score(s.score)}: {gist_of(s)})" for s in run.candidates}


def gist_of(step: Step) -> str:
    return " ".join(step.evaluation.text.split())[:_EVAL_GIST] or "no evaluation text"


def ask_for_value(run: RunView, messages: list[dict[str, str]], parent: Step, *, meter: Meter, seed: int,
                  temperature: float, feedback: str = "", avoid: dict[str, str] | None = None,
                  reply_format: ReplyFormat | None = None) -> Proposal:
    """One LLM call whose reply is parsed by the domain; an unusable reply keeps the parent's value (failed).
    A reply cut off at the token limit is re-asked once for a shorter one; with `avoid` (values already evaluated),
    a repeat is re-asked as TGD does (temperature above 0, seeds derived from `seed`)."""
    problem, asked, cut_asked = "", messages, False
    tries = [(temperature, seed)] + [(retry_temperature(temperature, k), retry_seed(seed, k))
                                     for k in range(1, len(_REPEAT_TEMPERATURES) + 1)]
    value = None
    for temp, sd in tries:
        try:
            options = {"reply_format": reply_format} if reply_format is not None else {}
            completion = meter.generate(asked, temperature=temp, max_tokens=run.config.max_tokens, seed=sd,
                                        **options)
            value = value_from_reply(completion.text, run.parse, getattr(completion, "finish_reason", None),
                                     run.config.max_tokens)
        except BudgetExceeded:
            return Proposal(parent.value, parent.id, meter=meter)  # meter.refused is set: not a step
        except CutOff as cut:  # re-asked once for a shorter reply, never trimmed into a value
            if cut_asked:
                return _failed(parent, feedback, f"{problem}; again: {cut}", meter)
            cut_asked, problem, asked = True, str(cut), prompts.re_ask(messages, cut.note)
            continue
        except ParseError as exc:
            return _failed(parent, feedback, f"{problem}; {exc}" if problem else str(exc), meter)
        except Exception as exc:  # the endpoint is down, or a parser bug: a failed step, the run goes on
            return _failed(parent, feedback, f"{type(exc).__name__}: {exc}", meter)
        which = None if avoid is None else avoid.get(value)
        if which is None:
            return Proposal(value, parent.id, feedback=feedback, problem=problem, meter=meter)
        problem = f"{problem}; " if problem else ""
        problem += f"re-asked: repeated {which}"
        asked = prompts.re_ask(messages, prompts.REPEATED_NOTE.format(which=which))
    return Proposal(value if value is not None else parent.value, parent.id, feedback=feedback,
                    problem=f"{problem} (still a repeat after {len(tries) - 1} re-asks)", meter=meter)


def _failed(parent: Step, feedback: str, problem: str, meter: Meter) -> Proposal:
    return Proposal(parent.value, parent.id, feedback=feedback, status=StepStatus.FAILED, problem=problem, meter=meter)


@dataclass
class ZeroShot(Strategy):
    """Independent solutions from the task alone, `samples` per iteration (children of the initial step): best-of-N
    sampling, the baseline every other strategy must beat at equal LLM calls."""

    name: ClassVar[str] = "zero-shot"
    samples: int = field(default=1, metadata={"help": "samples per iteration", "min": 1})
    workers: int | None = field(default=None, metadata={"help": "threads for the samples (default: one each; 1 "
                                                                "makes a replay independent of timing)",
                                                        "recorded": False})

    def check(self) -> ZeroShot:
        if self.samples < 1:
            raise ValueError(f"samples must be >= 1, got {self.samples}")
        return self

    def width(self) -> int:
        return self.samples

    def propose(self, run: RunView, iteration: int, room: int | None) -> list[Proposal]:
        s = run.setup
        messages = prompts.solve_messages(s.context, s.role, s.constraints)
        n = self.samples if room is None else max(0, min(self.samples, room))
        return run.map(lambda j: ask_for_value(run, messages, run.steps[0], meter=run.meter(),
                                               seed=run.seed(iteration, j), temperature=_SAMPLE_TEMPERATURE),
                       list(range(n)), workers=self.workers)


@dataclass
class Reflexion(Strategy):
    """Reflect on the latest candidate's evaluation and write a corrected value: one LLM call per iteration.
    An unusable reply is reflected on next time (with the reason), as Reflexion retries. The reply has TGD's
    one-call shape (a critique, then the value), so it is decoded under the same reply grammar where the engine
    constrains decoding: unconstrained, Qwen2.5-Coder-1.5B wrote the reflection and never the value, 6 times of 6
    on prostate-2d (the cassette is bench/quality/README.md's "before")."""

    name: ClassVar[str] = "reflexion"

    def propose(self, run: RunView, iteration: int, room: int | None) -> list[Proposal]:
        last = run.steps[-1]
        text = last.evaluation.text
        temperature = run.config.temperature
        if last.status is StepStatus.FAILED and last.problem:
            text = f"{text}\n(Your last reply was unusable: {last.problem})"
            # Unusable replies in a row: sample above 0, or two failures whose texts alternate make a cycle of two
            # byte-identical requests (on DRD2 Reflexion spent 7 of 8 calls that way at temperature 0).
            failures = sum(1 for _ in takewhile(lambda s: s.status is StepStatus.FAILED, reversed(run.steps)))
            temperature = retry_temperature(temperature, failures)
        messages = prompts.reflect_messages(run.setup.context, last.value, text)
        return [ask_for_value(run, messages, last, meter=run.meter(), seed=run.seed(iteration),
                              temperature=temperature, feedback="(reflexion)", avoid=seen_values(run),
                              reply_format=run.reply_format)]
