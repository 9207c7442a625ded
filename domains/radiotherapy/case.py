"""The `Case` type (a dose-influence matrix, structure voxel sets, the prescription, the default goals) and the .npz
format of a user's own case. Built-in cases and `load_case` are in `cases.py`."""

from __future__ import annotations

import math
import os
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


# Bounds of a user's case file (it may come from someone else): the prostate 3-D case's matrix is ~40 MB.
MAX_CASE_FILE_BYTES = 2 << 30  # the .npz as stored
MAX_CASE_ARRAY_BYTES = 4 << 30  # all arrays inflated together (each zip member's size is checked before reading)
MAX_CASE_DIMENSION = 50_000_000  # voxels, beamlets or grid points
MAX_STRUCTURES = 1000
MAX_TEXT = 4096  # a name, a goal file path


class CaseFileError(ValueError):
    """A case file that cannot be used; the message is one line naming the file and what is wrong."""


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

    The file is checked before anything is built from it: no link followed, every zip member's inflated size and
    every array's dtype and shape within bounds before it is read, no pickled objects, the CSR structure consistent
    (an index out of range would crash the sparse code), every dose value and scalar finite. Any problem is one
    `CaseFileError` line naming the file.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise FileNotFoundError(f"case file {path} does not exist")
    return _case_from_arrays(read_npz_arrays(path), path)


def read_npz_arrays(path: Path, what: str = "case file") -> dict[str, np.ndarray]:
    """Every array of the .npz at `path` (no link followed), each checked (inflated size, dtype, shape) before it
    is read; `CaseFileError` naming the file otherwise."""
    from tgdomains.files import UnsafeFileError, open_regular

    try:
        fd = open_regular(path, what=what)
    except UnsafeFileError as exc:
        raise CaseFileError(str(exc)) from None
    with open(fd, "rb") as handle:
        if os.fstat(handle.fileno()).st_size > MAX_CASE_FILE_BYTES:
            raise CaseFileError(f"{what} {path} is larger than {MAX_CASE_FILE_BYTES:,} bytes")
        return _read_arrays(handle, lambda problem: CaseFileError(f"{what} {path}: {problem}"))


def _read_arrays(handle: Any, bad: Any) -> dict[str, np.ndarray]:
    import zipfile

    from numpy.lib import format as npy

    try:
        archive = zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise bad(f"not an .npz archive ({exc})") from None
    with archive:
        members = archive.infolist()
        total = sum(m.file_size for m in members)
        if len(members) > 4 * MAX_STRUCTURES or total > MAX_CASE_ARRAY_BYTES:
            raise bad(f"{len(members)} arrays inflating to {total:,} bytes, over the limit of "
                      f"{MAX_CASE_ARRAY_BYTES:,}")
        arrays: dict[str, np.ndarray] = {}
        for member in members:
            name = member.filename[:-4] if member.filename.endswith(".npy") else member.filename
            try:
                with archive.open(member) as stream:
                    version = npy.read_magic(stream)
                    if version not in ((1, 0), (2, 0)):
                        raise bad(f"array {name[:60]!r} is in .npy format {version}, not 1.0 or 2.0")
                    header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
                    shape, _, dtype = header(stream, max_header_size=10_000)
                if dtype.hasobject or dtype.kind not in "biufUS":
                    raise bad(f"array {name[:60]!r} has dtype {dtype}, not numbers or text")
                size = math.prod(shape) * dtype.itemsize  # exact: Python integers
                if size > member.file_size:
                    raise bad(f"array {name[:60]!r} claims shape {shape} ({size:,} bytes) in a member of "
                              f"{member.file_size:,} bytes")
                with archive.open(member) as stream:
                    arrays[name] = npy.read_array(stream, allow_pickle=False)
            except CaseFileError:
                raise
            except (ValueError, OSError, EOFError, zipfile.BadZipFile, NotImplementedError) as exc:
                raise bad(f"array {name[:60]!r} cannot be read ({str(exc)[:120]})") from None
    return arrays


def checked_csr(values: np.ndarray, indices: np.ndarray, indptr: np.ndarray, shape: np.ndarray, bad: Any, *,
                names: tuple[str, str, str, str] = ("data", "indices", "indptr", "shape")) -> sp.csr_matrix:
    """A float32 CSR dose-influence matrix from its arrays, each checked first: scipy trusts its index arrays, and an
    index out of range crashes the process later. `bad(what)` makes the exception to raise."""
    data_name, indices_name, indptr_name, shape_name = names
    for name, array in ((indices_name, indices), (indptr_name, indptr), (shape_name, shape)):
        if array.dtype.kind not in "iu" or array.ndim != 1:
            raise bad(f"{name} must be a 1-D array of integers, got {array.ndim}-D {array.dtype}")
    dims = tuple(int(s) for s in shape[:3])
    if len(dims) != 2 or not all(0 < s <= MAX_CASE_DIMENSION for s in dims):
        raise bad(f"{shape_name} must be (voxels, beamlets), each in 1..{MAX_CASE_DIMENSION:,}, got {dims}")
    rows, cols = dims
    if values.dtype.kind not in "iuf" or values.ndim != 1:
        raise bad(f"{data_name} must be a 1-D array of numbers, got {values.ndim}-D {values.dtype}")
    indices, indptr = indices.astype(np.int64), indptr.astype(np.int64)
    if len(indptr) != rows + 1 or indptr[0] != 0 or indptr[-1] != len(indices) or len(values) != len(indices):
        raise bad(f"the CSR arrays disagree: {indptr_name} needs {rows + 1} entries from 0 to len({indices_name}) "
                  f"({len(indices)}), and {data_name} as many values as {indices_name}")
    if (np.diff(indptr) < 0).any():
        raise bad(f"{indptr_name} must not decrease")
    if len(indices) and (indices.min() < 0 or indices.max() >= cols):
        raise bad(f"{indices_name} has beamlet indices outside 0..{cols - 1}")
    if not np.isfinite(values).all():
        raise bad(f"{data_name} holds NaN or infinite dose values")
    index_type = np.int32 if max(cols, len(indices)) < 2**31 else np.int64
    return sp.csr_matrix((values.astype(np.float32), indices.astype(index_type), indptr.astype(index_type)),
                         shape=dims)


