"""Sample, repair from the failing test, select by agreement: a code strategy that spends the model's calls where a
small model is strong (CodeT, S*, AlphaCode's clustering).

One proposal per iteration, decided from the recorded steps alone (so a killed run resumes exactly):

1. **inputs**: as soon as a candidate passes every visible test (and selection is on), one LLM call asks for test
   *inputs* (calls of the entry point, never expected values) from the task; the calls that parse as literal calls
   of the entry point are recorded in that step's feedback (the step repeats the passing program: nothing new is
   evaluated);
2. **repair**: the latest candidate, when it is a sample (or a repair still under `repairs` rounds) that failed a
   visible test concretely (a wrong value or an exception, not a timeout), gets one TGD step in one-call mode: the
   loss is its evaluation text (each failing call, the expected value, what came back or the exception with its
   line), no critic call. Once two repairs or more were made and none scored above its parent, repairs stop;
3. **sample**: otherwise an independent program from the task, the same request as the zero-shot strategy's.

The run does not end at the first visible pass: the passing programs are run on the generated inputs in the
domain's sandbox (the one every candidate runs in; the hidden tests never reach it), grouped by what they return,
and the run ends when the largest group has `agree` votes (a sample repeating a program votes for it) and more than
any other, or when a budget is spent. The run's result is the earliest program of the largest group; the agreement
it reached is recorded in best.json and the result's `final` under "selection", with or without hidden tests.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from tgdomains import prompts
from tgdomains.engines.budget import BudgetExceeded
from tgdomains.records import Step, StepStatus
from tgdomains.strategies.base import Proposal, Selection, Strategy
from tgdomains.strategies.sampling import _SAMPLE_TEMPERATURE, ask_for_value
from tgdomains.strategies.tgd import tgd_child

if TYPE_CHECKING:
    from domains.code.evaluator import Problem
    from tgdomains.runview import RunView

# What each kind of step's feedback begins with: how the strategy reads its own steps back on resume.
SAMPLE_NOTE = "(sample)"
REPAIR_NOTE = "(repair of step #{parent} from its failing tests) "
INPUTS_NOTE = "(agreement inputs)"
MAX_CALL_CHARS = 300  # a generated call longer than this is dropped (the sandbox bounds what it does anyway)
INPUTS_TEMPERATURE = 0.0  # one request: its most likely inputs
INPUTS_MAX_TOKENS = 512  # a few short lines of calls; a model that writes a program instead is cut here
_NOT_CONCRETE = ("but it timed out", "but it ran out of memory")


@dataclass(frozen=True)
class Agreement:
    """How the passing programs split on the generated inputs: `groups` of step ids (largest vote first), `votes`
    per group (samples that repeat a program vote for it too), and how many inputs ran at all."""

    inputs: int
    groups: list[list[int]]
    votes: list[int]

    def clear(self, agree: int) -> bool:
        if not self.votes:
            return False
        runner_up = self.votes[1] if len(self.votes) > 1 else 0
        return self.votes[0] >= agree and self.votes[0] > runner_up


@dataclass
class SampleRepairSelect(Strategy):
    """Samples, one repair of a concrete visible failure, and selection among the passing programs by agreement on
    model-written inputs; see the module docstring."""

    name: ClassVar[str] = "sample-repair-select"
    repairs: int = field(default=1, metadata={"help": "repair rounds per sample on a concrete visible failure "
                                                      "(0: none)", "min": 0})
    agree: int = field(default=2, metadata={"help": "votes the largest output group needs before the run may end "
                                                    "(0: no selection, stop at the first visible pass)", "min": 0})
    inputs: int = field(default=8, metadata={"help": "test inputs asked for (selection)", "min": 1})
    # outputs per (program, inputs), recomputed from the steps after a resume: a cache, not state
    _signatures: dict[tuple[str, tuple[str, ...]], tuple[str, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False, metadata={"recorded": False})

    def check(self) -> SampleRepairSelect:
        if self.repairs < 0 or self.agree < 0 or self.inputs < 1:
            raise ValueError(f"repairs and agree must be >= 0 and inputs >= 1 (got repairs={self.repairs}, "
                             f"agree={self.agree}, inputs={self.inputs})")
        return self

    # -- proposing ----------------------------------------------------------------------------------------------

    def propose(self, run: RunView, iteration: int, room: int | None) -> list[Proposal]:
        passing = _passing(run)
        if self.agree and passing and _inputs_step(run) is None:
            return [self._ask_inputs(run, iteration, passing[0])]
        if room is not None and room <= 0:
            return []
        target = self._repair_target(run)
        if target is not None:
            proposal = tgd_child(run, target, feedback="", meter=run.meter(), seed=run.seed(iteration), momentum=0,
                                 memory=[], one_call=True, temperature=run.config.temperature)
            proposal.feedback = REPAIR_NOTE.format(parent=target.id) + proposal.feedback
            return [proposal]
        s = run.setup
        return [ask_for_value(run, prompts.solve_messages(s.context, s.role, s.constraints), run.steps[0],
                              meter=run.meter(), seed=run.seed(iteration, 0), temperature=_SAMPLE_TEMPERATURE,
                              feedback=SAMPLE_NOTE)]

    def _repair_target(self, run: RunView) -> Step | None:
        """The latest step's program, when it failed concretely and may still be repaired; else None (sample)."""
        if self.repairs == 0:
            return None
        latest = run.steps[-1]
        if latest.duplicate_of is not None or not latest.evaluated or latest.evaluation.passed:
            return None
        if _is_repair(latest) and _repair_depth(run, latest) >= self.repairs:
            return None
        if not concrete_failure(latest.evaluation.text, latest.evaluation.valid):
            return None
        repairs = [s for s in run.steps if _is_repair(s) and s.evaluated]
        if len(repairs) >= 2 and not any(_score(s) > _score(run.steps[s.parent]) for s in repairs):
            return None  # repairs stopped paying: back to sampling
        return latest

    def _ask_inputs(self, run: RunView, iteration: int, passing: Step) -> Proposal:
        problem: Problem = run.instance
        meter = run.meter()
        messages = prompts.TEST_INPUTS.messages(context=prompts.task_section(run.setup.context),
                                                count=str(self.inputs), entry_point=problem.entry_point,
                                                example=_example_call(problem))
        try:
            limit = min(run.config.max_tokens or INPUTS_MAX_TOKENS, INPUTS_MAX_TOKENS)
            reply = meter.generate(messages, temperature=INPUTS_TEMPERATURE, max_tokens=limit,
                                   seed=run.seed(iteration)).text
        except BudgetExceeded:
            return Proposal(passing.value, passing.id, meter=meter)  # refused: not a step
        except Exception as exc:  # the endpoint is down: recorded, and selection goes on without inputs
            reply, problem_text = "", f"{type(exc).__name__}: {exc}"
        else:
            problem_text = ""
        calls = generated_calls(reply, problem, self.inputs)
        if not calls and not problem_text:
            problem_text = "no usable call of the entry point in the reply"
        return Proposal(passing.value, passing.id, feedback=INPUTS_NOTE + "\n" + "\n".join(calls),
                        status=StepStatus.UNCHANGED, problem=problem_text, meter=meter)

    # -- selecting ------------------------------------------------------------------------------------------------

    def settled(self, run: RunView) -> bool:
        if not self.agree:
            return True
        if _inputs_step(run) is None:
            return False
        agreement = self.agreement(run)
        return agreement.inputs == 0 or agreement.clear(self.agree)  # no input ran: nothing can tell them apart

    def select(self, run: RunView) -> Selection | None:
        passing = _passing(run)
        if not self.agree or not passing:
            return None
        agreement = self.agreement(run)
        chosen = agreement.groups[0][0] if agreement.groups else passing[0].id
        total = sum(agreement.votes)
        report: dict[str, Any] = {
            "chosen_step": chosen, "first_pass_step": passing[0].id, "inputs": agreement.inputs,
            "passing_programs": len(passing), "votes": agreement.votes,
            "groups": agreement.groups, "clear": agreement.clear(self.agree),
            "agreement": (f"{agreement.votes[0]} of {total} passing samples return the same on all "
                          f"{agreement.inputs} generated inputs" if agreement.inputs and agreement.votes
                          else "no generated input ran: the first program that passed the visible tests stands"),
        }
        return Selection(chosen, report)

    def agreement(self, run: RunView) -> Agreement:
        """The passing programs grouped by their outputs on the recorded inputs (largest vote first; ties: the
        group whose first program passed earliest)."""
        step = _inputs_step(run)
        calls = recorded_calls(step) if step is not None else []
        passing = _passing(run)
        signatures = {s.id: self._signature(run, s.value, tuple(calls)) for s in passing}
        ran = [i for i in range(len(calls)) if any(not sig[i].startswith("!") for sig in signatures.values())]
        groups: dict[tuple[str, ...], list[int]] = {}
        for s in passing:
            groups.setdefault(tuple(signatures[s.id][i] for i in ran), []).append(s.id)
        votes = {ids[0]: sum(_votes(run, run.steps[i]) for i in ids) for ids in groups.values()}
        ordered = sorted(groups.values(), key=lambda ids: (-votes[ids[0]], ids[0]))
        return Agreement(len(ran), ordered, [votes[ids[0]] for ids in ordered])

    def _signature(self, run: RunView, code: str, calls: tuple[str, ...]) -> tuple[str, ...]:
        """What `code` returns on each call, as plain-data text ("!" and the status where it returned nothing)."""
        key = (code, calls)
        if key not in self._signatures:
            if not calls:
                self._signatures[key] = ()
            else:
                problem: Problem = run.instance
                try:
                    out = run.domain.sandbox().outputs(code, problem.entry_point, list(calls),
                                                       preamble=problem.preamble)
                except RuntimeError:  # the worker died on this program: it returned nothing
                    self._signatures[key] = tuple("!sandbox-error" for _ in calls)
                else:
                    if out.load_status != "ok":
                        self._signatures[key] = tuple(f"!{out.load_status}" for _ in calls)
                    else:
                        self._signatures[key] = tuple(
                            text if error is None and text is not None else f"!{(error or 'error').split(':')[0]}"
                            for text, error in zip(out.texts, out.errors, strict=True))
        return self._signatures[key]


