"""`plan(case, hyperparameters)`: hyperparameters -> fluence objectives -> optimized fluence and dose."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from domains.radiotherapy.cases import Case, load_case
from domains.radiotherapy.fluence import FluenceResult, fluence_optimize
from domains.radiotherapy.hyperparameters import (
    Hyperparameters,
    objectives_for,
    parse_hyperparameters,
    validate,
)


@dataclass
class Plan:
    case: Case
    hyperparameters: Hyperparameters
    fluence: np.ndarray  # beamlet weights
    dose: np.ndarray  # Gy per voxel row of the case
    optimization: FluenceResult

    def structure_dose(self, structure: str) -> np.ndarray:
        return self.dose[self.case.structures[structure]]


def plan(
    case: Case | str,
    hyperparameters: Hyperparameters | str,
    *,
    x0: np.ndarray | None = None,
    max_iterations: int = 500,
) -> Plan:
    """Optimize the fluence for `hyperparameters` (a dict or JSON text) on `case` (a `Case` or its name/path).

    `x0` warm-starts the optimizer (e.g. from a previous plan's fluence). Raises `HyperparameterError` for bad input.
    """
    case = load_case(case)
    if isinstance(hyperparameters, str):
        hp = parse_hyperparameters(hyperparameters, case)
    else:
        hp = validate(hyperparameters, case)
    result = fluence_optimize(
        case.dose_influence, case.structures, objectives_for(hp, case), x0=x0, max_iterations=max_iterations
    )
    return Plan(case=case, hyperparameters=hp, fluence=result.fluence, dose=result.dose, optimization=result)
