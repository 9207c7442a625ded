"""Strategies the committed tables replay that are not the product's: each lost its measurement (bench/quality/README.md).

    guided-tpe-interleaved  the LLM-guided TPE with one more LLM trial after every `every` TPE trials, shown the study's
                            best plan and the best trials with their failing goals (radiotherapy-bo: it met every goal
                            on fewer seeds than the warm start alone, for up to 4 more calls)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from domains.radiotherapy.guided import TPE_FEEDBACK, GuidedTPE, calls_made
from tgdomains.runview import RunView


@dataclass
class InterleavedGuidedTPE(GuidedTPE):
    name: ClassVar[str] = "guided-tpe-interleaved"
    every: int = 6  # TPE trials between two LLM trials after the warm start

    def check(self) -> InterleavedGuidedTPE:
        super().check()
        if self.every < 1:
            raise ValueError(f"every must be >= 1, got {self.every}")
        return self

    def _llm_turn(self, run: RunView) -> bool:
        if super()._llm_turn(run):
            return True
        if calls_made(run.steps) >= self.llm_calls:
            return False
        trials = run.steps[1:]
        llm = [i for i, s in enumerate(trials) if s.feedback != TPE_FEEDBACK]
        since = len(trials) - 1 - llm[-1] if llm else len(trials)
        return since >= self.every


BENCH_STRATEGIES = {s.name: s for s in (InterleavedGuidedTPE,)}
