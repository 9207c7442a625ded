"""TextGrad's own loop, for the benches that compare with it or were measured with it: the chain without its
restarts (every iteration edits the latest value, or the best after a worse step), and a hill climber that always
edits the best so far. Not product strategies: the chain's restarts won against edits only (bench/quality)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from tgdomains.records import Step
from tgdomains.runview import RunView
from tgdomains.strategies.tgd import Chain


@dataclass
class EditsOnly(Chain):
    name: ClassVar[str] = "chain-edits-only"

    @staticmethod
    def _stalled(run: RunView) -> bool:
        return False


@dataclass
class HillClimb(EditsOnly):
    name: ClassVar[str] = "hill-climb"

    @staticmethod
    def _current(run: RunView) -> tuple[Step, str]:
        return run.best, ""
