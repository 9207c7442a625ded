"""Fluence map optimization: non-negative beamlet weights minimizing a weighted sum of dose objectives.

Each objective is averaged over its structure's voxels (so a weight means the same for a small and a large organ)
and multiplied by its weight:

* ``squared_deviation``  (d - D)^2            target: hit the dose level from both sides
* ``squared_underdose``  min(d - D, 0)^2      target: at least D
* ``squared_overdose``   max(d - D, 0)^2      organ at risk: at most D
* ``mean``               d                     organ at risk: mean dose (linear)
* ``max``                (mean(max(d - D, 0)^p))^(2/p), p = 8   a smooth stand-in for the squared max overdose
* ``max_dvh``            (d - D)^2 for voxels above D that lie outside the hottest `volume_pct` %   (V_D <= v)
* ``min_dvh``            (d - D)^2 for voxels below D that lie inside the hottest `volume_pct` %    (V_D >= v)

The problem is solved with scipy's L-BFGS-B with bounds fluence >= 0, on the float32 sparse matrix, in one BLAS
thread (the vectors are small; more threads only add overhead on a shared machine: 10-40x slower measured here).
Each function evaluation multiplies the matrix once; `ScreenedDose` skips, exactly, the voxels that only overdose
objectives look at while they provably stay below their level (most of a body), and the gradient goes back only
through the voxels whose objectives push.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

KINDS = ("squared_deviation", "squared_underdose", "squared_overdose", "mean", "max", "max_dvh", "min_dvh")
_MAX_P = 8.0


@dataclass(frozen=True)
class Objective:
    structure: str
    kind: str
    weight: float
    dose_Gy: float = 0.0
    volume_pct: float = 0.0  # only for the DVH kinds

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"objective kind {self.kind!r} is not one of {', '.join(KINDS)}")


@dataclass
class FluenceResult:
    fluence: np.ndarray  # beamlet weights, >= 0
    dose: np.ndarray  # Gy per voxel row
    objective_value: float
    iterations: int
    seconds: float
    converged: bool
    message: str


@contextlib.contextmanager
def single_blas_thread() -> Iterator[None]:
    """Limit BLAS to one thread while optimizing, if threadpoolctl is installed (a no-op otherwise)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def objective_terms(dose: np.ndarray, rows: np.ndarray, objective: Objective) -> tuple[float, np.ndarray]:
    """One objective's (unweighted) value and its gradient with respect to the dose of `rows`."""
    d = dose[rows]
    n = max(len(rows), 1)
    level = objective.dose_Gy
    kind = objective.kind
    if kind == "squared_deviation":
        diff = d - level
    elif kind == "squared_underdose":
        diff = np.minimum(d - level, 0.0)
    elif kind == "squared_overdose":
        diff = np.maximum(d - level, 0.0)
    elif kind == "mean":
        return float(d.sum() / n), np.full(len(rows), 1.0 / n)
    elif kind == "max":
        over = np.maximum(d - level, 0.0)
        moment = float(np.mean(over**_MAX_P))
        if moment <= 0.0:
            return 0.0, np.zeros(len(rows))
        value = moment ** (2.0 / _MAX_P)
        grad = (2.0 / _MAX_P) * moment ** (2.0 / _MAX_P - 1.0) * _MAX_P * over ** (_MAX_P - 1.0) / n
        return value, grad
    elif kind in ("max_dvh", "min_dvh"):
        # Dose at the volume fraction: voxels beyond it (on the wrong side of D) are pushed back to D.
        dose_at_volume = np.quantile(d, 1.0 - objective.volume_pct / 100.0) if len(d) else level
        if kind == "max_dvh":
            mask = (d > level) & (d < dose_at_volume)
        else:
            mask = (d < level) & (d > dose_at_volume)
        diff = np.where(mask, d - level, 0.0)
    else:  # pragma: no cover - guarded in Objective.__post_init__
        raise ValueError(kind)
    return float(np.dot(diff, diff) / n), 2.0 * diff / n


