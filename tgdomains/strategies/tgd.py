"""TGD strategies: the chain (one child of the latest candidate per iteration) and population search.

Both make children the same way (`tgd_child`): the parent's feedback from its own evaluation (one backward call;
none in one-call mode), then one TGD step with momentum, a validator (the domain's parse) and a seed. They differ
in which parents they pick and what momentum shows:

- chain: the latest candidate, unless it is worse than the best: then the best, with a note that the last change
  made things worse (`after_worse="best"`, the default; "latest" is TextGrad's loop, which kept editing a worse
  value); momentum = the chain's last evaluated attempts with what they scored; an edit that did not beat the
  best is followed by a new value written from scratch (`restart_proposal`; `restart="never"` turns it off), then
  edits again;
- population: up to `population` parents sampled from the Pareto front of the distinct candidates (the best always
  among them), `proposals` children each, plus with `merge` one child combining the best parent with another;
  momentum = the parent's own line of ancestors, then the children it already had.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import takewhile
from operator import attrgetter
from typing import TYPE_CHECKING, ClassVar

from tgdomains import pareto, prompts
from tgdomains.engines.budget import BudgetExceeded
from tgdomains.evaluation import finite_or_none, format_score
from tgdomains.loss import evaluation_loss
from tgdomains.optimizer import TGD, Attempt, out_of_view, retry_temperature
from tgdomains.records import Step, StepStatus
from tgdomains.strategies.base import Proposal, Strategy
from tgdomains.strategies.sampling import ask_for_value, gist_of, sample_seed, seen_values
from tgdomains.variable import Variable

if TYPE_CHECKING:
    from tgdomains.engines.budget import Meter
    from tgdomains.runview import RunView

_PROBLEM_CHARS = 300  # of an unusable proposal's problem quoted in the next request
_EVAL_LINE = 160  # characters of a sibling's evaluation shown in momentum: what it scored, not the whole report
# A restart step's feedback: what produced it, for the reader of steps.jsonl (`Step.restart` marks the step).
RESTART_FEEDBACK = "(restart from the {source}: a new value instead of another edit of step #{parent})"
RESTART_SOURCES = ("evaluation", "task")


def feedback_for(run: RunView, parent: Step, meter: Meter, seed: int, firm: bool = False) -> str | None:
    """The parent's feedback from its own evaluation; None when a spent budget refused the call. A parent stepped
    from before (a chain back at its best after a worse step, a population parent drawn again, a retry after an
    unusable proposal) reuses the feedback it was given: the same evaluation gets the same critique, so a second
    backward call would only spend the budget that a step can use."""
    # a restart's feedback is its note (RESTART_FEEDBACK), not a critique; `Step.from_dict` also marks the restarts
    # of run directories recorded before `Step.restart` was stored
    earlier = [s for s in run.steps
               if s.parent == parent.id and s.feedback and s.merge_with is None and not s.restart]
    if earlier:
        return earlier[-1].feedback
    x = Variable(parent.value, run.setup.role, requires_grad=True)
    ev = parent.evaluation
    try:
        evaluation_loss(x, ev, run.setup.context, firm=firm).backward(meter, seed=seed)
    except BudgetExceeded:
        return None
    except Exception as exc:  # the endpoint died during backward: step with no feedback rather than crash
        return f"(no feedback: {type(exc).__name__}: {exc}) Evaluation:\n{ev.text}"
    return x.feedback()


def tgd_child(run: RunView, parent: Step, *, feedback: str, meter: Meter, seed: int, momentum: int,
              memory: list[Attempt], one_call: bool, examples: list[str] | None = None, note: str = "",
              temperature: float | None = None, show_evaluation: bool = False) -> Proposal:
    """One TGD step from `parent` (with `feedback`, or from its evaluation in one-call mode). `note` opens what the
    optimizer reads (e.g. that the last change made things worse). A proposal repeating a value the run already
    evaluated is re-asked (TGD's `avoid`), so no evaluation is spent on it. After unusable proposals from `parent`
    the request names the last one's problem and is sampled above temperature 0, so it is not the request that
    failed again. `temperature`: the step's sampling temperature (default: the run's). `show_evaluation`: the step
    prompt shows the parent's evaluation beside the feedback."""
    cfg = run.config
    temperature = cfg.temperature if temperature is None else temperature
    unusable = _unusable_children(run, parent)
    if unusable:
        note += prompts.UNUSABLE_NOTE.format(count=len(unusable), problem=_cut(unusable[-1].problem, _PROBLEM_CHARS))
        temperature = retry_temperature(temperature, len(unusable))
    x = Variable(parent.value, run.setup.role, requires_grad=True)
    opt = TGD([x], meter, constraints=run.setup.constraints, examples=examples or run.setup.examples,
              momentum=momentum, context=run.setup.context, validate=run.parse, one_call=one_call,
              temperature=temperature, max_tokens=cfg.max_tokens, seed=seed, avoid=seen_values(run),
              reply_format=run.reply_format, show_evaluation=show_evaluation)
    for attempt in memory:
        opt.remember(x, attempt)
    if not one_call:  # the note opens the feedback, or the evaluation where the step shows that (said once)
        x.gradients = [feedback if show_evaluation else note + feedback]
    ev = parent.evaluation
    opt.step(score=finite_or_none(ev.score), evaluation_text=note + ev.text)
    report = opt.report(x)
    status = StepStatus(report.status)
    if status in (StepStatus.UPDATED, StepStatus.REPAIRED) and x.value == parent.value:
        status = StepStatus.UNCHANGED  # e.g. a repaired reply that repeated the value and whose re-ask was unusable
    # the feedback as the backward call wrote it (without `note`), so that it can be reused from this step
    used = report.feedback if one_call else (feedback or report.feedback)
    return Proposal(x.value, parent.id, feedback=used, status=status, problem=report.problem, meter=meter)


