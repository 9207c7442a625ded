"""A photon pencil-beam dose-influence matrix for a homogeneous (water) phantom, built with numpy + scipy.sparse.

Each column of the matrix is one beamlet (a 5 mm wide bixel of one beam); each row is one voxel; the entry is the
dose (Gy) the voxel receives per unit fluence of that beamlet. The model approximates three effects of a 6 MV beam:

* depth dose: build-up then exponential attenuation, ``(1 - exp(-d / BUILDUP_MM)) * exp(-MU_PER_MM * d)`` with ``d``
  the depth of the voxel along the ray from the source (the phantom is water-equivalent, so radiological depth is
  geometric depth inside the body contour; dose is ~0 at the skin and peaks near 1.5 cm);
* lateral spread: the beamlet's rectangular aperture convolved with a Gaussian whose width grows with depth
  (``SIGMA0_MM + SIGMA_SLOPE * d``, primary penumbra), plus a small broad Gaussian for phantom scatter;
* inverse-square fall-off with distance from the source: ``(SAD / t)**2`` with ``t`` the distance along the beam axis,
  and beam divergence: lateral offsets are projected to the isocentre plane before the profile is applied.

Entries below ``CUTOFF`` of the beamlet's largest entry are dropped to keep the matrix sparse. A 2-D phantom is a
single axial slice; its beamlets are 1-D (fan beam in the slice), so the out-of-slice profile is taken as 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

SAD_MM = 1000.0  # source-axis distance
BUILDUP_MM = 5.0  # build-up length scale; the depth-dose maximum lies near 1.5 cm for 6 MV
MU_PER_MM = 0.0046  # effective attenuation coefficient of 6 MV photons in water
SIGMA0_MM = 3.0  # primary penumbra width at the surface
SIGMA_SLOPE = 0.01  # penumbra growth per mm of depth
SCATTER_FRACTION = 0.04  # share of the beamlet dose carried by the broad scatter Gaussian
SCATTER_SIGMA_MM = 10.0
CUTOFF = 0.01  # relative dose below which an entry is dropped
PHYSICS_VERSION = "pencil-beam-v1"  # part of every cache key: bump it when the model changes


@dataclass(frozen=True)
class BeamGeometry:
    """Coplanar beams around one isocentre; gantry 0 deg shines from anterior (+y) towards posterior."""

    gantry_angles_deg: tuple[float, ...]
    bixel_mm: float = 5.0
    target_margin_mm: float = 5.0  # beamlets are kept if they see the target within this margin


def _depth_dose(depth_mm: np.ndarray) -> np.ndarray:
    return (1.0 - np.exp(-depth_mm / BUILDUP_MM)) * np.exp(-MU_PER_MM * depth_mm)


def _aperture_profile(offset_mm: np.ndarray, width_mm: float, sigma_mm: np.ndarray) -> np.ndarray:
    """A rectangle of `width_mm` convolved with a Gaussian of `sigma_mm`; 1 on the axis of a wide field."""
    from scipy.special import erf

    s = np.sqrt(2.0) * sigma_mm
    return 0.5 * (erf((offset_mm + width_mm / 2) / s) - erf((offset_mm - width_mm / 2) / s))


def _lateral_profile(offset_mm: np.ndarray, width_mm: float, depth_mm: np.ndarray) -> np.ndarray:
    primary = _aperture_profile(offset_mm, width_mm, SIGMA0_MM + SIGMA_SLOPE * depth_mm)
    scatter = _aperture_profile(offset_mm, width_mm, np.full_like(depth_mm, SCATTER_SIGMA_MM))
    return (1.0 - SCATTER_FRACTION) * primary + SCATTER_FRACTION * scatter


def _depth_in_ellipse(points: np.ndarray, source: np.ndarray, semi_axes: tuple[float, float]) -> np.ndarray:
    """Distance travelled inside the elliptic body contour by the ray from `source` to each point (x, y)."""
    a, b = semi_axes
    direction = points - source  # ray s + lam * direction reaches the point at lam = 1
    # Solve ((sx + lam dx)/a)^2 + ((sy + lam dy)/b)^2 = 1 for the entry lam.
    qa = (direction[:, 0] / a) ** 2 + (direction[:, 1] / b) ** 2
    qb = 2 * (source[0] * direction[:, 0] / a**2 + source[1] * direction[:, 1] / b**2)
    qc = (source[0] / a) ** 2 + (source[1] / b) ** 2 - 1.0
    disc = np.maximum(qb**2 - 4 * qa * qc, 0.0)
    lam_in = (-qb - np.sqrt(disc)) / (2 * qa)
    lam_in = np.clip(lam_in, 0.0, 1.0)
    return (1.0 - lam_in) * np.linalg.norm(direction, axis=1)


def dose_influence_matrix(
    points_mm: np.ndarray,
    target_points_mm: np.ndarray,
    body_semi_axes_mm: tuple[float, float],
    beams: BeamGeometry,
    *,
    planar: bool,
) -> tuple[sp.csr_matrix, list[dict]]:
    """Dose per unit fluence, voxels x beamlets (float32 CSR), and one record per beamlet (beam angle, position).

    `points_mm` are voxel centres (n, 3) relative to the isocentre; `target_points_mm` decide which beamlets exist.
    `planar` selects a 2-D slice with 1-D beamlets.
    """
    points = np.asarray(points_mm, dtype=np.float64)
    target = np.asarray(target_points_mm, dtype=np.float64)
    width = beams.bixel_mm
    # Unit dose: a beamlet's axis value at 100 mm depth at the isocentre distance (primary only, wide-field 1).
    norm = 1.0 / (_depth_dose(np.array([100.0]))[0] * _aperture_profile(np.array([0.0]), width, np.array([4.0]))[0])
    columns_rows: list[np.ndarray] = []
    columns_vals: list[np.ndarray] = []
    beamlets: list[dict] = []
    for angle in beams.gantry_angles_deg:
        theta = math.radians(angle)
        axis = np.array([-math.sin(theta), -math.cos(theta), 0.0])  # source -> isocentre
        source = -SAD_MM * axis
        lateral_x = np.array([math.cos(theta), -math.sin(theta), 0.0])
        lateral_z = np.array([0.0, 0.0, 1.0])

        def project(p: np.ndarray, src=source, ax=axis, lx=lateral_x, lz=lateral_z) -> tuple:
            rel = p - src
            t = rel @ ax
            scale = SAD_MM / t  # divergence: offsets measured in the isocentre plane
            return t, (rel @ lx) * scale, (rel @ lz) * scale

        t, u, v = project(points)
        depth = _depth_in_ellipse(points[:, :2], source[:2], body_semi_axes_mm)
        axial = norm * _depth_dose(depth) * (SAD_MM / t) ** 2
        _, tu, tv = project(target)
        reach = width / 2 + beams.target_margin_mm
        u_centres = _bixel_centres(tu.min() - reach, tu.max() + reach, width)
        v_centres = [0.0] if planar else _bixel_centres(tv.min() - reach, tv.max() + reach, width)
        for vc in v_centres:
            for uc in u_centres:
                sees_target = np.any((np.abs(tu - uc) <= reach) & (planar or np.abs(tv - vc) <= reach))
                if not sees_target:
                    continue
                near = np.abs(u - uc) <= width / 2 + 4 * SCATTER_SIGMA_MM
                if not planar:
                    near &= np.abs(v - vc) <= width / 2 + 4 * SCATTER_SIGMA_MM
                rows = np.flatnonzero(near)
                dose = axial[rows] * _lateral_profile(u[rows] - uc, width, depth[rows])
                if not planar:
                    dose *= _lateral_profile(v[rows] - vc, width, depth[rows])
                keep = dose >= CUTOFF * dose.max() if dose.size else dose > 0
                columns_rows.append(rows[keep])
                columns_vals.append(dose[keep].astype(np.float32))
                beamlets.append({"gantry_deg": float(angle), "u_mm": float(uc), "v_mm": float(vc)})
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in columns_rows])])
    csc = sp.csc_matrix(
        (np.concatenate(columns_vals), np.concatenate(columns_rows), indptr),
        shape=(len(points), len(beamlets)),
    )
    return csc.tocsr(), beamlets


def _bixel_centres(lo: float, hi: float, width: float) -> list[float]:
    # A grid aligned on the beam axis, so that opposed beams share bixel edges.
    first = math.floor(lo / width)
    last = math.ceil(hi / width)
    return [(k + 0.5) * width for k in range(first, last)]
