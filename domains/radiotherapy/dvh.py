"""Dose-volume histogram metrics of one structure (all voxels have equal volume).

* ``D<x>``: the dose (Gy) that at least x % of the volume receives: the largest D with V(>= D) >= x %.
  A uniform dose d gives D<x> = d for every x; half the voxels at 60 Gy and half at 80 Gy give D95 = 60, D50 = 80.
* ``V<x>``: the share of the volume (%) receiving at least x Gy.
* ``HI``: homogeneity index (D2 - D98) / D50 (ICRU 83); 0 for a uniform dose.
* ``CI``: Paddick conformity index TV_PIV^2 / (TV * PIV): TV the target volume, PIV the volume of the whole dose
  grid receiving at least the prescription, TV_PIV their overlap; 1 for a dose that covers exactly the target.
"""

from __future__ import annotations

import math

import numpy as np


def dose_at_volume(dose: np.ndarray, volume_pct: float) -> float:
    """D<volume_pct> in Gy (see the module docstring); D0 is the maximum."""
    d = np.asarray(dose, dtype=np.float64)
    if d.size == 0:
        return math.nan
    if not 0.0 <= volume_pct <= 100.0:
        raise ValueError(f"volume {volume_pct}% is outside 0..100")
    hottest_first = np.sort(d)[::-1]
    count = max(math.ceil(volume_pct / 100.0 * d.size - 1e-9), 1)
    return float(hottest_first[count - 1])


def volume_at_dose(dose: np.ndarray, dose_Gy: float) -> float:
    """V<dose_Gy>: the share (%) of voxels receiving at least `dose_Gy`."""
    d = np.asarray(dose, dtype=np.float64)
    if d.size == 0:
        return math.nan
    return float(100.0 * np.count_nonzero(d >= dose_Gy) / d.size)


def homogeneity_index(dose: np.ndarray) -> float:
    d50 = dose_at_volume(dose, 50)
    return (dose_at_volume(dose, 2) - dose_at_volume(dose, 98)) / d50 if d50 > 0 else math.nan


def conformity_index(target_dose: np.ndarray, all_dose: np.ndarray, prescription_Gy: float) -> float:
    """Paddick CI; `all_dose` is the dose of every voxel of the grid (the target's voxels included)."""
    tv = np.asarray(target_dose).size
    tv_piv = int(np.count_nonzero(np.asarray(target_dose) >= prescription_Gy))
    piv = int(np.count_nonzero(np.asarray(all_dose) >= prescription_Gy))
    if tv == 0 or piv == 0:
        return 0.0
    return tv_piv**2 / (tv * piv)


def dvh_metrics(
    dose: np.ndarray,
    *,
    prescription_Gy: float | None = None,
    all_dose: np.ndarray | None = None,
    volume_levels_Gy: tuple[float, ...] = (),
) -> dict[str, float]:
    """The standard metrics of one structure: mean, max, min, D2, D50, D95, D98, HI, and V<x> for each requested
    level; CI too when the prescription and the whole grid's dose are given (i.e. for a target)."""
    d = np.asarray(dose, dtype=np.float64)
    out = {
        "mean": float(d.mean()) if d.size else math.nan,
        "max": float(d.max()) if d.size else math.nan,
        "min": float(d.min()) if d.size else math.nan,
        "D2": dose_at_volume(d, 2),
        "D50": dose_at_volume(d, 50),
        "D95": dose_at_volume(d, 95),
        "D98": dose_at_volume(d, 98),
        "HI": homogeneity_index(d) if d.size else math.nan,
    }
    if prescription_Gy is not None and all_dose is not None:
        out["CI"] = conformity_index(d, all_dose, prescription_Gy)
    for level in volume_levels_Gy:
        out[f"V{level:g}"] = volume_at_dose(d, level)
    return out


def dvh_curve(dose: np.ndarray, max_dose_Gy: float, points: int = 81) -> tuple[list[float], list[float]]:
    """Cumulative DVH sampled at `points` dose levels from 0 to `max_dose_Gy`: (doses in Gy, volumes in %)."""
    d = np.sort(np.asarray(dose, dtype=np.float64))
    levels = np.linspace(0.0, max_dose_Gy, points)
    if d.size == 0:
        return levels.tolist(), [0.0] * points
    at_least = d.size - np.searchsorted(d, levels, side="left")
    return [round(float(x), 3) for x in levels], [round(float(v), 3) for v in 100.0 * at_least / d.size]
