"""TGD: Textual Gradient Descent. Asks an LLM for a better value from the feedback a variable received.

What the reference gets wrong and this gets right: momentum really shows the last k values with their scores and
feedback (as a compact table); a malformed reply gets one repair request and, failing that, the variable keeps its
last good value — `step()` never raises. Two replies are never accepted as a new value:

- a *repeat* (the current value, or one of `avoid`: values already evaluated in the run) is re-asked with the
  repeat named, at a temperature above 0 with a seed derived from the step's, so no evaluation is spent on it
  (and a copy of such a value pasted into the feedback is replaced by a note before the optimizer reads it);
- a reply *cut off* at the token limit (the engine's finish reason "length") is never trimmed into a value: the
  re-ask says where it was cut and asks for a shorter one.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tgdomains import prompts
from tgdomains.domain import ParseError
from tgdomains.parsing import extract_tagged, replace_fenced, text_before_tags
from tgdomains.seeds import retry_seed
from tgdomains.variable import Variable

if TYPE_CHECKING:
    from tgdomains.engines.base import Engine, ReplyFormat

_REPEAT_TEMPERATURES = (0.7, 1.0)  # one re-ask per entry when a proposal repeats a value already seen
_CUT_TAIL = 200  # characters of a cut-off reply quoted back: enough to say where it stopped, not the whole reply


def retry_temperature(temperature: float, retries: int) -> float:
    """The sampling temperature of the `retries`-th retry of a request (1 = the first): 0.7, then 1.0 from the
    second on, or `temperature` when that is higher. A retry at temperature 0 would get the same reply again."""
    return max(temperature, _REPEAT_TEMPERATURES[min(retries, len(_REPEAT_TEMPERATURES)) - 1])


@dataclass(frozen=True)
class Attempt:
    """One past value with what it scored and the feedback it got: momentum's memory."""

    value: str
    score: float | None
    feedback: str


@dataclass
class StepReport:
    """What happened to one variable in one step."""

    status: str = "unchanged"  # "updated", "repaired" (needed the repair request), "failed" (kept the old value)
    problem: str = ""  # why a reply was unusable
    feedback: str = ""  # the feedback the step used (in one-call mode: the LLM's own critique)
    replies: list[str] = field(default_factory=list)
    repeats: list[str] = field(default_factory=list)  # what each re-asked proposal repeated ("step #3 ...")


class CutOff(ParseError):
    """The reply was cut off at the token limit inside its value: unusable, and not to be trimmed into one.
    `note` is what the re-ask appends to the request (where the reply stopped, and to be shorter)."""

    note: str = ""


