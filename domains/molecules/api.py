"""`optimize(start, target, engine=...)`: one TextGrad run on a molecule, with its Pareto front and history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domains.molecules.docking import DEFAULT_BACKEND, DEFAULT_EXHAUSTIVENESS, DEFAULT_SEED, DEFAULT_TARGET
from domains.molecules.tracking import MoleculeRecord, pareto_front, records_from_steps


@dataclass
class MoleculeRunResult:
    run: Any  # tgdomains.runner.RunResult
    best_smiles: str
    history: list[MoleculeRecord]  # every step's molecule with its scores
    pareto_front: list[MoleculeRecord]  # of (Vina, QED) over the whole run

    @property
    def best_evaluation(self) -> Any:
        return self.run.best_evaluation


def optimize(
    start: str = "benzene", target: str = DEFAULT_TARGET, *, engine: Any, backend: str = DEFAULT_BACKEND,
    exhaustiveness: int = DEFAULT_EXHAUSTIVENESS, docking_seed: int = DEFAULT_SEED, target_score: float | None = None,
    docking_cache: str | None = None, iterations: int = 10, objective: dict[str, Any] | None = None,
    **runner_kwargs: Any,
) -> MoleculeRunResult:
    """Optimize a molecule with textual gradients. `objective` takes the CLI's constraint keys (mw_min, mw_max,
    sa_max, no_pains, reference, min_similarity, vina_weight, qed_weight); `runner_kwargs` go to
    `tgdomains.runner.optimize` (run_dir, momentum, seed, progress ...)."""
    from domains.molecules.plugin import MoleculesDomain
    from tgdomains.run import optimize as run_optimize

    domain = MoleculesDomain()
    task = domain.load({
        "target": target, "start": start, "backend": backend, "exhaustiveness": exhaustiveness,
        "docking_seed": docking_seed, "target_score": target_score, "docking_cache": docking_cache,
        **(objective or {}),
    })
    run = run_optimize(domain, task, engine=engine, iterations=iterations, **runner_kwargs)
    history = records_from_steps(run.steps)
    return MoleculeRunResult(run=run, best_smiles=run.best_value, history=history, pareto_front=pareto_front(history))