def _unusable_children(run: RunView, parent: Step) -> list[Step]:
    """The edits of `parent` that gave no new value (unusable, or still a repeat after the re-asks), oldest first."""
    return [s for s in run.steps if s.parent == parent.id and s.value == parent.value and not s.restart]


def restart_proposal(run: RunView, best: Step, *, source: str, meter: Meter, seed: int, temperature: float) -> Proposal:
    """A new value written from scratch rather than edited from `best` (recorded as its child). `source` "task":
    the zero-shot request (`prompts.SOLVE`; with zero-shot's seed it draws zero-shot's sample); "evaluation":
    `prompts.RESTART`, the task and what `best`'s evaluation reported, with `best`'s value out of view. A repeat of
    any evaluated value is re-asked, as an edit's is."""
    s = run.setup
    if source == "task":
        messages, reply_format = prompts.solve_messages(s.context, s.role, s.constraints), None
    else:
        messages = prompts.RESTART.messages(
            context=prompts.task_section(s.context), role=s.role,
            evaluation=out_of_view(best.evaluation.text, best.value),
            constraints=prompts.constraints_section(s.constraints))
        reply_format = run.reply_format
    proposal = ask_for_value(run, messages, best, meter=meter, seed=seed, temperature=temperature,
                             feedback=RESTART_FEEDBACK.format(source=source, parent=best.id),
                             avoid=seen_values(run), reply_format=reply_format)
    proposal.restart = True
    return proposal


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class Chain(Strategy):
    """TextGrad's loop: evaluate -> feedback -> TGD step, one child per iteration.

    after_worse: what the chain steps from when its latest candidate is worse than its best. "best" (default): the
    best, telling the optimizer that the last change made things worse; "latest": the latest anyway (TextGrad's
    loop, which on prostate-2d went from -0.041 to -8.27 by scaling every organ weight and never recovered).
    restart: after an edit that did not beat the best, a new value written from scratch from the best value's
    "evaluation" (default: against "never" on the same runs, 17 better, 3 worse, 46 the same over both seeds and
    the three domains, bench/quality/README.md) or from the "task" (the zero-shot request), at
    `restart_temperature`; up to `restarts_in_a_row` restarts, then an edit of the best again, until one of them
    improves on the best. "never": TextGrad's loop, edits only.
    With `restart_first` the chain restarts first: from the task with many restarts in a row it draws
    zero-shot's samples until one beats the start, then edits that one ("sample, then edit").
    """

    name: ClassVar[str] = "chain"
    momentum: int = 3  # past attempts (value, score, evaluation gist) shown to the optimizer
    one_call: bool = False  # feedback and new value in one LLM call
    accept_only_improvements: bool = False  # continue from the best candidate, gate children on beating it
    after_worse: str = "best"
    restart: str = "evaluation"
    restart_temperature: float = 0.8  # as zero-shot samples: at 0 every restart would be the same reply
    restarts_in_a_row: int = 1  # restarts that did not beat the best before the best is edited again
    restart_first: bool = False  # True: the first proposal is a restart; edits begin once a restart beats the start
    show_evaluation: bool = False  # the step prompt shows the evaluation beside the feedback (an experiment, issue 14)
    firm_critic: bool = False  # the critic of a failing value is told not to call it correct (an experiment, issue 14)

    def check(self) -> Chain:
        if self.after_worse not in ("best", "latest"):
            raise ValueError(f"after_worse must be 'best' or 'latest', got {self.after_worse!r}")
        if self.restart not in ("never", *RESTART_SOURCES):
            raise ValueError(f"restart must be 'never', 'task' or 'evaluation', got {self.restart!r}")
        if self.restart == "never" and self.restart_first:
            raise ValueError("restart_first needs restart='task' or 'evaluation' (the first step is a restart)")
        if self.restarts_in_a_row < 1:
            raise ValueError(f"restarts_in_a_row must be >= 1, got {self.restarts_in_a_row}")
        if self.firm_critic and self.one_call:
            raise ValueError("firm_critic is for the feedback call: one-call has none")
        if self.show_evaluation and self.one_call:
            raise ValueError("show_evaluation is for edits from feedback: the one-call step reads the evaluation "
                             "already")
        return self

    def propose(self, run: RunView, iteration: int, room: int | None) -> list[Proposal]:
        meter = run.meter()
        seed = run.seed(iteration)
        if self.restart != "never" and self._stalled(run):
            # the k-th "task" restart sends zero-shot's k-th request (same messages, seed and temperature), so it
            # draws the sample zero-shot draws at its iteration k
            k = 1 + sum(1 for s in run.steps if s.restart)
            restart_seed = sample_seed(run, k) if self.restart == "task" else seed
            return [restart_proposal(run, run.best, source=self.restart, meter=meter, seed=restart_seed,
                                     temperature=self.restart_temperature)]
        current, note = self._current(run)
        feedback = ""
        if not self.one_call:
            feedback = feedback_for(run, current, meter, seed, firm=self.firm_critic)
            if feedback is None:
                return [Proposal(current.value, current.id, meter=meter, budget_refused=True)]
        memory = self._memory(run, current) if self.momentum > 0 else []
        child = tgd_child(run, current, feedback=feedback, meter=meter, seed=seed, momentum=self.momentum,
                          memory=memory, one_call=self.one_call, note=note, show_evaluation=self.show_evaluation)
        if self.accept_only_improvements:
            child.gate = current.evaluation
        return [child]

    def _current(self, run: RunView) -> tuple[Step, str]:
        """The step to improve, and a note for the optimizer when it is not the latest."""
        best, latest = run.best, run.steps[-1]
        if latest.duplicate_of is not None:  # a repeat: it stands for the step it repeated
            latest = run.steps[latest.duplicate_of]
        if self.accept_only_improvements:
            return best, ""
        if self.after_worse == "latest" or latest.rank() >= best.rank() or latest.id == best.id:
            return latest, ""
        return best, (f"Note: the last change made things worse (step #{latest.id} scored "
                      f"{format_score(latest.score)}, this value {format_score(best.score)}); it is listed under past "
                      f"attempts. Start again from this value and change less, or change something else.\n\n")

    def _stalled(self, run: RunView) -> bool:
        """Whether the next proposal is a restart: the latest step did not beat the best (worse, a tie, or nothing
        new: unusable, or a repeat after the re-asks; on n-queens-count the chain spent its 8 calls on two unusable
        edits of its start), and it was an edit or one of fewer than `restarts_in_a_row` restarts in a row."""
        latest = run.steps[-1]
        if latest.parent is None:
            return self.restart_first
        if self.accept_only_improvements or (latest.evaluated and latest.id == run.best.id):
            return False
        return sum(1 for _ in takewhile(attrgetter("restart"), reversed(run.steps))) < self.restarts_in_a_row

    def _memory(self, run: RunView, current: Step) -> list[Attempt]:
        """The chain's last evaluated attempts other than `current`, oldest first, with their evaluation gists."""
        past = [s for s in run.candidates if s.id != current.id][-self.momentum:]
        return [Attempt(s.value, s.score, gist_of(s)) for s in past]


