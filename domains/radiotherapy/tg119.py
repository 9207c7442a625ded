"""The AAPM TG-119 C-shape case through pyRadPlan (optional extra ``radiotherapy-pyradplan``).

pyRadPlan's bundled TG-119 phantom and photon pencil-beam engine (9 coplanar beams at 0, 40, ..., 320 deg, 5 mm
bixels) give the dose-influence matrix; it is computed once (about half a minute) and the whole case is cached on
disk in the `.npz` case format, so later loads need neither pyRadPlan nor the dose calculation.

Structures follow pyRadPlan's optimization set-up: overlap priorities applied (the body excludes the target and
the core), resampled to the dose grid. Names: ``PTV`` (TG-119 "OuterTarget"), ``core``, ``body``. pyRadPlan's own
objectives for the case are: PTV squared deviation from 50 Gy (priority 1000), core squared overdose above 25 Gy
(300), body squared overdose above 30 Gy (100); `pyradplan_objectives` returns them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from domains.radiotherapy import cache
from domains.radiotherapy.case import GOALS_DIR, Case, load_npz_case, save_npz_case
from domains.radiotherapy.fluence import Objective

GANTRY_ANGLES = tuple(range(0, 360, 40))
BIXEL_MM = 5.0
RX_GY = 50.0
NAMES = {"OuterTarget": "PTV", "Core": "core", "BODY": "body"}


def pyradplan_objectives() -> list[Objective]:
    """pyRadPlan's TG-119 objectives (matRad's defaults) in our terms: same kinds, priorities as weights."""
    return [
        Objective("PTV", "squared_deviation", 1000.0, 50.0),
        Objective("core", "squared_overdose", 300.0, 25.0),
        Objective("body", "squared_overdose", 100.0, 30.0),
    ]


def _cache_path() -> Path:
    from importlib.metadata import PackageNotFoundError, version

    try:
        pyradplan_version = version("pyradplan")
    except PackageNotFoundError:
        pyradplan_version = "0.5.0"  # the pinned version: a case cached by it is still valid without it
    key = cache.content_key(
        {"case": "tg119-v1", "pyradplan": pyradplan_version, "gantry": GANTRY_ANGLES, "bixel": BIXEL_MM}
    )
    return cache.cache_dir() / f"case-tg119-{key}.npz"


def tg119_case() -> Case:
    """The TG-119 case, from the disk cache or computed with pyRadPlan."""
    path = _cache_path()
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        save_npz_case(_compute_case(), tmp)
        tmp.replace(path)
    case = load_npz_case(path)
    case.name = "tg119"
    case.default_goals = str(GOALS_DIR / "tg119.yaml")
    case.primary_oars = ["core"]
    case.description = (
        "AAPM TG-119 C-shape phantom (pyRadPlan), 9 coplanar 6 MV photon beams at gantry 0-320 deg in 40 deg "
        f"steps, prescription {RX_GY:g} Gy to the C-shaped PTV around the core"
    )
    return case


def pyradplan_setup() -> dict[str, Any]:
    """pyRadPlan's ct, cst, pln, stf and dij for the case (the expensive dose calculation included)."""
    try:
        import pyRadPlan
    except ImportError as exc:
        raise ImportError(
            "the tg119 case needs pyRadPlan: pip install 'tgdomains[radiotherapy-pyradplan]' "
            "(pyradplan==0.5.0 with pydantic<2.14)"
        ) from exc
    import logging

    logging.getLogger("pyRadPlan").setLevel(logging.WARNING)
    ct, cst = pyRadPlan.load_tg119()
    pln = pyRadPlan.PhotonPlan(machine="Generic")
    pln.prop_stf = {"gantry_angles": list(GANTRY_ANGLES), "couch_angles": [0] * len(GANTRY_ANGLES),
                    "bixel_width": BIXEL_MM}
    pln.prop_opt = {"solver": "scipy"}
    stf = pyRadPlan.generate_stf(ct, cst, pln)
    dij = pyRadPlan.calc_dose_influence(ct, cst, stf, pln)
    return {"ct": ct, "cst": cst, "pln": pln, "stf": stf, "dij": dij}


def optimization_structures(setup: dict[str, Any]) -> dict[str, np.ndarray]:
    """Row indices per structure exactly as pyRadPlan's planning problem builds them."""
    ct = setup["ct"].resample_to_grid(setup["dij"].dose_grid)
    cst = setup["cst"].apply_overlap_priorities().resample_on_new_ct(ct)
    return {NAMES.get(v.name, v.name): np.sort(np.asarray(v.indices_numpy, dtype=np.int64)) for v in cst.vois}


def _compute_case() -> Case:
    import scipy.sparse as sp

    setup = pyradplan_setup()
    dij = setup["dij"]
    matrix = sp.csr_matrix(dij.physical_dose.flat[0], dtype=np.float32)
    structures = optimization_structures(setup)
    dims = tuple(int(d) for d in dij.dose_grid.dimensions)  # (x, y, z); numpy order is (z, y, x)
    res = dij.dose_grid.resolution
    return Case(
        name="tg119",
        dose_influence=matrix,
        structures={s: structures[s] for s in ("PTV", "core", "body")},
        targets=["PTV"],
        prescription_Gy=RX_GY,
        default_dose_levels_Gy={"PTV": 50.0, "core": 25.0, "body": 30.0},
        grid_shape=dims[::-1],
        voxel_index=np.arange(matrix.shape[0]),
        voxel_size_mm=(float(res["z"]), float(res["y"]), float(res["x"])),
        default_goals=str(GOALS_DIR / "tg119.yaml"),
    )
