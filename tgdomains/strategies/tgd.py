"""TGD strategies: the chain (one child of the latest candidate per iteration) and population search.

Both make children the same way (`tgd_child`): the parent's feedback from its own evaluation (one backward call;
none in one-call mode), then one TGD step with momentum, a validator (the domain's parse) and a seed. They differ
in which parents they pick and what momentum shows:

- chain: the latest candidate, unless it is worse than the best: then the best, with a note that the last change
  made things worse (TextGrad's loop kept editing a worse value); momentum = the chain's last evaluated attempts
  with what they scored; an edit that did not beat the best is followed by a new value written from scratch from
  the best's evaluation (`restart_proposal`), then edits again;
- population: up to `population` parents sampled from the Pareto front of the distinct candidates (the best always
  among them), `proposals` children each; momentum = the parent's own line of ancestors, then the children it
  already had.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from tgdomains import pareto, prompts
from tgdomains.engines.budget import BudgetExceeded
from tgdomains.evaluation import finite_or_none, format_score
from tgdomains.loss import evaluation_loss
from tgdomains.optimizer import TGD, Attempt, out_of_view, retry_temperature
from tgdomains.records import Step, StepStatus
from tgdomains.strategies.base import Proposal, Strategy
from tgdomains.strategies.sampling import ask_for_value, gist_of, seen_values
from tgdomains.variable import Variable

if TYPE_CHECKING:
    from tgdomains.engines.budget import Meter
    from tgdomains.runview import RunView

_PROBLEM_CHARS = 300  # of an unusable proposal's problem quoted in the next request
_EVAL_LINE = 160  # characters of a sibling's evaluation shown in momentum: what it scored, not the whole report
# A restart step's feedback: what produced it, for the reader of steps.jsonl (`Step.restart` marks the step).
RESTART_FEEDBACK = "(restart from the evaluation: a new value instead of another edit of step #{parent})"
_RESTART_TEMPERATURE = 0.8  # as zero-shot samples: at 0 every restart would be the same reply
_SIBLING_TEMPERATURE = 0.8  # a parent's children after its first (or the run's temperature, when higher)


def feedback_for(run: RunView, parent: Step, meter: Meter, seed: int) -> str | None:
    """The parent's feedback from its own evaluation; None when a spent budget refused the call. A parent stepped
    from before (a chain back at its best after a worse step, a population parent drawn again, a retry after an
    unusable proposal) reuses the feedback it was given: the same evaluation gets the same critique, so a second
    backward call would only spend the budget that a step can use."""
    # a restart's feedback is its note (RESTART_FEEDBACK), not a critique; `Step.from_dict` also marks the restarts
    # of run directories recorded before `Step.restart` was stored
    earlier = [s for s in run.steps
               if s.parent == parent.id and s.feedback and not s.restart]
    if earlier:
        return earlier[-1].feedback
    x = Variable(parent.value, run.setup.role, requires_grad=True)
    ev = parent.evaluation
    try:
        evaluation_loss(x, ev, run.setup.context).backward(meter, seed=seed)
    except BudgetExceeded:
        return None
    except Exception as exc:  # the endpoint died during backward: step with no feedback rather than crash
        return f"(no feedback: {type(exc).__name__}: {exc}) Evaluation:\n{ev.text}"
    return x.feedback()


def tgd_child(run: RunView, parent: Step, *, feedback: str, meter: Meter, seed: int, momentum: int,
              memory: list[Attempt], one_call: bool, examples: list[str] | None = None, note: str = "",
              temperature: float | None = None) -> Proposal:
    """One TGD step from `parent` (with `feedback`, or from its evaluation in one-call mode). `note` opens what the
    optimizer reads (e.g. that the last change made things worse). A proposal repeating a value the run already
    evaluated is re-asked (TGD's `avoid`), so no evaluation is spent on it. After unusable proposals from `parent`
    the request names the last one's problem and is sampled above temperature 0, so it is not the request that
    failed again. `temperature`: the step's sampling temperature (default: the run's)."""
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
              reply_format=run.reply_format)
    for attempt in memory:
        opt.remember(x, attempt)
    if not one_call:  # the note opens the feedback
        x.gradients = [note + feedback]
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


def restart_proposal(run: RunView, best: Step, *, meter: Meter, seed: int, temperature: float) -> Proposal:
    """A new value written from scratch rather than edited from `best` (recorded as its child): `prompts.RESTART`,
    the task and what `best`'s evaluation reported, with `best`'s value out of view. A repeat of any evaluated value
    is re-asked, as an edit's is."""
    s = run.setup
    messages = prompts.RESTART.messages(
        context=prompts.task_section(s.context), role=s.role, evaluation=out_of_view(best.evaluation.text, best.value),
        constraints=prompts.constraints_section(s.constraints))
    proposal = ask_for_value(run, messages, best, meter=meter, seed=seed, temperature=temperature,
                             feedback=RESTART_FEEDBACK.format(parent=best.id), avoid=seen_values(run),
                             reply_format=run.reply_format)
    proposal.restart = True
    return proposal


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class Chain(Strategy):
    """TextGrad's loop, evaluate -> feedback -> TGD step, one child per iteration, with two changes that the bench
    measured: after a worse step the chain steps from its best value again (TextGrad's loop went from -0.041 to
    -8.27 on prostate-2d by scaling every organ weight and never recovered), and an edit that did not beat the best
    is followed by a new value written from the best's evaluation with the best out of view (against edits only,
    17 better, 3 worse, 46 the same runs over both seeds and the three domains), then edits of the best again."""

    name: ClassVar[str] = "chain"
    momentum: int = field(default=3, metadata={"help": "past attempts (value, score, evaluation gist) shown to the "
                                                       "optimizer"})

    def check(self) -> Chain:
        if self.momentum < 0:
            raise ValueError(f"momentum must be >= 0, got {self.momentum}")
        return self

    def propose(self, run: RunView, iteration: int, room: int | None) -> list[Proposal]:
        meter = run.meter()
        seed = run.seed(iteration)
        if self._stalled(run):
            return [restart_proposal(run, run.best, meter=meter, seed=seed, temperature=_RESTART_TEMPERATURE)]
        current, note = self._current(run)
        feedback = feedback_for(run, current, meter, seed)
        if feedback is None:
            return [Proposal(current.value, current.id, meter=meter, budget_refused=True)]
        memory = self._memory(run, current) if self.momentum > 0 else []
        return [tgd_child(run, current, feedback=feedback, meter=meter, seed=seed, momentum=self.momentum,
                          memory=memory, one_call=False, note=note)]

    @staticmethod
    def _current(run: RunView) -> tuple[Step, str]:
        """The step to improve, and a note for the optimizer when it is not the latest."""
        best, latest = run.best, run.steps[-1]
        if latest.duplicate_of is not None:  # a repeat: it stands for the step it repeated
            latest = run.steps[latest.duplicate_of]
        if latest.rank() >= best.rank() or latest.id == best.id:
            return latest, ""
        return best, (f"Note: the last change made things worse (step #{latest.id} scored "
                      f"{format_score(latest.score)}, this value {format_score(best.score)}); it is listed under past "
                      f"attempts. Start again from this value and change less, or change something else.\n\n")

    @staticmethod
    def _stalled(run: RunView) -> bool:
        """Whether the next proposal is a restart: the latest step was an edit that did not beat the best (worse, a
        tie, or nothing new: unusable, or a repeat after the re-asks; on n-queens-count the chain spent its 8 calls
        on two unusable edits of its start). After a restart that did not beat the best, the best is edited again."""
        latest = run.steps[-1]
        if latest.parent is None or latest.restart:
            return False
        return not (latest.evaluated and latest.id == run.best.id)

    def _memory(self, run: RunView, current: Step) -> list[Attempt]:
        """The chain's last evaluated attempts other than `current`, oldest first, with their evaluation gists."""
        past = [s for s in run.candidates if s.id != current.id][-self.momentum:]
        return [Attempt(s.value, s.score, gist_of(s)) for s in past]