@dataclass
class OneCall(Chain):
    """The chain with feedback and new value in one LLM call per iteration."""

    name: ClassVar[str] = "one-call"
    one_call: bool = True


@dataclass
class Population(Strategy):
    """Pareto-front parents, `proposals` TGD children each, evaluated concurrently; see the module docstring."""

    name: ClassVar[str] = "population"
    population: int = 4  # parents per iteration, drawn from the Pareto front
    proposals: int = 2  # children per parent per iteration
    merge: bool = False  # one extra child per iteration combining two parents
    # A parent's children after its first are sampled at this temperature (or the run's, when higher): from one
    # request at temperature 0 every sibling gets the same reply, so all but the first would be repeats.
    sibling_temperature: float = 0.8
    momentum: int = 3
    one_call: bool = False
    workers: int | None = None  # threads for LLM calls (default: one per child)

    def check(self) -> Population:
        if self.population < 1 or self.proposals < 1:
            raise ValueError(f"population and proposals must be >= 1 (got population={self.population}, "
                             f"proposals={self.proposals})")
        return self

    def settings(self) -> dict:
        return {k: v for k, v in super().settings().items() if k != "workers"}  # how, not what: not recorded

    def width(self) -> int:
        return self.population * self.proposals + (1 if self.merge and self.population > 1 else 0)

    def propose(self, run: RunView, iteration: int, room: int | None) -> list[Proposal]:
        rng = run.rng(iteration)  # per iteration: a resumed run draws the same
        parents = self._parents(run, rng)
        slots = self._slots(parents, run.seed(iteration, 0), rng)
        if room is not None:
            slots = slots[:room]
        meters = [run.meter() for _ in slots]
        feedback: dict[int, str | None] = {}
        if not self.one_call:  # one backward call per parent, metered on its first child
            first: dict[int, int] = {}
            for i, (parent, _, _, _) in enumerate(slots):
                first.setdefault(parent.id, i)
            got = run.map(lambda i: feedback_for(run, slots[i][0], meters[i], slots[i][1]), list(first.values()),
                          self.workers)
            feedback = dict(zip(first, got, strict=True))
        return run.map(lambda i: self._child(run, *slots[i], meters[i], feedback), list(range(len(slots))),
                       self.workers)

    def _parents(self, run: RunView, rng: random.Random) -> list[Step]:
        """Up to `population` parents from the Pareto front of the distinct candidates; the best always among them.
        When no candidate is valid yet (an invalid start), the best one is still improved from its error text."""
        candidates, best, objectives = run.candidates, run.best, run.objectives
        vectors = [pareto.objective_vector(c.evaluation, objectives) for c in candidates]
        front = pareto.front_of(vectors)
        if not front:
            return [best]
        by_id = {c.id: c for c in candidates}
        ids = pareto.sample_parents([candidates[i].id for i in front], [vectors[i] for i in front], self.population,
                                    rng, keep=[best.id])
        return [by_id[i] for i in ids]

    def _slots(self, parents: list[Step], base: int,
               rng: random.Random) -> list[tuple[Step, int, Step | None, int]]:
        """Every child of this iteration as (parent, seed, merge partner, sibling index), in the order they are
        recorded. Seeds depend only on the run seed, the iteration and the slot."""
        slots: list[tuple[Step, int, Step | None, int]] = [
            (parent, base + p * self.proposals + j, None, j)
            for p, parent in enumerate(parents) for j in range(self.proposals)]
        if self.merge and len(parents) > 1:  # the best parent, shown another front member's strengths
            primary = max(parents, key=Step.rank)
            other = rng.choice([p for p in parents if p is not primary])
            slots.append((primary, base + len(slots), other, 0))  # its own request: greedy like a first child
        return slots

    def _child(self, run: RunView, parent: Step, seed: int, merge_with: Step | None, sibling: int, meter: Meter,
               feedback: dict[int, str | None]) -> Proposal:
        text = feedback.get(parent.id, "")
        if text is None:  # the budget ran out before this parent got feedback: nothing to step from
            return Proposal(parent.value, parent.id, meter=meter, budget_refused=True)
        examples = list(run.setup.examples)
        if merge_with is not None:
            examples.append(_merge_example(merge_with))
            if not self.one_call:
                text = (f"{text}\n\nAlso combine this variable's strengths with those of the other candidate "
                        f"shown under examples (candidate #{merge_with.id}): keep what each does well.")
        temperature = run.config.temperature
        if sibling > 0:
            temperature = max(temperature, self.sibling_temperature)
        child = tgd_child(run, parent, feedback=text, meter=meter, seed=seed, momentum=self.momentum,
                          memory=_lineage_memory(parent, run.steps, self.momentum), one_call=self.one_call,
                          examples=examples, temperature=temperature)
        child.merge_with = None if merge_with is None else merge_with.id
        return child


def _merge_example(other: Step) -> str:
    return (f"Another candidate (#{other.id}, score {format_score(other.score)}) to take strengths from:\n"
            f"{other.value}\nIts evaluation:\n{other.evaluation.text.strip()[:1500]}")


def _lineage_memory(parent: Step, steps: list[Step], momentum: int) -> list[Attempt]:
    """Momentum for one parent, oldest first: its own line of ancestors (each with the feedback that led on), then
    the children it already had (with what they scored), so a parent drawn again does not repeat itself."""
    if momentum <= 0:
        return []
    lineage, node = [], parent
    while node.parent is not None and len(lineage) < momentum:
        above = steps[node.parent]
        lineage.append(Attempt(above.value, above.score, node.feedback))
        node = above
    lineage.reverse()
    children = [Attempt(s.value, s.score, "(its evaluation) " + " ".join(s.evaluation.text.split())[:_EVAL_LINE])
                for s in steps if s.parent == parent.id and s.evaluated]
    return (lineage + children)[-momentum:]
