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

The problem is solved with scipy's L-BFGS-B with bounds fluence >= 0, in one BLAS thread (the vectors are small;
more threads only add overhead on a shared machine: 10-40x slower measured here). Each function evaluation does
one forward and one transposed product, and only over the voxels that matter: `ScreenedDose` keeps the target
rows (and the rows near their overdose level) as dense float32 copies and skips, exactly, the voxels that only
overdose objectives look at while they provably stay below their level (most of a body); the gradient goes back
only through the voxels whose objectives push.
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
    matrix = dose_influence if sp.issparse(dose_influence) and dose_influence.format == "csr" else sp.csr_matrix(
        dose_influence)
    unknown = sorted({o.structure for o in objectives} - set(structures))
    if unknown:
        raise ValueError(f"objectives name structures the case lacks: {', '.join(unknown)}")
    active = [o for o in objectives if o.weight > 0]
    rows = {o.structure: np.asarray(structures[o.structure]) for o in active}
    n_beamlets = matrix.shape[1]

    dose_of = ScreenedDose(matrix, rows, active)
    local = dose_of.local_rows

    def value_and_gradient(x: np.ndarray) -> tuple[float, np.ndarray]:
        dose = dose_of(x)
        total = 0.0
        dose_gradient = np.zeros(len(dose), dtype=np.float32)
        for o in active:
            value, grad = objective_terms(dose, local[o.structure], o)
            total += o.weight * value
            dose_gradient[local[o.structure]] += o.weight * grad  # rows are unique within a structure
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
    dose = np.asarray(matrix @ fluence.astype(matrix.dtype), dtype=np.float64)
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

    Works on the voxels some objective looks at (`voxels`, global row indices; `local_rows` maps each structure
    to positions in that order). Voxels that only overdose objectives look at (most of a body) contribute nothing
    while their dose stays at or below the level. Since dose is linear and the matrix non-negative, a voxel's dose
    at x is at most its dose at a checkpoint x_c plus, per group of beamlets, the norm of its matrix entries in
    the group times the norm of the group's fluence increases (Cauchy-Schwarz; 2.5 x tighter on TG-119 than the
    largest entry times the summed increase).

    Those voxels are held in blocks of consecutive matrix rows, as zero-copy views of the caller's matrix (on
    this VM touching fresh memory costs about 2.4 ms per MB, so copying TG-119's body rows would cost more than
    the whole optimization). A block is multiplied only when the bound of one of its voxels reaches the level;
    its checkpoint is then the current fluence (each block keeps its own). Within a block, the voxels above
    `WARM_FRACTION` of their level are bounded one by one (vectorized over all of them), the others together
    (the block's largest slack and largest group norms), so a block mixing hot and cold voxels is not multiplied
    for a bound that only its coldest voxels would pass. The voxels found near their level
    (`HOT_FRACTION`) are copied into a dense `hot` matrix, multiplied at every call and left out of the blocks'
    bounds, until they cool below `COOLED_FRACTION` of it: no fixed block order isolates them (sorted by dose per
    unit fluence, TG-119's 1,900 voxels above 30 Gy at the end still spread over 25 blocks of 512). Skipped voxels keep a placeholder dose
    of 0 (their value and gradient are exactly 0 either way). Results are exact.

    The always-computed rows (targets) and the hot rows are dense float32: a dense product streams 4 bytes per
    entry against 8-12 per non-zero and vectorizes (6 x faster on TG-119's target rows, 65 % non-zero).
    """

    GROUPS = 64  # beamlet groups of the bound (contiguous: neighbouring beamlets of one beam)
    BLOCK_ROWS = 512  # screened voxels per block at most
    DENSE_FILL = 0.3  # store rows dense from this share of non-zeros on (dense is ~9 x faster per entry)
    HOT_FRACTION = 0.9  # a voxel computed at this share of its level joins the hot rows ...
    COOLED_FRACTION = 0.7  # ... and leaves them below this share (the gap stops it going back and forth)
    WARM_FRACTION = 0.5  # voxels of a block above this share of the level get a bound of their own
    HOT_MAX_BYTES = 256 << 20  # cap on the dense hot rows (a low level could make most of a body hot)

    def __init__(self, matrix: sp.csr_matrix, rows: Mapping[str, np.ndarray], objectives: Sequence[Objective]):
        matrix = matrix.tocsr()
        if not matrix.has_canonical_format:  # the group norms need sorted column indices; never edit the caller's
            matrix = matrix.copy()
            matrix.sum_duplicates()
        self.matrix = matrix
        n, n_beamlets = matrix.shape
        level = np.full(n, np.inf)
        always = np.zeros(n, dtype=bool)
        for o in objectives:
            if o.kind in _OVERDOSE_KINDS:
                level[rows[o.structure]] = np.minimum(level[rows[o.structure]], o.dose_Gy)
            else:
                always[rows[o.structure]] = True
        is_screened = ~always & np.isfinite(level)
        always_rows = np.flatnonzero(always)
        screened = np.flatnonzero(is_screened)
        self.voxels = np.concatenate([always_rows, screened])
        self.n_always = len(always_rows)
        position = np.full(n, -1, dtype=np.int64)
        position[self.voxels] = np.arange(len(self.voxels))
        self.local_rows = {s: position[np.asarray(r)] for s, r in rows.items()}
        self.always_matrix = _operator(matrix[always_rows], self.DENSE_FILL)

        self.level = level[screened]
        # A small margin covers float32 rounding of the exact products.
        self.threshold = self.level - 1e-3 * (1.0 + self.level)
        self.trigger = self.threshold.copy()  # +inf for hot voxels: the blocks' bounds leave them out
        self.group_starts = np.array([g[0] for g in np.array_split(np.arange(n_beamlets),
                                                                   min(self.GROUPS, n_beamlets))])
        # Blocks: up to BLOCK_ROWS screened voxels whose row range holds no other non-empty row.
        blocking = ~is_screened & (np.diff(matrix.indptr) > 0)
        run = np.cumsum(blocking)[screened]
        index = np.arange(len(screened))
        run_start = np.maximum.accumulate(np.where(np.r_[True, run[1:] != run[:-1]], index, 0)) if len(run) else index
        starts = np.flatnonzero((index - run_start) % self.BLOCK_ROWS == 0)
        self.block_start = np.r_[starts, len(screened)]
        self.blocks = []
        self.group_norm = np.zeros((len(screened), len(self.group_starts)), dtype=np.float32)
        for k in range(len(self.block_start) - 1):
            p, q = self.block_start[k], self.block_start[k + 1]
            a, b = screened[p], screened[q - 1] + 1
            view = _row_range(matrix, a, b)
            offsets = screened[p:q] - a
            self.group_norm[p:q] = _row_norm_per_group(view, self.group_starts)[offsets]
            self.blocks.append((p, q, view, offsets))
        self.block_group_norm = np.zeros((len(self.blocks), len(self.group_starts)), dtype=np.float32)
        for k, (p, q, _, _) in enumerate(self.blocks):
            self.block_group_norm[k] = self.group_norm[p:q].max(axis=0)
        # Per block: the fluence it was last multiplied at (an id into `checkpoints`, -1: never) and the largest
        # (dose there - trigger) of its voxels.
        self.checkpoint_dose = np.zeros(len(screened))
        self.block_checkpoint = np.full(len(self.blocks), -1)
        self.cold_slack = np.full(len(self.blocks), np.inf)
        self.is_warm = np.zeros(len(screened), dtype=bool)
        self._warm_cache: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.checkpoints: dict[int, np.ndarray] = {}
        self._calls = 0
        # The hot set: positions among the screened voxels, and their rows (dense, grown in place).
        self.hot = np.zeros(0, dtype=np.int64)
        self.hot_rows = np.zeros((0, n_beamlets), dtype=np.float32)
        self.max_hot = max(self.HOT_MAX_BYTES // (4 * max(n_beamlets, 1)), 1)

    @property
    def screened(self) -> np.ndarray:
        """Global row indices of the screened voxels."""
        return self.voxels[self.n_always:]

    def _block_of(self, positions: np.ndarray) -> np.ndarray:
        return np.unique(np.searchsorted(self.block_start, positions, side="right") - 1)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        x32 = x.astype(np.float32)
        dose = np.zeros(len(self.voxels), dtype=np.float32)
        dose[: self.n_always] = self.always_matrix @ x32
        screened_dose = dose[self.n_always:]
        needed = self.block_checkpoint < 0
        ids = np.unique(self.block_checkpoint[~needed])
        if len(ids):
            # Norm of the positive fluence increase per beamlet group, for each live checkpoint.
            since = np.maximum(x - np.stack([self.checkpoints[i] for i in ids]), 0.0)
            increase = np.sqrt(np.add.reduceat(since * since, self.group_starts, axis=1))
            block_increase = increase[np.searchsorted(ids, np.maximum(self.block_checkpoint, ids[0]))]
            # Cold voxels: one bound per block (largest slack, largest group norms); warm ones: each its own.
            block_bound = self.cold_slack + np.einsum("kg,kg->k", self.block_group_norm, block_increase)
            for k in np.flatnonzero(~needed & (block_bound > 0)):
                p, q = self.block_start[k], self.block_start[k + 1]
                bound = self.checkpoint_dose[p:q] + self.group_norm[p:q] @ block_increase[k]
                needed[k] = np.any((bound > self.trigger[p:q]) & ~self.is_warm[p:q])
            warm, warm_block, warm_norm = self._warm()
            if len(warm):
                bound = self.checkpoint_dose[warm] + np.einsum("rg,rg->r", warm_norm, block_increase[warm_block])
                needed[warm_block[bound > self.trigger[warm]]] = True
        needed = np.flatnonzero(needed)
        self._calls += 1
        near = np.zeros(len(screened_dose), dtype=bool)
        for k in needed:
            p, q, view, offsets = self.blocks[k]
            screened_dose[p:q] = (view @ (x32 if view.dtype == np.float32 else x))[offsets]
            self.checkpoint_dose[p:q] = screened_dose[p:q]
            self.block_checkpoint[k] = self._calls
            self._classify(k)
            near[p:q] = screened_dose[p:q] > self.HOT_FRACTION * self.level[p:q]
        if len(needed):
            self.checkpoints[self._calls] = x.copy()
            live = set(np.unique(self.block_checkpoint).tolist())
            self.checkpoints = {i: c for i, c in self.checkpoints.items() if i in live}
        if len(self.hot):
            screened_dose[self.hot] = self.hot_rows[: len(self.hot)] @ x32
        near[self.hot] = False
        cooled = self.hot[screened_dose[self.hot] < self.COOLED_FRACTION * self.level[self.hot]]
        if near.any() or len(cooled):
            self._update_hot(np.flatnonzero(near), cooled)
        return dose

    def _update_hot(self, arriving: np.ndarray, cooled: np.ndarray) -> None:
        """Move the voxels at `arriving` (near their level) into the hot set and the `cooled` ones out of it."""
        if len(cooled):
            keep = ~np.isin(self.hot, cooled)
            kept = int(keep.sum())
            holes = np.flatnonzero(~keep[:kept])
            fillers = kept + np.flatnonzero(keep[kept:])
            self.hot_rows[holes] = self.hot_rows[fillers]  # in place: no fresh memory
            self.hot[holes] = self.hot[fillers]
            self.hot = self.hot[:kept]
            self.trigger[cooled] = self.threshold[cooled]
            # A voxel leaving the hot set has no dose at its block's checkpoint: multiply that block next time.
            self.block_checkpoint[self._block_of(cooled)] = -1
        arriving = arriving[: max(self.max_hot - len(self.hot), 0)]
        if len(arriving):
            size = len(self.hot) + len(arriving)
            if size > len(self.hot_rows):
                grown = np.empty((min(max(size, 2 * len(self.hot_rows), 256), self.max_hot), self.hot_rows.shape[1]),
                                 dtype=np.float32)
                grown[: len(self.hot)] = self.hot_rows[: len(self.hot)]
                self.hot_rows = grown
            _fill_dense_rows(self.hot_rows[len(self.hot): size], self.matrix, self.screened[arriving])
            self.hot = np.concatenate([self.hot, arriving])
            self.trigger[arriving] = np.inf
        for k in self._block_of(np.concatenate([arriving, cooled])):
            self._classify(k)

    def _classify(self, k: int) -> None:
        """Sort block k's voxels (not hot) into warm (near their level: bounded one by one) and cold (bounded by
        the block's largest slack) after its checkpoint dose or the hot set changed."""
        p, q = self.block_start[k], self.block_start[k + 1]
        slack = self.checkpoint_dose[p:q] - self.trigger[p:q]
        warm = self.checkpoint_dose[p:q] > self.WARM_FRACTION * self.trigger[p:q]  # never for hot (+inf)
        self.is_warm[p:q] = warm
        cold = ~warm & np.isfinite(self.trigger[p:q])
        self.cold_slack[k] = np.max(slack[cold]) if cold.any() else -np.inf
        self.block_group_norm[k] = self.group_norm[p:q][cold].max(axis=0) if cold.any() else 0.0
        self._warm_cache = None

    def _warm(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Warm voxels (positions), their blocks and their group norms, re-gathered only after a change."""
        if self._warm_cache is None:
            warm = np.flatnonzero(self.is_warm)
            block = np.searchsorted(self.block_start, warm, side="right") - 1
            self._warm_cache = (warm, block, self.group_norm[warm])
        return self._warm_cache

    def transpose_product(self, dose_gradient: np.ndarray) -> np.ndarray:
        """voxels' matrix.T @ dose_gradient; of the screened voxels, only blocks with a non-zero gradient count."""
        gradient = self.always_matrix.T @ dose_gradient[: self.n_always]
        screened_gradient = dose_gradient[self.n_always:]
        if len(self.hot):
            gradient = gradient + screened_gradient[self.hot] @ self.hot_rows[: len(self.hot)]
            screened_gradient = screened_gradient.copy()
            screened_gradient[self.hot] = 0.0  # counted once, through the hot rows
        for k in self._block_of(np.flatnonzero(screened_gradient)):
            p, q, view, offsets = self.blocks[k]
            spread = np.zeros(view.shape[0], dtype=view.dtype)
            spread[offsets] = screened_gradient[p:q]
            gradient = gradient + view.T @ spread
        return np.asarray(gradient, dtype=np.float64)


def _row_range(matrix: sp.csr_matrix, start: int, stop: int) -> sp.csr_matrix:
    """Rows start:stop of a CSR matrix sharing its data and indices (no copy)."""
    lo, hi = matrix.indptr[start], matrix.indptr[stop]
    return sp.csr_matrix((matrix.data[lo:hi], matrix.indices[lo:hi], matrix.indptr[start: stop + 1] - lo),
                         shape=(stop - start, matrix.shape[1]))


def _fill_dense_rows(out: np.ndarray, matrix: sp.csr_matrix, rows: np.ndarray) -> None:
    """out[i] = matrix[rows[i]] densely, without scipy's row gather (which allocates fresh memory per call)."""
    out[:] = 0.0
    lengths = np.diff(matrix.indptr)[rows]
    ends = np.cumsum(lengths)
    entries = np.repeat(matrix.indptr[rows] - (ends - lengths), lengths) + np.arange(ends[-1] if len(ends) else 0)
    out[np.repeat(np.arange(len(rows)), lengths), matrix.indices[entries]] = matrix.data[entries]


def _operator(block: sp.csr_matrix, dense_fill: float):
    """`block` in float32, as a dense array when at least `dense_fill` of it is non-zero (the faster product)."""
    block = block.astype(np.float32, copy=False)
    if block.shape[0] * block.shape[1] and block.nnz >= dense_fill * block.shape[0] * block.shape[1]:
        return block.toarray()
    return block


def _row_norm_per_group(matrix: sp.csr_matrix, group_starts: np.ndarray) -> np.ndarray:
    """(rows x groups) Euclidean norm of each row within each contiguous group of columns starting at group_starts."""
    out = np.zeros((matrix.shape[0], len(group_starts)), dtype=np.float32)
    if matrix.nnz == 0:
        return out
    m = matrix.tocsr()
    if not m.has_canonical_format:
        m.sum_duplicates()  # canonical: sorted column indices within each row
    group_of_column = (np.searchsorted(group_starts, np.arange(m.shape[1]), side="right") - 1).astype(np.int16)
    group = group_of_column[m.indices]
    # Runs of equal (row, group) are contiguous in CSR order: they start at a row start or a group change.
    is_start = np.r_[True, group[1:] != group[:-1]]
    is_start[m.indptr[:-1][np.diff(m.indptr) > 0]] = True
    starts = np.flatnonzero(is_start)
    row = np.searchsorted(m.indptr, starts, side="right") - 1
    out[row, group[starts]] = np.sqrt(np.add.reduceat(m.data.astype(np.float64) ** 2, starts))
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