def _case_from_arrays(data: dict[str, np.ndarray], path: Path) -> Case:
    """The Case the checked arrays describe (see `load_npz_case`)."""

    def bad(what: str) -> CaseFileError:
        return CaseFileError(f"case file {path}: {what}")

    missing = {"dij_data", "dij_indices", "dij_indptr", "dij_shape", "targets", "prescription_Gy"} - set(data)
    if missing:
        raise bad(f"lacks the arrays {', '.join(sorted(missing))}")

    def integers(name: str, *, ndim: int = 1) -> np.ndarray:
        array = data[name]
        if array.dtype.kind not in "iu" or array.ndim != ndim:
            raise bad(f"{name[:60]} must be a {ndim}-D array of integers, got {array.ndim}-D {array.dtype}")
        return array.astype(np.int64)

    def scalar(name: str, low: float = 0.0, high: float = 1e6) -> float:
        array = data[name]
        if array.dtype.kind not in "iuf" or array.size != 1 or not np.isfinite(array).all() or \
                not low <= float(array.reshape(-1)[0]) <= high:
            raise bad(f"{name[:60]} must be one finite number in [{low:g}, {high:g}]")
        return float(array.reshape(-1)[0])

    def text(name: str) -> str:
        array = data[name]
        if array.dtype.kind not in "US" or array.size != 1:
            raise bad(f"{name[:60]} must be one string")
        value = str(array.reshape(-1)[0])
        if len(value) > MAX_TEXT:
            raise bad(f"{name} is longer than {MAX_TEXT} characters")
        return value

    matrix = checked_csr(data["dij_data"], data["dij_indices"], data["dij_indptr"], data["dij_shape"], bad,
                         names=("dij_data", "dij_indices", "dij_indptr", "dij_shape"))
    rows, cols = matrix.shape

    names = [k for k in data if k.startswith("structure_")]
    if not names:
        raise bad("has no structure_<name> arrays")
    if len(names) > MAX_STRUCTURES:
        raise bad(f"has {len(names)} structures, more than {MAX_STRUCTURES}")
    structures = {}
    for key in names:
        rows_of = np.unique(integers(key))
        if rows_of.size and (rows_of[0] < 0 or rows_of[-1] >= rows):
            raise bad(f"structure {key[len('structure_'):][:60]!r} has row indices outside 0..{rows - 1}")
        structures[key[len("structure_"):]] = rows_of
    if data["targets"].dtype.kind not in "US" or data["targets"].size > MAX_STRUCTURES:
        raise bad("targets must be an array of structure names")
    targets = [str(t) for t in np.atleast_1d(data["targets"])]
    unknown = [t[:60] for t in targets if t not in structures]
    if unknown or not targets:
        raise bad(f"targets {unknown[:5] or '(none)'} are not among the structures {sorted(structures)[:20]}")
    rx = scalar("prescription_Gy", 1e-3, 1000.0)
    levels = {s: scalar(f"dose_level_{s}", 0.0, 2000.0) if f"dose_level_{s}" in data else
              (rx if s in targets else 0.6 * rx) for s in structures}
    if "grid_shape" in data:
        grid_shape = tuple(int(g) for g in integers("grid_shape"))
        if not 1 <= len(grid_shape) <= 3 or not all(g > 0 for g in grid_shape) or \
                math.prod(grid_shape) > MAX_CASE_DIMENSION:
            raise bad(f"grid_shape must be 1 to 3 positive sizes of at most {MAX_CASE_DIMENSION:,} points in all")
    else:
        grid_shape = (rows,)
    if "voxel_index" in data:
        voxel_index = integers("voxel_index")
        if len(voxel_index) != rows or (rows and (voxel_index.min() < 0 or voxel_index.max() >= math.prod(grid_shape))):
            raise bad(f"voxel_index needs one grid point (0..{math.prod(grid_shape) - 1}) for each of the {rows} voxels")
    elif math.prod(grid_shape) == rows:
        voxel_index = np.arange(rows)
    else:
        raise bad(f"grid_shape {grid_shape} has another number of points than the {rows} voxels: give voxel_index")
    if "voxel_size_mm" in data:
        sizes = data["voxel_size_mm"]
        if sizes.dtype.kind not in "iuf" or sizes.shape != (len(grid_shape),) or not np.isfinite(sizes).all() or \
                (sizes <= 0).any():
            raise bad(f"voxel_size_mm must be {len(grid_shape)} positive finite sizes")
        voxel_size = tuple(float(v) for v in sizes)
    else:
        voxel_size = (1.0,) * len(grid_shape)
    goals = text("goals") if "goals" in data else ""
    name = text("name") if "name" in data else path.stem
    return Case(
        name=name,
        dose_influence=matrix,
        structures=structures,
        targets=targets,
        prescription_Gy=rx,
        default_dose_levels_Gy=levels,
        grid_shape=grid_shape,
        voxel_index=voxel_index,
        voxel_size_mm=voxel_size,
        default_goals=goals,
        description=f"user case from {path.name}: {rows} voxels, {cols} beamlets, prescription {rx:g} Gy",
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

