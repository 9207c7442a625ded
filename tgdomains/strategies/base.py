"""What every strategy is: a `Strategy` (settings as dataclass fields, `propose`) that returns `Proposal`s."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar

from tgdomains.records import StepStatus

if TYPE_CHECKING:
    from tgdomains.engines.budget import Meter
    from tgdomains.records import Step
    from tgdomains.runview import RunView


@dataclass
class Proposal:
    """One candidate a strategy asks the run to record (and evaluate, unless its value was seen before)."""

    value: str
    parent: int | None  # id of the step it improves (None: the initial step)
    feedback: str = ""  # what produced it, recorded in its step
    status: StepStatus = StepStatus.UPDATED
    problem: str = ""  # why a reply was unusable (status failed / repaired)
    meter: Meter | None = None  # the LLM usage that produced it becomes its step's usage
    budget_refused: bool = False  # set when the strategy saw a spent budget before asking
    restart: bool = False  # written from scratch, not an edit of `parent` (recorded in its step)

    @property
    def refused(self) -> bool:
        """A spent budget refused one of its LLM calls: not a step (its calls are still counted)."""
        return self.budget_refused or (self.meter is not None and self.meter.refused)


@dataclass(frozen=True)
class Selection:
    """The candidate a strategy chose as the run's result (`step`: its id), and what it reports about the choice
    (JSON-able; the run records it in best.json and in the result's `final` under "selection")."""

    step: int
    report: dict[str, Any]


@dataclass
class Strategy:
    """Base class: settings are dataclass fields; override `propose` (and `width` when it proposes several).

    A field's `metadata={"help": ..., "min": ...}` is its one description: the CLI's flag (`--NAME`, checked against
    `min`, default 0) is made from it."""

    name: ClassVar[str] = "strategy"

    def settings(self) -> dict[str, Any]:
        """What run.json records: every field but those that say how, not what (metadata `recorded=False`)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.metadata.get("recorded", True)}

    def width(self) -> int:
        """Proposals per iteration at most (sizes the evaluation threads)."""
        return 1

    def propose(self, run: RunView, iteration: int, room: int | None) -> list[Proposal]:
        """This iteration's candidates, from what `run` shows; `room` is how many more the evaluation budget allows (None: no limit)."""
        raise NotImplementedError

    def settled(self, run: RunView) -> bool:
        """Whether a best candidate that passed ends the run (the default). A strategy that still has work after a
        pass (choosing among several passing candidates) says False until it is done; budgets still stop it."""
        return True

    def select(self, run: RunView) -> Selection | None:
        """The run's result, when the strategy chooses it; None: the best candidate by rank (passed, then score)."""
        return None

    def observe(self, run: RunView, steps: list[Step]) -> None:
        """Called with the steps just recorded (ask/tell optimizers may keep a cache here; never needed to resume)."""
