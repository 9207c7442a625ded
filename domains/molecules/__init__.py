"""Molecules domain: SMILES optimized for AutoDock Vina docking on the DOCKSTRING targets and drug-likeness (QED).

    from domains import molecules
    molecules.property_panel("CC(=O)Nc1ccc(O)cc1")       # qed, sa, logp, mw, tpsa, alerts ...
    molecules.dock("CC(=O)Nc1ccc(O)cc1", "DRD2", backend="vina", exhaustiveness=4)
    molecules.optimize("benzene", "DRD2", engine=engine)  # TextGrad run: best molecule, Pareto front, history

Importing this package is cheap: RDKit, Vina and friends load inside the functions that use them.
"""

from domains.molecules.api import MoleculeRunResult, optimize
from domains.molecules.baselines import GraphGA
from domains.molecules.chemistry import (
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
from domains.molecules.objective import Objective
from domains.molecules.plugin import MoleculesDomain
from domains.molecules.tracking import MoleculeRecord, pareto_front, read_records

__all__ = [
    "NAMED_STARTS", "Docker", "DockingCache", "DockingResult", "DockingSettings", "GraphGA", "MoleculeEvaluator",
    "MoleculeRecord", "MoleculeRunResult", "MoleculeTask", "MoleculesDomain", "Objective", "SmilesError", "alerts",
    "canonical_smiles", "dock", "extract_smiles", "list_targets", "optimize", "pareto_front",
    "property_panel", "read_records", "resolve_start", "tanimoto",
]