@dataclass
class Population(Strategy):
    """Pareto-front parents, `proposals` TGD children each, evaluated concurrently; see the module docstring."""

    name: ClassVar[str] = "population"
    population: int = field(default=4, metadata={"help": "parents per iteration, drawn from the Pareto front",
                                                        "min": 1})
    proposals: int = field(default=2, metadata={"help": "children per parent per iteration", "min": 1})
    momentum: int = field(default=3, metadata={"help": "attempts shown per parent: its ancestors, then its "
                                                       "children so far"})
    workers: int | None = field(default=None, metadata={"help": "threads for LLM calls (default: one per child)",
                                                        "recorded": False})

    def check(self) -> Population:
        if self.population < 1 or self.proposals < 1 or self.momentum < 0:
            raise ValueError(f"population and proposals must be >= 1 and momentum >= 0 (got population="
                             f"{self.population}, proposals={self.proposals}, momentum={self.momentum})")
        return self

    def width(self) -> int:
        return self.population * self.proposals

    def propose(self, run: RunView, iteration: int, room: int | None) -> list[Proposal]:
        rng = run.rng(iteration)  # per iteration: a resumed run draws the same
        parents = self._parents(run, rng)
        slots = [(parent, run.seed(iteration, p * self.proposals + j), j)
                 for p, parent in enumerate(parents) for j in range(self.proposals)]
        if room is not None:
            slots = slots[:room]
        meters = [run.meter() for _ in slots]
        first: dict[int, int] = {}  # one backward call per parent, metered on its first child
        for i, (parent, _, _) in enumerate(slots):
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

    def _child(self, run: RunView, parent: Step, seed: int, sibling: int, meter: Meter,
               feedback: dict[int, str | None]) -> Proposal:
        text = feedback.get(parent.id, "")
        if text is None:  # the budget ran out before this parent got feedback: nothing to step from
            return Proposal(parent.value, parent.id, meter=meter, budget_refused=True)
        temperature = run.config.temperature
        if sibling > 0:  # from one request at temperature 0 every sibling would get the same reply
            temperature = max(temperature, _SIBLING_TEMPERATURE)
        return tgd_child(run, parent, feedback=text, meter=meter, seed=seed, momentum=self.momentum,
                         memory=_lineage_memory(parent, run.steps, self.momentum), one_call=False,
                         temperature=temperature)


def _lineage_memory(parent: Step, steps: tuple[Step, ...], momentum: int) -> list[Attempt]:
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