class TGD:
    """Textual Gradient Descent over `params`.

    constraints: plain-language rules every new value must keep ("keep the signature").
    examples:    in-context examples shown to the optimizer.
    momentum:    how many past attempts (value, score, feedback) the prompt shows.
    validate:    maps a raw extracted value to the canonical one, or raises ParseError (a domain's `parse`).
    one_call:    feedback and new value in one LLM call from the evaluation text (no backward needed).
    reply_format: the reply's grammar (tgdomains.grammar.reply_format), sent with every step and repair request;
                 engines that constrain decoding (the local one) then never sample a reply the parser rejects.
    avoid:       values already evaluated (canonical, as `validate` returns them) -> how to name them in a re-ask
                 ("step #3 (score -0.041): ..."); a proposal equal to one of them, or to the current value, is
                 re-asked at most len(_REPEAT_TEMPERATURES) times and otherwise kept unchanged.
    """

    def __init__(self, params: Iterable[Variable], engine: Engine, *, constraints: list[str] | None = None,
                 examples: list[str] | None = None, momentum: int = 0, context: str = "",
                 validate: Callable[[str], str] | None = None, one_call: bool = False, temperature: float = 0.0,
                 max_tokens: int | None = None, seed: int | None = None,
                 reply_format: ReplyFormat | None = None, avoid: Mapping[str, str] | None = None) -> None:
        self.params = list(params)
        self.engine = engine
        self.constraints = list(constraints or [])
        self.examples = list(examples or [])
        self.momentum = momentum
        self.context = context
        self.validate = validate
        self.one_call = one_call
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.seed = seed
        self.reply_format = reply_format
        self.avoid = dict(avoid or {})
        self.memory: dict[int, deque[Attempt]] = {}
        self.reports: dict[int, StepReport] = {}

    def zero_grad(self) -> None:
        for p in self.params:
            p.gradients = []

    def remember(self, param: Variable, attempt: Attempt) -> None:
        """Add a past attempt (strategies rebuild momentum from the run's steps this way)."""
        self.memory.setdefault(id(param), deque(maxlen=max(self.momentum, 0))).append(attempt)

    def report(self, param: Variable) -> StepReport:
        return self.reports.get(id(param), StepReport())

    def step(self, score: float | None = None, evaluation_text: str | None = None) -> None:
        """Update every param that requires grad. `score`: what the current values earned (for momentum);
        `evaluation_text`: the loss text, used directly in one-call mode."""
        for p in self.params:
            if p.requires_grad:
                self.reports[id(p)] = self._step_one(p, score, evaluation_text)

    # -- one variable ---------------------------------------------------------------------------------------

    def _sections(self, p: Variable) -> dict[str, str]:
        past = self.memory.get(id(p), ()) if self.momentum > 0 else ()
        momentum = prompts.attempts_section([(a.score, a.value, a.feedback) for a in past], p.value)
        examples = prompts.bullet_section("Examples of good values", self.examples)
        constraints = prompts.constraints_section(self.constraints)
        return {"momentum": momentum, "examples": examples, "constraints": constraints,
                "context": prompts.task_section(self.context), "role": p.role_description, "value": p.value}

    def _step_one(self, p: Variable, score: float | None, evaluation_text: str | None) -> StepReport:
        report = StepReport()
        sections = self._sections(p)
        if self.one_call:
            messages = prompts.ONE_CALL_STEP.messages(evaluation=evaluation_text or p.feedback(), **sections)
        else:
            report.feedback = p.feedback() or "(no feedback)"
            messages = prompts.TGD_STEP.messages(feedback=self._without_copies(report.feedback, p.value), **sections)
        old_value = p.value
        new_value = None
        try:
            try:
                new_value = self._ask(messages, report)
                report.status = "updated"
            except CutOff as cut:  # never pasted back: the model would copy it and be cut at the same place
                report.problem = str(cut)
                try:
                    new_value = self._ask(prompts.re_ask(messages, cut.note), report)
                    report.status = "repaired"
                except ParseError as second:
                    report.status, report.problem = "failed", f"{cut}; after asking for a shorter reply: {second}"
            except ParseError as first:
                report.problem = str(first)
                repair = prompts.REPAIR.messages(
                    problem=str(first), reply=report.replies[-1][-4000:] if report.replies else "",
                    constraints=sections["constraints"] and "\n" + sections["constraints"])
                try:
                    new_value = self._ask(repair, report)
                    report.status = "repaired"
                except ParseError as second:
                    report.status, report.problem = "failed", f"{first}; after repair: {second}"
            if new_value is not None:
                def fresh() -> list[dict]:  # built only when a step's re-asks get that far
                    shown = out_of_view(evaluation_text or report.feedback or "(none)", old_value)
                    return prompts.FRESH_VALUE.messages(evaluation=shown, **sections)
                new_value = self._unless_repeated(new_value, old_value, messages, fresh, report)
        except Exception as exc:  # an engine that is down must not lose the run: keep the value, say why
            report.status, report.problem = "failed", f"engine error: {type(exc).__name__}: {exc}"
        if self.one_call and report.replies:
            report.feedback = text_before_tags(report.replies[0]) or "(no critique)"
        self.remember(p, Attempt(old_value, score, report.feedback))
        if new_value is not None:
            p.value = new_value
        return report

    def _without_copies(self, feedback: str, current: str) -> str:
        """The feedback as the optimizer reads it: a fenced block that is a copy of the current value or of one
        already evaluated is replaced by a note naming it. A small critic often writes "here is the updated code"
        and pastes the value back unchanged; the optimizer then copies that block, and re-asks did not break it
        (38 of 39 code re-asks with such a block repeated the value again)."""
        def note(block: str) -> str | None:
            try:
                value = self._validate(block) if self.validate is not None else block.strip()
            except ParseError:
                return None
            which = self._name(value, current)
            return None if which is None else prompts.COPY_OMITTED_NOTE.format(which=which)
        return replace_fenced(feedback, note)

    def _name(self, value: str, current: str) -> str | None:
        """How a re-ask names a repeat of `value`, or None when it is new. The current value is named with its
        evaluation when it has one (it leads with what fails, so the model sees why a copy is useless)."""
        if value == current:
            return "the current value" + (f", {self.avoid[value]}" if value in self.avoid else "")
        return self.avoid.get(value)

    def _unless_repeated(self, value: str, old_value: str, messages: list[dict],
                         fresh: Callable[[], list[dict]], report: StepReport) -> str:
        """`value`, or a re-asked one when it repeats the current value or one already evaluated. Each re-ask is one
        more LLM call (metered like any other) at a temperature above 0 with a seed derived from the step's, so a
        replayed run asks exactly the same. The first re-asks are the request with the repeat named; the last is
        `fresh()` (a new value from the task and the evaluation, the repeated value out of view): on code, 27 of 42
        named re-asks gave the same program back (bench/quality/copies.py). A repeat that survives every re-ask
        leaves the value unchanged."""
        unusable = ""  # the last re-ask's problem when its reply was unusable (the next one is still asked)
        for attempt in range(1, len(_REPEAT_TEMPERATURES) + 1):
            which = self._name(value, old_value)
            if which is None:
                break
            if not unusable:
                report.repeats.append(which)
            last = attempt == len(_REPEAT_TEMPERATURES)
            asked = fresh() if last else prompts.re_ask(messages, prompts.REPEATED_NOTE.format(which=which))
            # the fresh request differs from every earlier one, so the first retry temperature is enough for it:
            # at 1.0 the 1.5B model broke the reply format (a fence left open before the closing tag)
            temperature = retry_temperature(self.temperature, 1 if last else attempt)
            seed = None if self.seed is None else retry_seed(self.seed, attempt)
            try:
                value = self._ask(asked, report, temperature=temperature, seed=seed)
                unusable = ""
            except ParseError as exc:
                unusable = f"re-asked after a repeat of {which}; the new reply was unusable: {exc}"
        if self._name(value, old_value) is not None:
            if unusable:  # the last reply was unusable: a failed step, not a repeat
                report.status = "failed"
            report.problem = unusable or (f"still a repeat after {len(_REPEAT_TEMPERATURES)} re-asks "
                                          f"({'; '.join(report.repeats)})")
            return old_value
        if report.repeats:
            report.problem = report.problem or f"re-asked {len(report.repeats)}x: repeated {'; '.join(report.repeats)}"
        return value

    def _ask(self, messages: list[dict], report: StepReport, *, temperature: float | None = None,
             seed: int | None = None) -> str:
        """One LLM call and its parse; ParseError (never anything else) when the reply is unusable."""
        options = {"reply_format": self.reply_format} if self.reply_format is not None else {}
        completion = self.engine.generate(messages, max_tokens=self.max_tokens, seed=self.seed if seed is None else seed,
                                          temperature=self.temperature if temperature is None else temperature,
                                          **options)
        reply = completion.text
        report.replies.append(reply if isinstance(reply, str) else str(reply))
        try:
            value = extract_tagged(report.replies[-1])
        except ParseError as untagged:
            if getattr(completion, "finish_reason", None) == "length":  # never trim a cut-off reply into a value
                raise cut_off(report.replies[-1], self.max_tokens) from None
            # Small models often forget the tags but still write a usable value (a fenced block, "SMILES: ...",
            # bare JSON). The domain's parser is strict, so letting it read the whole reply is safe; a reply cut
            # off inside its block stays unusable.
            if self.validate is None or "not closed" in str(untagged):
                raise
            try:
                value = self._validate(report.replies[-1])
            except ParseError:
                raise untagged from None
            report.problem = "the reply had no tags; the domain's parser read the value from the whole reply"
            return value
        return self._validate(value) if self.validate is not None else value

    def _validate(self, value: str) -> str:
        try:
            return self.validate(value)
        except ParseError:
            raise
        except Exception as exc:  # a validator bug is still an unusable reply, not a crash
            raise ParseError(f"the value could not be checked: {type(exc).__name__}: {exc}") from exc


def out_of_view(text: str, value: str) -> str:
    """`text` with every whole-word occurrence of `value` replaced by "(that value)": a molecule's evaluation opens
    with its SMILES, and shown it, the model handed the same molecule back (DRD2 from acetamide)."""
    if not value.strip():
        return text
    return re.sub(rf"(?<!\S){re.escape(value.strip())}(?!\S)", "(that value)", text)


def cut_off(reply: str, max_tokens: int | None) -> CutOff:
    """The error for a reply cut at the token limit, carrying the re-ask note (its tail, not the whole reply)."""
    limit = f"{max_tokens} tokens" if max_tokens else "the engine's limit"
    tail = reply[-_CUT_TAIL:].strip() or "(nothing)"
    error = CutOff(f"the reply was cut off at the token limit ({limit}) before its value was complete")
    error.note = prompts.CUT_OFF_NOTE.format(limit=limit, tail=f"...{tail}")
    return error