def fluence_optimize(
    dose_influence: sp.spmatrix,
    structures: Mapping[str, np.ndarray],
    objectives: Sequence[Objective],
    *,
    x0: np.ndarray | None = None,
    max_iterations: int = 400,
    relative_tolerance: float = 1e-7,
    callback: Callable[[float], None] | None = None,
) -> FluenceResult:
    """Minimize the weighted objectives over fluence >= 0 with L-BFGS-B, starting from `x0` (warm start).

    Without `x0`, all beamlets start equal, scaled so the targets' mean dose equals their dose level.
    `callback(objective_value)` is called after every iteration (for convergence traces).
    """
    from scipy.optimize import minimize

    start = time.perf_counter()
    full_matrix = sp.csr_matrix(dose_influence, dtype=np.float32)
    unknown = sorted({o.structure for o in objectives} - set(structures))
    if unknown:
        raise ValueError(f"objectives name structures the case lacks: {', '.join(unknown)}")
    active = [o for o in objectives if o.weight > 0]
    matrix = full_matrix
    rows = {o.structure: np.asarray(structures[o.structure]) for o in active}
    n_voxels, n_beamlets = matrix.shape

    dose_of = ScreenedDose(matrix, rows, active)

    def value_and_gradient(x: np.ndarray) -> tuple[float, np.ndarray]:
        dose = dose_of(x)
        total = 0.0
        dose_gradient = np.zeros(n_voxels, dtype=np.float32)
        for o in active:
            value, grad = objective_terms(dose, rows[o.structure], o)
            total += o.weight * value
            dose_gradient[rows[o.structure]] += o.weight * grad  # rows are unique within a structure
        return total, dose_of.transpose_product(dose_gradient)

    if x0 is None:
        x0 = _uniform_start(matrix, rows, active)
    x0 = np.asarray(x0, dtype=np.float64)
    if x0.shape != (n_beamlets,):
        raise ValueError(f"warm-start fluence has shape {x0.shape}, the matrix has {n_beamlets} beamlets")
    x0 = np.maximum(x0, 0.0)
    with single_blas_thread():
        result = minimize(
            value_and_gradient,
            x0,
            jac=True,
            method="L-BFGS-B",
            bounds=[(0.0, None)] * n_beamlets,
            options={"maxiter": max_iterations, "ftol": relative_tolerance, "gtol": 1e-10, "maxcor": 20},
            callback=_objective_callback(callback) if callback else None,
        )
    fluence = np.maximum(result.x, 0.0)
    dose = (matrix @ fluence.astype(np.float32)).astype(np.float64)
    return FluenceResult(
        fluence=fluence,
        dose=dose,
        objective_value=float(result.fun),
        iterations=int(result.nit),
        seconds=time.perf_counter() - start,
        converged=bool(result.success),
        message=str(result.message),
    )


# Kinds whose value and gradient are exactly zero for a voxel at or below the dose level.
_OVERDOSE_KINDS = ("squared_overdose", "max")