# -- reading steps back ------------------------------------------------------------------------------------------


def _passing(run: RunView) -> list[Step]:
    return [s for s in run.candidates if s.evaluation.passed]


def _inputs_step(run: RunView) -> Step | None:
    return next((s for s in run.steps if s.feedback.startswith(INPUTS_NOTE)), None)


def _is_repair(step: Step) -> bool:
    return step.feedback.startswith("(repair of step #")


def _repair_depth(run: RunView, step: Step) -> int:
    depth = 0
    while _is_repair(step) and step.parent is not None:
        depth, step = depth + 1, run.steps[step.parent]
    return depth


def _score(step: Step) -> float:
    return step.evaluation.score


def _votes(run: RunView, program: Step) -> int:
    """Steps that wrote this program: itself, and later samples or repairs that repeated it (not the inputs step)."""
    return 1 + sum(1 for s in run.steps if s.duplicate_of == program.id and not s.feedback.startswith(INPUTS_NOTE)
                   and s.status is StepStatus.DUPLICATE)


def recorded_calls(step: Step) -> list[str]:
    return [line for line in step.feedback.splitlines()[1:] if line.strip()]


def concrete_failure(text: str, valid: bool) -> bool:
    """Whether an evaluation names a failure a repair can act on: a failing call with what came back or the
    exception it raised, or a program that does not compile or raises on import (not a timeout or a lost worker)."""
    if not valid:
        return text.startswith(("The code does not compile", "The module's top-level code raised",
                                "The code runs but defines no function"))
    failing = [line for line in text.splitlines() if line.startswith("- ") and " expected " in line]
    return any(not any(n in line for n in _NOT_CONCRETE) for line in failing)


