"""LLM-guided Bayesian optimization: TPE's study, seeded and steered by one-call TGD steps of the LLM.

`tgdomains optimize radiotherapy --strategy guided-tpe --evaluation-budget 40` runs one study of plans:

1. the first `warm_start` trials are the LLM's: one-call TGD steps (critique and new plan in one call) from the best
   plan so far, the first from the start, whose evaluation names the failing goals and by how much they fail, the
   next shown the trials so far with their failing goals (TGD's momentum);
2. then TPE (`baselines.TPE`'s configuration: start-up trials sized to the budget, multivariate) proposes, its study
   rebuilt every iteration from every evaluated plan of the run, the LLM's included.

The LLM makes at most `llm_calls` calls (re-asks and repairs count; no call is sent that could pass that number).
Measured against TPE alone (bench/quality/radiotherapy-bo.md): it wins 3 of 5 paired seeds after 20 evaluations and
never loses there, but not at 10, so TPE is the domain's default; LLM trials every few TPE trials after the warm
start met every goal on fewer seeds and live in the bench. An LLM plan outside TPE's search space is told to the
study as the nearest point of the space.
Every choice is derived from the recorded steps and every seed from the iteration, so a killed run resumes exactly.

The strategy keeps to its own `llm_calls`: a run-level `--llm-call-budget` ends the whole run when it is spent, TPE
trials included.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from domains.radiotherapy.baselines import ask_tpe, configured_sampler
from tgdomains.engines.budget import RunEngine
from tgdomains.optimizer import Attempt
from tgdomains.records import Step
from tgdomains.strategies.base import Proposal, Strategy
from tgdomains.strategies.tgd import tgd_child

if TYPE_CHECKING:
    from tgdomains.runview import RunView

TPE_FEEDBACK = "(TPE)"  # the feedback of a TPE trial's step: how the strategy tells its own steps apart
_FAILING = "Failing goals, worst first:"
_TABLE_ROWS = 6  # best trials shown to an LLM trial after the first (its momentum)


@dataclass
class GuidedTPE(Strategy):
    """TPE warm-started by LLM proposals; see the module docstring."""

    name: ClassVar[str] = "guided-tpe"
    warm_start: int = field(default=2, metadata={"help": "LLM trials before TPE's first"})
    llm_calls: int = field(default=6, metadata={"help": "LLM calls at most, re-asks and repairs included; then "
                                                        "TPE alone"})

    def check(self) -> GuidedTPE:
        for name in ("warm_start", "llm_calls"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        return self

    def propose(self, run: RunView, iteration: int, room: int | None) -> list[Proposal]:
        if self._llm_turn(run):
            return [self._llm_trial(run, iteration)]
        return [Proposal(plan, run.best.id, feedback=TPE_FEEDBACK)
                for plan in ask_tpe(run, configured_sampler(run, iteration), 1, clip=True)]

    def _llm_turn(self, run: RunView) -> bool:
        """Whether this trial is the LLM's: calls are left and every trial so far was the LLM's warm start."""
        if calls_made(run.steps) >= self.llm_calls:
            return False
        trials = run.steps[1:]
        llm = [s for s in trials if s.feedback != TPE_FEEDBACK]
        return len(llm) < self.warm_start and len(llm) == len(trials)

    def _llm_trial(self, run: RunView, iteration: int) -> Proposal:
        """One one-call TGD step from the best plan so far, metered so that it never passes `llm_calls`."""
        meter = run.meter()
        capped = RunEngine(meter, call_budget=self.llm_calls - calls_made(run.steps))
        best = run.best
        memory = trials_table(run.candidates, best, _TABLE_ROWS)
        child = tgd_child(run, best, feedback="", meter=capped, seed=run.seed(iteration), momentum=len(memory),
                          memory=memory, one_call=True)
        child.meter = meter  # the step's usage: what reached the engine (a cache hit counts as one)
        return child


def calls_made(steps: tuple[Step, ...]) -> int:
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
