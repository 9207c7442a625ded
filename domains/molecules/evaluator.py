"""A molecule's verdict: RDKit properties and alerts, Vina docking on one target, the objective, and the loss text.

`evaluate` is a pure function of (SMILES, task) plus the docking cache: an invalid SMILES is rejected with its reason
before any docking, and a docked molecule is never docked again with the same settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from domains.molecules.chemistry import SmilesError, alerts, canonical_smiles, property_panel, tanimoto
from domains.molecules.docking import DEFAULT_TARGET, Docker, DockingResult, DockingSettings
from domains.molecules.objective import Objective
from tgdomains.evaluation import Evaluation

if TYPE_CHECKING:
    from domains.molecules.worker_pool import WorkerPool


@dataclass
class MoleculeTask:
    """One instance: design a molecule for `target`, starting from `start` (canonical SMILES)."""

    target: str = DEFAULT_TARGET
    start: str = "c1ccccc1"
    objective: Objective = field(default_factory=Objective)
    docking: DockingSettings = field(default_factory=DockingSettings)
    smiles: str | None = None  # a molecule to evaluate (CLI `evaluate --smiles`), not part of the task itself

    @property
    def id(self) -> str:
        return f"{self.target}:{self.start}"


@dataclass
class MoleculeEvaluator:
    """Scores SMILES for one task. Keeps a `Docker`, so its counters say how much docking was done."""

    task: MoleculeTask
    docker: Docker | None = None
    pool: WorkerPool | None = None  # worker processes shared with other evaluators (the domain's); default: own

    def _docker(self) -> Docker:
        if self.docker is None:
            self.docker = Docker(self.task.docking, pool=self.pool)
        return self.docker

    def evaluate(self, smiles: str) -> Evaluation:
        return self.evaluate_many([smiles])[0]

    def evaluate_many(self, smiles_list: list[str]) -> list[Evaluation]:
        """Every molecule's Evaluation, docking the valid ones in parallel; never raises for a bad SMILES."""
        canonical: list[str | SmilesError] = []
        for smiles in smiles_list:
            try:
                canonical.append(canonical_smiles(smiles))
            except SmilesError as error:
                canonical.append(error)
        valid = list(dict.fromkeys(s for s in canonical if isinstance(s, str)))
        docked = dict(zip(valid, self._docker().dock_many(valid, self.task.target), strict=True)) if valid else {}
        return [
            _invalid_smiles(raw, item) if isinstance(item, SmilesError) else self._verdict(item, docked[item])
            for raw, item in zip(smiles_list, canonical, strict=True)
        ]

    def _verdict(self, smiles: str, docking: DockingResult) -> Evaluation:
        task = self.task
        metrics = property_panel(smiles)
        metrics["similarity_to_start"] = tanimoto(smiles, task.start)
        if task.objective.reference:
            metrics["similarity_to_reference"] = tanimoto(smiles, canonical_smiles(task.objective.reference))
        found_alerts = alerts(smiles)
        details: dict[str, Any] = {"smiles": smiles, "target": task.target, "alerts": found_alerts,
                                   "docking": docking.to_dict()}
        if not docking.ok:
            reason = (f"{smiles} is valid chemistry but could not be docked into {task.target}: {docking.error}. "
                      "Try a different, drug-like molecule.")
            return Evaluation(score=float("-inf"), metrics=metrics, passed=False, valid=False, text=reason,
                              details=details)
        metrics["vina"] = docking.vina
        violations = task.objective.violations(metrics)
        metrics["objective"] = task.objective.value(docking.vina, metrics["qed"])
        metrics["constraint_violations"] = float(len(violations))
        score = task.objective.score(docking.vina, metrics["qed"], len(violations))
        target_score = task.objective.target_score
        passed = target_score is not None and not violations and score >= target_score
        details["violations"] = violations
        text = loss_text(smiles, task, metrics, violations, found_alerts, score)
        return Evaluation(score=score, metrics=metrics, passed=passed, valid=True, text=text, details=details)


def _invalid_smiles(raw: str, error: SmilesError) -> Evaluation:
    return Evaluation.invalid(f"Invalid SMILES, not docked: {error}", details={"smiles": raw, "stage": "smiles"})


def loss_text(
    smiles: str, task: MoleculeTask, metrics: dict[str, float], violations: list[str],
    found_alerts: dict[str, list[str]], score: float,
) -> str:
    """What the LLM reads: violations first, then the objective's terms and which dominates, then alerts."""
    objective = task.objective
    vina, qed = metrics["vina"], metrics["qed"]
    vina_term, qed_term = objective.vina_weight * vina, objective.qed_weight * (1 - qed)
    lines = []
    for violation in violations:
        lines.append(f"CONSTRAINT VIOLATED: {violation} (score penalty {objective.constraint_penalty:g}).")
    lines.append(
        f"{smiles} on {task.target}: objective {objective.vina_weight:g}×Vina + {objective.qed_weight:g}×(1 − QED) = "
        f"{metrics['objective']:.2f} (lower is better; score {score:.2f}, higher is better)."
    )
    lines.append(f"Vina docking score {vina:.2f} kcal/mol (more negative binds better); "
                 f"QED {qed:.2f} (1 − QED = {1 - qed:.2f}; 1 is most drug-like).")
    if abs(vina_term) >= qed_term:
        lines.append(f"The Vina term ({vina_term:+.2f}) dominates: stronger predicted binding to {task.target} "
                     f"gains the most; the QED term adds {qed_term:+.2f}.")
    else:
        lines.append(f"The drug-likeness term ({qed_term:+.2f}) dominates: raising QED gains the most; "
                     f"the Vina term is {vina_term:+.2f}.")
    lines.append(
        f"Properties: MW {metrics['mw']:.1f} g/mol, logP {metrics['logp']:.2f}, TPSA {metrics['tpsa']:.1f} Å², "
        f"HBD {int(metrics['hbd'])}, HBA {int(metrics['hba'])}, rotatable bonds {int(metrics['rotatable_bonds'])}, "
        f"SA score {metrics['sa']:.2f} (1 easy to 10 hard to make), "
        f"Lipinski violations {int(metrics['lipinski_violations'])}, "
        f"Tanimoto similarity to the start {metrics['similarity_to_start']:.2f}."
    )
    if found_alerts["pains"]:
        lines.append(f"PAINS alerts (assay interference): {', '.join(found_alerts['pains'])}.")
    if found_alerts["brenk"]:
        lines.append(f"Brenk alerts (unwanted groups): {', '.join(found_alerts['brenk'])}.")
    return "\n".join(lines)

