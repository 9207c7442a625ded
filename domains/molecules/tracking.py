"""Every molecule a run scored, its Pareto front of (Vina, QED) and its novelty, from the run's steps.jsonl."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from tgdomains.records import RunRecord, Step


@dataclass(frozen=True)
class MoleculeRecord:
    """One scored molecule of a run. `vina`, `qed` and `score` are None when it was invalid or failed to dock."""

    iteration: int
    smiles: str
    valid: bool
    score: float | None
    vina: float | None
    qed: float | None
    similarity_to_start: float | None  # Tanimoto; novelty is 1 − this

    @property
    def novelty(self) -> float | None:
        return None if self.similarity_to_start is None else 1.0 - self.similarity_to_start


def records_from_steps(steps: list[Step]) -> list[MoleculeRecord]:
    """One record per step, duplicates included, in order."""
    return [MoleculeRecord(iteration=step.iteration, smiles=step.value, valid=step.evaluation.valid,
                           score=step.score, vina=_finite(step.evaluation.metrics.get("vina")),
                           qed=_finite(step.evaluation.metrics.get("qed")),
                           similarity_to_start=_finite(step.evaluation.metrics.get("similarity_to_start")))
            for step in steps]


def read_records(run_dir: str | Path) -> list[MoleculeRecord]:
    """The records of a run directory (a torn last line from a killed run is skipped, never repaired here)."""
    return records_from_steps(RunRecord(run_dir).read_steps(repair=False))


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def pareto_front(records: list[MoleculeRecord]) -> list[MoleculeRecord]:
    """Distinct docked molecules no other beats on both lower Vina and higher QED, sorted by Vina."""
    docked: dict[str, MoleculeRecord] = {}
    for record in records:
        if record.valid and record.vina is not None and record.qed is not None:
            docked.setdefault(record.smiles, record)
    candidates = list(docked.values())
    front = [
        a for a in candidates
        if not any(b.vina <= a.vina and b.qed >= a.qed and (b.vina < a.vina or b.qed > a.qed) for b in candidates)
    ]
    return sorted(front, key=lambda r: r.vina)


def best_molecules(records: list[MoleculeRecord], count: int = 8) -> list[MoleculeRecord]:
    """The highest-scoring distinct valid molecules."""
    distinct: dict[str, MoleculeRecord] = {}
    for record in records:
        if record.valid and record.score is not None:
            distinct.setdefault(record.smiles, record)
    return sorted(distinct.values(), key=lambda r: -r.score)[:count]
