"""LLM-guided Bayesian optimization: TPE's study, seeded and steered by one-call TGD steps of the LLM.

`tgdomains optimize radiotherapy --strategy guided-tpe --evaluation-budget 40` runs one study of plans:

1. the first `warm_start` trials are the LLM's: one-call TGD steps (critique and new plan in one call) from the best
   plan so far, the first from the start, whose evaluation names the failing goals and by how much they fail;
2. then TPE (`baselines.TPE`'s configuration: start-up trials sized to the budget, multivariate) proposes, its study
   rebuilt every iteration from every evaluated plan of the run, the LLM's included;
3. with `every` set, after every `every` TPE trials the LLM steps again from the study's best plan, shown its
   evaluation and a compact table of the best trials so far (TGD's momentum: plan, score, failing goals), and its
   plan joins the study;

until the LLM has made `llm_calls` calls (re-asks and repairs count; no call is sent that could pass that number),
then TPE alone. The default is the warm start alone (`every` None): on prostate-2d at 40 evaluations it met every
goal on more seeds than the LLM trials every 6 TPE trials, with 2 calls instead of up to 6
(bench/quality/radiotherapy-bo.md). An LLM plan outside TPE's search space is told to the study as the nearest point of the space.
Every choice is derived from the recorded steps and every seed from the iteration, so a killed run resumes exactly.

The strategy keeps to its own `llm_calls`: a run-level `--llm-call-budget` ends the whole run when it is spent, TPE
trials included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from domains.radiotherapy.baselines import ask_tpe, configured_sampler
from tgdomains.engines.budget import RunEngine
from tgdomains.optimizer import Attempt
from tgdomains.records import Step
from tgdomains.strategies.base import Proposal, Strategy
from tgdomains.strategies.tgd import tgd_child

if TYPE_CHECKING:
    from tgdomains.run import Run

TPE_FEEDBACK = "(TPE)"  # the feedback of a TPE trial's step: how the strategy tells its own steps apart
_FAILING = "Failing goals, worst first:"


@dataclass
class GuidedTPE(Strategy):
    """TPE with LLM proposals at the start and every `every` trials; see the module docstring."""

    name: ClassVar[str] = "guided-tpe"
    warm_start: int = 2  # LLM trials before TPE's first
    every: int | None = None  # TPE trials between two later LLM trials (None: no LLM trial after the warm start)
    llm_calls: int = 6  # LLM calls at most, re-asks and repairs included; then TPE alone
    table_rows: int = 6  # best trials shown to the LLM after the warm start (its momentum)
    startup_trials: int | None = None  # TPE's random trials (None: sized to the budget, as `tpe`)
    multivariate: bool = True

    def check(self) -> GuidedTPE:
        for name in ("warm_start", "llm_calls", "table_rows"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.every is not None and self.every < 1:
            raise ValueError(f"every must be >= 1, got {self.every}")
        if self.startup_trials is not None and self.startup_trials < 1:
            raise ValueError(f"startup_trials must be >= 1, got {self.startup_trials}")
        return self

    def propose(self, run: Run, iteration: int, room: int | None) -> list[Proposal]:
        if self._llm_turn(run):
            return [self._llm_trial(run, iteration)]
        sampler = configured_sampler(run, iteration, self.startup_trials, self.multivariate)
        return [Proposal(plan, run.best.id, feedback=TPE_FEEDBACK) for plan in ask_tpe(run, sampler, 1, clip=True)]

    def _llm_turn(self, run: Run) -> bool:
        """Whether this trial is the LLM's: calls are left, and it is a warm-start trial or `every` TPE trials
        followed the last LLM trial."""
        if calls_made(run.steps) >= self.llm_calls:
            return False
        trials = run.steps[1:]
        llm = [i for i, s in enumerate(trials) if s.feedback != TPE_FEEDBACK]
        if len(llm) < self.warm_start and len(llm) == len(trials):
            return True
        if self.every is None:
            return False
        since = len(trials) - 1 - llm[-1] if llm else len(trials)
        return since >= self.every

    def _llm_trial(self, run: Run, iteration: int) -> Proposal:
        """One one-call TGD step from the best plan so far, metered so that it never passes `llm_calls`."""
        meter = run.meter()
        capped = RunEngine(meter, call_budget=self.llm_calls - calls_made(run.steps))
        best = run.best
        memory = trials_table(run.candidates, best, self.table_rows)
        child = tgd_child(run, best, feedback="", meter=capped, seed=run.seed(iteration), momentum=len(memory),
                          memory=memory, one_call=True)
        child.meter = meter  # the step's usage: what reached the engine (a cache hit counts as one)
        return child


def calls_made(steps: list[Step]) -> int:
    """LLM calls the run's steps made, cache hits included (as every LLM budget counts them)."""
    return int(sum(s.usage.get("llm_calls", 0) + s.usage.get("cache_hits", 0) for s in steps))


def trials_table(candidates: list[Step], best: Step, rows: int) -> list[Attempt]:
    """The `rows` best evaluated plans other than `best`, worst first (the best nearest the current plan), each
    with its score and its failing goals: the momentum of an LLM trial."""
    others = sorted((s for s in candidates if s.id != best.id), key=Step.rank)[-rows:] if rows else []
    return [Attempt(s.value, s.score, failing_goals(s)) for s in others]


def failing_goals(step: Step) -> str:
    """What a plan's evaluation says fails, on one line: "fails: PTV D95 = 76.0 Gy (goal >= 78 Gy): short by 2.0
    Gy; ..." (from its text: the recorded evaluations that tables replay keep the text, not the details)."""
    text = step.evaluation.text
    if _FAILING not in text:
        return text.strip().splitlines()[0] if text.strip() else "(no evaluation text)"
    lines = text.split(_FAILING, 1)[1].splitlines()
    failing = []
    for line in lines[1:] if lines and not lines[0].strip() else lines:
        if not line.startswith("  - "):
            break
        failing.append(line[4:].strip())
    return "fails: " + "; ".join(failing)
