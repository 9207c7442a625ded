"""The `Case` type (a dose-influence matrix, structure voxel sets, the prescription, the default goals) and the .npz
format of a user's own case. Built-in cases and `load_case` are in `cases.py`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

GOALS_DIR = Path(__file__).parent / "goals"


@dataclass
class Case:
    """A planning problem. Row i of `dose_influence` is the voxel at flat index `voxel_index[i]` of `grid_shape`."""

    name: str
    dose_influence: sp.csr_matrix  # voxels x beamlets, Gy per unit fluence
    structures: dict[str, np.ndarray]  # structure name -> row indices (sorted, unique)
    targets: list[str]
    prescription_Gy: float
    default_dose_levels_Gy: dict[str, float]
    grid_shape: tuple[int, ...]
    voxel_index: np.ndarray
    voxel_size_mm: tuple[float, ...]
    default_goals: str  # path of the YAML goal file used when none is given
    description: str = ""
    primary_oars: list[str] = field(default_factory=list)  # the organs whose mean dose breaks ties in the score

    @property
    def id(self) -> str:
        return self.name

    @property
    def structure_names(self) -> list[str]:
        return list(self.structures)

    @property
    def n_beamlets(self) -> int:
        return int(self.dose_influence.shape[1])

    def volume_cc(self, structure: str) -> float:
        return len(self.structures[structure]) * float(np.prod(self.voxel_size_mm)) / 1000.0

    def overlap_pct(self, a: str, b: str) -> float:
        """Share of structure `a` (in %) that also belongs to `b`."""
        common = np.intersect1d(self.structures[a], self.structures[b], assume_unique=True)
        return 100.0 * len(common) / max(len(self.structures[a]), 1)

    def dose_grid(self, dose: np.ndarray) -> np.ndarray:
        """Per-row dose back on the full grid (zeros outside the rows)."""
        grid = np.zeros(int(np.prod(self.grid_shape)), dtype=np.float64)
        grid[self.voxel_index] = dose
        return grid.reshape(self.grid_shape)

    def mask_grid(self, structure: str) -> np.ndarray:
        grid = np.zeros(int(np.prod(self.grid_shape)), dtype=bool)
        grid[self.voxel_index[self.structures[structure]]] = True
        return grid.reshape(self.grid_shape)



# --- a user's own case --------------------------------------------------------------------------------------------


def load_npz_case(path: str | Path) -> Case:
    """A case from an `.npz` file with these arrays:

    * ``dij_data``, ``dij_indices``, ``dij_indptr``, ``dij_shape``: the voxels x beamlets dose-influence matrix in
      CSR form (Gy per unit fluence), i.e. ``scipy.sparse.csr_matrix((data, indices, indptr), shape)``;
    * ``structure_<name>``: for each structure, the row indices (integers) of its voxels;
    * ``targets``: the target structure names (strings);
    * ``prescription_Gy``: a scalar.

    Optional: ``dose_level_<name>`` (a scalar: the structure's default dose level, else Rx for targets and
    60% of Rx for the others), ``grid_shape`` and ``voxel_index`` (rows on a grid, for dose-slice plots; default a
    1-D grid), ``voxel_size_mm`` (default 1 mm), ``goals`` (path of a YAML goal file; default none, so the user
    passes ``--goals``), ``name``. `save_npz_case` writes this format.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"case file {path} does not exist")
    with np.load(path, allow_pickle=False) as data:
        keys = set(data.files)
        missing = {"dij_data", "dij_indices", "dij_indptr", "dij_shape", "targets", "prescription_Gy"} - keys
        if missing:
            raise ValueError(f"case file {path} lacks the arrays {', '.join(sorted(missing))}")
        shape = tuple(int(s) for s in data["dij_shape"])
        matrix = sp.csr_matrix((data["dij_data"], data["dij_indices"], data["dij_indptr"]), shape=shape)
        structures = {k[len("structure_") :]: np.unique(data[k].astype(np.int64)) for k in data.files if k.startswith("structure_")}
        if not structures:
            raise ValueError(f"case file {path} has no structure_<name> arrays")
        for name, rows in structures.items():
            if rows.size and (rows.min() < 0 or rows.max() >= shape[0]):
                raise ValueError(f"case file {path}: structure {name!r} has row indices outside 0..{shape[0] - 1}")
        targets = [str(t) for t in np.atleast_1d(data["targets"])]
        unknown = [t for t in targets if t not in structures]
        if unknown:
            raise ValueError(f"case file {path}: targets {unknown} are not among the structures {sorted(structures)}")
        rx = float(data["prescription_Gy"])
        levels = {
            s: float(data[f"dose_level_{s}"]) if f"dose_level_{s}" in keys else (rx if s in targets else 0.6 * rx)
            for s in structures
        }
        grid_shape = tuple(int(g) for g in data["grid_shape"]) if "grid_shape" in keys else (shape[0],)
        voxel_index = data["voxel_index"].astype(np.int64) if "voxel_index" in keys else np.arange(shape[0])
        voxel_size = tuple(float(v) for v in data["voxel_size_mm"]) if "voxel_size_mm" in keys else (1.0,) * len(grid_shape)
        goals = str(data["goals"]) if "goals" in keys else ""
        name = str(data["name"]) if "name" in keys else path.stem
    return Case(
        name=name,
        dose_influence=matrix.astype(np.float32),
        structures=structures,
        targets=targets,
        prescription_Gy=rx,
        default_dose_levels_Gy=levels,
        grid_shape=grid_shape,
        voxel_index=voxel_index,
        voxel_size_mm=voxel_size,
        default_goals=goals,
        description=f"user case from {path.name}: {shape[0]} voxels, {shape[1]} beamlets, prescription {rx:g} Gy",
        primary_oars=[s for s in structures if s not in targets and s.lower() != "body"][:2],
    )


def save_npz_case(case: Case, path: str | Path) -> None:
    """Write `case` in the `.npz` format `load_npz_case` reads."""
    m = case.dose_influence.tocsr()
    arrays: dict[str, Any] = {
        "dij_data": m.data,
        "dij_indices": m.indices,
        "dij_indptr": m.indptr,
        "dij_shape": np.array(m.shape),
        "targets": np.array(case.targets),
        "prescription_Gy": np.array(case.prescription_Gy),
        "grid_shape": np.array(case.grid_shape),
        "voxel_index": case.voxel_index,
        "voxel_size_mm": np.array(case.voxel_size_mm),
        "name": np.array(case.name),
    }
    if case.default_goals:
        arrays["goals"] = np.array(case.default_goals)
    for s, rows in case.structures.items():
        arrays[f"structure_{s}"] = rows
        arrays[f"dose_level_{s}"] = np.array(case.default_dose_levels_Gy[s])
    np.savez_compressed(path, **arrays)

