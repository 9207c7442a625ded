"""Molecules domain: SMILES optimized for AutoDock Vina docking on the DOCKSTRING targets and drug-likeness (QED).

    from domains import molecules
    molecules.property_panel("CC(=O)Nc1ccc(O)cc1")       # qed, sa, logp, mw, tpsa, alerts ...
    molecules.dock("CC(=O)Nc1ccc(O)cc1", "DRD2", backend="vina", exhaustiveness=4)
    result = molecules.optimize("benzene", "DRD2", engine=engine)   # tgdomains.run.RunResult, any strategy
    molecules.records_from_steps(result.steps)             # every molecule with Vina, QED, novelty

Importing this package is cheap: RDKit, Vina and friends load inside the functions that use them.
"""

from typing import Any

from domains.molecules.baselines import GraphGA
from domains.molecules.chemistry import (
    LEADS,
    NAMED_STARTS,
    SmilesError,
    alerts,
    canonical_smiles,
    extract_smiles,
    property_panel,
    resolve_start,
    tanimoto,
)
from domains.molecules.docking import Docker, DockingCache, DockingResult, DockingSettings, dock, list_targets
from domains.molecules.evaluator import MoleculeEvaluator, MoleculeTask
from domains.molecules.guided_ga import GuidedGA
from domains.molecules.objective import Objective
from domains.molecules.plugin import MoleculesDomain
from domains.molecules.tracking import MoleculeRecord, pareto_front, read_records, records_from_steps

__all__ = [
    "LEADS", "NAMED_STARTS", "Docker", "DockingCache", "DockingResult", "DockingSettings", "GraphGA", "GuidedGA",
    "MoleculeEvaluator",
    "MoleculeRecord", "MoleculeTask", "MoleculesDomain", "Objective", "SmilesError", "alerts",
    "canonical_smiles", "dock", "extract_smiles", "list_targets", "optimize", "pareto_front",
    "property_panel", "read_records", "records_from_steps", "resolve_start", "tanimoto",
]


def optimize(start: str = "benzene", target: str = "DRD2", *, engine: Any = None, strategy: str | None = None,
             **settings: Any) -> Any:
    """Optimize a molecule from `start` for `target` with any strategy; returns `tgdomains.run.RunResult`.

    `settings` take the CLI's molecule keys (backend, exhaustiveness, docking_seed, target_score, docking_cache,
    docking_workers, docking_time_limit, vina_weight, qed_weight, mw_min, mw_max, sa_max, no_pains, reference, min_similarity,
    lead) and
    `tgdomains.run.optimize`'s (run_dir, iterations, seed, budgets, the strategy's settings, progress ...).
    """
    from tgdomains.run import optimize as run

    domain = MoleculesDomain()
    keys = {"backend", "exhaustiveness", "docking_seed", "target_score", "docking_cache", "docking_workers",
            "docking_time_limit",
            "vina_weight", "qed_weight", "mw_min", "mw_max", "sa_max", "no_pains", "reference", "min_similarity", "lead"}
    args = {"target": target, "start": start, **{k: v for k, v in settings.items() if k in keys}}
    rest = {k: v for k, v in settings.items() if k not in keys}
    return run(domain, args, engine=engine, strategy=strategy, **rest)