def generated_calls(reply: str, problem: Problem, limit: int) -> list[str]:
    """The calls of the entry point in a reply (one a line, inside <CALLS> tags or not), with literal arguments only, without repeats and without the
    visible tests' own calls (every passing program agrees on those), at most `limit`."""
    visible = {_normal(t.call) for t in problem.visible_tests}
    calls: list[str] = []
    for line in (reply or "").splitlines():
        line = line.replace("<CALLS>", "").replace("</CALLS>", "").strip().strip("`").strip()
        call = _literal_call(line, problem.entry_point)
        if call is not None and call not in calls and call not in visible:
            calls.append(call)
        if len(calls) >= limit:
            break
    return calls


def _literal_call(line: str, entry_point: str) -> str | None:
    """`line` as `entry_point(...)` with literal arguments (an `assert f(x) == y` gives its call), else None."""
    if not line or len(line) > MAX_CALL_CHARS:
        return None
    line = line.removeprefix("assert ").rstrip(",;")
    try:
        node = ast.parse(line, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if isinstance(node, ast.Compare):
        node = node.left
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == entry_point):
        return None
    try:
        for arg in [*node.args, *(k.value for k in node.keywords)]:
            ast.literal_eval(arg)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        return None
    if any(k.arg is None for k in node.keywords) or any(isinstance(a, ast.Starred) for a in node.args):
        return None
    return ast.unparse(node)


def _normal(call: str) -> str:
    try:
        return ast.unparse(ast.parse(call, mode="eval").body)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return call


def _example_call(problem: Problem) -> str:
    return _normal(problem.visible_tests[0].call) if len(problem.visible_tests) else f"{problem.entry_point}(...)"