class ScreenedDose:
    """The dose of every optimized voxel for a fluence, skipping voxels provably below their overdose levels.

    Voxels that only overdose objectives look at (most of a body) contribute nothing while their dose stays at or
    below the level. Since dose is linear and the matrix non-negative, a voxel's dose at x is at most its dose at a
    checkpoint x_c plus, per group of beamlets, its largest matrix entry in the group times the group's total
    fluence increase. Voxels whose bound stays at or below their level keep a placeholder dose of 0 (their value
    and gradient are exactly 0 either way); the others are computed exactly, a block of voxels at a time (blocks
    hold voxels in order of decreasing dose per unit uniform fluence, so the ones that need computing fill few
    blocks). The checkpoint is
    refreshed with a full product when more than a quarter of the blocks would be needed. Results are exact.
    """

    GROUPS = 64
    BLOCK_ROWS = 512

    def __init__(self, matrix: sp.csr_matrix, rows: Mapping[str, np.ndarray], objectives: Sequence[Objective]):
        self.matrix = matrix
        n = matrix.shape[0]
        level = np.full(n, np.inf)
        always = np.zeros(n, dtype=bool)
        for o in objectives:
            if o.kind in _OVERDOSE_KINDS:
                level[rows[o.structure]] = np.minimum(level[rows[o.structure]], o.dose_Gy)
            else:
                always[rows[o.structure]] = True
        self.always = np.flatnonzero(always)
        screened = np.flatnonzero(~always & np.isfinite(level))
        # Hottest first (dose per unit uniform fluence): the voxels that need computing gather in few blocks.
        hottest_first = np.argsort(-np.asarray(matrix[screened].sum(axis=1)).ravel(), kind="stable")
        self.screened = screened[hottest_first]
        self.level = level[self.screened]
        self.always_matrix = matrix[self.always]
        starts = np.arange(0, len(self.screened), self.BLOCK_ROWS)
        self.block_starts = starts
        self.blocks = [(a, min(a + self.BLOCK_ROWS, len(self.screened)), matrix[self.screened[a : a + self.BLOCK_ROWS]])
                       for a in starts]
        self.groups = np.array_split(np.arange(matrix.shape[1]), min(self.GROUPS, matrix.shape[1]))
        self.group_max = np.zeros((len(self.screened), len(self.groups)))
        for a, b, block in self.blocks:
            self.group_max[a:b] = _row_max_per_group(block, self.groups)
        self.checkpoint: np.ndarray | None = None
        self.checkpoint_dose: np.ndarray | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x32 = x.astype(np.float32)
        dose = np.zeros(self.matrix.shape[0], dtype=np.float32)
        dose[self.always] = self.always_matrix @ x32
        if len(self.screened) == 0:
            return dose
        if self.checkpoint is not None:
            increase = np.maximum(x - self.checkpoint, 0.0)
            bound = self.checkpoint_dose + self.group_max @ np.array([increase[g].sum() for g in self.groups])
            # A small margin covers float32 rounding of the exact products.
            needed = np.flatnonzero(bound > self.level - 1e-3 * (1.0 + self.level))
            blocks = self._covering(needed)
            if len(blocks) <= len(self.blocks) // 4:
                for a, b, block in blocks:
                    dose[self.screened[a:b]] = block @ x32
                return dose
        screened_dose = np.concatenate([block @ x32 for _, _, block in self.blocks])
        self.checkpoint, self.checkpoint_dose = x.copy(), screened_dose.astype(np.float64)
        dose[self.screened] = screened_dose
        return dose

    def transpose_product(self, dose_gradient: np.ndarray) -> np.ndarray:
        """matrix.T @ dose_gradient; of the screened voxels, only those with a non-zero gradient are multiplied."""
        gradient = self.always_matrix.T @ dose_gradient[self.always]
        screened_gradient = dose_gradient[self.screened]
        pushing = np.flatnonzero(screened_gradient)
        for a, b, block in self._covering(pushing):
            gradient = gradient + block.T @ screened_gradient[a:b]
        return np.asarray(gradient, dtype=np.float64)

    def _covering(self, positions: np.ndarray) -> list[tuple[int, int, sp.csr_matrix]]:
        """The blocks holding the screened voxels at `positions`."""
        return [self.blocks[i] for i in np.unique(positions // self.BLOCK_ROWS)]


def _row_max_per_group(matrix: sp.csr_matrix, groups: list[np.ndarray]) -> np.ndarray:
    """(rows x groups) largest entry of each row within each contiguous group of columns."""
    out = np.zeros((matrix.shape[0], len(groups)))
    if matrix.nnz == 0:
        return out
    m = matrix.tocsr()
    if not m.has_canonical_format:
        m.sum_duplicates()  # canonical: sorted column indices within each row
    group_of_column = np.zeros(m.shape[1], dtype=np.int16)
    for k, g in enumerate(groups):
        group_of_column[g] = k
    group = group_of_column[m.indices]
    # Runs of equal (row, group) are contiguous in CSR order: they start at a row start or a group change.
    is_start = np.r_[True, group[1:] != group[:-1]]
    is_start[m.indptr[:-1][np.diff(m.indptr) > 0]] = True
    starts = np.flatnonzero(is_start)
    row = np.searchsorted(m.indptr, starts, side="right") - 1
    out[row, group[starts]] = np.maximum.reduceat(m.data, starts)
    return out


def _objective_callback(callback: Callable[[float], None]) -> Callable:
    # scipy passes the OptimizeResult (with .fun) only to a callback whose parameter has this exact name.
    def on_iteration(intermediate_result) -> None:
        callback(float(intermediate_result.fun))

    return on_iteration


def _uniform_start(matrix: sp.csr_matrix, rows: Mapping[str, np.ndarray], objectives: Sequence[Objective]) -> np.ndarray:
    ones = np.ones(matrix.shape[1], dtype=np.float32)
    target_kinds = ("squared_deviation", "squared_underdose", "min_dvh")
    targets = [o for o in objectives if o.kind in target_kinds and o.dose_Gy > 0]
    if not targets:
        return ones.astype(np.float64)
    target_rows = np.unique(np.concatenate([rows[o.structure] for o in targets]))
    mean_dose = float((matrix[target_rows] @ ones).mean()) if len(target_rows) else 0.0
    level = float(np.mean([o.dose_Gy for o in targets]))
    return np.full(matrix.shape[1], level / mean_dose if mean_dose > 0 else 1.0)
