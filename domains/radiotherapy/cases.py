"""Planning cases: a dose-influence matrix, structure voxel sets, the prescription and the default goals.

Built-in cases:

* ``prostate-2d``: one axial slice of our prostate phantom, 2.5 mm pixels, 9 coplanar beams (plans in well under a
  second; for tests and the demo);
* ``prostate``: the 3-D phantom, 5 mm voxels, 7 coplanar beams;
* ``tg119``: the AAPM TG-119 C-shape from pyRadPlan (optional extra ``radiotherapy-pyradplan``);
* ``path/to/case.npz``: a user's own case (format in `case.load_npz_case`).

The `Case` type and the .npz format live in `case.py` (so that case builders such as `tg119.py` need not import
this module, which imports them).

Matrices are cached on disk by a hash of everything that defines them (see `cache.py`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from domains.radiotherapy import cache
from domains.radiotherapy.case import GOALS_DIR, Case, load_npz_case, save_npz_case

__all__ = ["BUILTIN_CASES", "GOALS_DIR", "Case", "load_case", "load_npz_case", "prostate_case", "save_npz_case"]

BUILTIN_CASES = ("prostate-2d", "prostate", "tg119")


def load_case(spec: str | Path | Case) -> Case:
    """A case by built-in name or `.npz` path; a `Case` is returned unchanged."""
    if isinstance(spec, Case):
        return spec
    spec = str(spec)
    if spec == "prostate-2d":
        return prostate_case(planar=True)
    if spec == "prostate":
        return prostate_case(planar=False)
    if spec == "tg119":
        from domains.radiotherapy.tg119 import tg119_case

        return tg119_case()
    if spec.endswith(".npz"):
        return load_npz_case(spec)
    raise ValueError(f"unknown case {spec!r}: use one of {', '.join(BUILTIN_CASES)} or a path ending in .npz")


# --- the prostate phantom -----------------------------------------------------------------------------------------

# Shapes in mm around the isocentre: x left-right, y posterior(-) to anterior(+), z inferior(-) to superior(+).
BODY_SEMI_AXES_MM = (180.0, 120.0)  # elliptic cylinder
PROSTATE_RX_GY = 78.0


def _prostate_structures(p: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean membership of points (n, 3) in each structure. The PTV overlaps the rectum and the bladder."""
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    body = (x / BODY_SEMI_AXES_MM[0]) ** 2 + (y / BODY_SEMI_AXES_MM[1]) ** 2 <= 1.0
    ptv = (x / 30.0) ** 2 + (y / 26.0) ** 2 + (z / 28.0) ** 2 <= 1.0
    # The rectum is a 16 mm radius tube behind the prostate whose front wall reaches 6 mm into the PTV.
    rectum = (x**2 + (y + 36.0) ** 2 <= 16.0**2) & (np.abs(z) <= 50.0)
    bladder = x**2 + (y - 44.0) ** 2 + (z - 12.0) ** 2 <= 27.0**2
    femoral_l = (x - 85.0) ** 2 + (y + 5.0) ** 2 + z**2 <= 25.0**2
    femoral_r = (x + 85.0) ** 2 + (y + 5.0) ** 2 + z**2 <= 25.0**2
    return {
        "PTV": ptv & body,
        "rectum": rectum & body,
        "bladder": bladder & body,
        "femoral_head_L": femoral_l & body,
        "femoral_head_R": femoral_r & body,
        "body": body,
    }


def prostate_case(*, planar: bool) -> Case:
    """The prostate phantom: 2-D (one slice, 2.5 mm, 9 beams) or 3-D (5 mm voxels, 7 beams)."""
    if planar:
        spacing, z_half, angles = 2.5, 0.0, tuple(range(0, 360, 40))
    else:
        spacing, z_half, angles = 5.0, 60.0, tuple(round(k * 360 / 7, 1) for k in range(7))
    xs = np.arange(-BODY_SEMI_AXES_MM[0], BODY_SEMI_AXES_MM[0] + 1e-6, spacing)
    ys = np.arange(-BODY_SEMI_AXES_MM[1], BODY_SEMI_AXES_MM[1] + 1e-6, spacing)
    zs = np.arange(-z_half, z_half + 1e-6, spacing) if not planar else np.array([0.0])
    zz, yy, xx = np.meshgrid(zs, ys, xs, indexing="ij")  # grid shape (z, y, x)
    points = np.stack([xx.ravel(), yy.ravel(), zz.ravel()], axis=1)
    members = _prostate_structures(points)
    voxel_index = np.flatnonzero(members["body"])
    body_points = points[voxel_index]
    structures = {name: np.flatnonzero(mask[voxel_index]) for name, mask in members.items()}
    grid_shape = (len(ys), len(xs)) if planar else (len(zs), len(ys), len(xs))

    from domains.radiotherapy.pencil_beam import PHYSICS_VERSION, BeamGeometry, dose_influence_matrix

    beams = BeamGeometry(gantry_angles_deg=tuple(float(a) for a in angles))
    key = cache.content_key(
        {
            "phantom": "prostate-v1",
            "physics": PHYSICS_VERSION,
            "spacing": spacing,
            "z_half": z_half,
            "beams": beams.__dict__,
            "planar": planar,
        }
    )

    def build() -> sp.csr_matrix:
        matrix, _ = dose_influence_matrix(
            body_points, body_points[structures["PTV"]], BODY_SEMI_AXES_MM, beams, planar=planar
        )
        return matrix

    name = "prostate-2d" if planar else "prostate"
    return Case(
        name=name,
        dose_influence=cache.cached_matrix(key, build),
        structures=structures,
        targets=["PTV"],
        prescription_Gy=PROSTATE_RX_GY,
        default_dose_levels_Gy={
            "PTV": 78.0,
            "rectum": 50.0,
            "bladder": 50.0,
            "femoral_head_L": 40.0,
            "femoral_head_R": 40.0,
            "body": 60.0,
        },
        grid_shape=grid_shape,
        voxel_index=voxel_index,
        voxel_size_mm=(spacing, spacing) if planar else (spacing, spacing, spacing),
        default_goals=str(GOALS_DIR / "prostate.yaml"),
        description=(
            f"{'2-D slice' if planar else '3-D'} prostate phantom in water, {spacing:g} mm voxels, "
            f"{len(angles)} coplanar 6 MV photon beams at gantry {', '.join(f'{a:g}' for a in angles)} deg, "
            f"prescription {PROSTATE_RX_GY:g} Gy to the PTV"
        ),
        primary_oars=["rectum", "bladder"],
    )


