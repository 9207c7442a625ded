import math

import numpy as np
import pytest

from domains.radiotherapy.dvh import (
    conformity_index,
    dose_at_volume,
    dvh_curve,
    dvh_metrics,
    homogeneity_index,
    volume_at_dose,
)


def test_uniform_dose_gives_the_dose_at_every_volume():
    d = np.full(1000, 70.0)
    m = dvh_metrics(d)
    for key in ("D2", "D50", "D95", "D98", "mean", "max", "min"):
        assert m[key] == pytest.approx(70.0)
    assert m["HI"] == pytest.approx(0.0)
    assert volume_at_dose(d, 70.0) == 100.0
    assert volume_at_dose(d, 70.01) == 0.0


def test_known_step_half_at_60_half_at_80():
    d = np.concatenate([np.full(500, 60.0), np.full(500, 80.0)])
    assert dose_at_volume(d, 95) == 60.0
    assert dose_at_volume(d, 50) == 80.0  # the hottest half receives 80
    assert dose_at_volume(d, 50.2) == 60.0
    assert dose_at_volume(d, 2) == 80.0
    assert dose_at_volume(d, 0) == 80.0
    assert volume_at_dose(d, 70) == 50.0
    assert volume_at_dose(d, 60) == 100.0
    assert homogeneity_index(d) == pytest.approx((80 - 60) / 80)
    assert dvh_metrics(d, volume_levels_Gy=(70,))["V70"] == 50.0


def test_linear_ramp_percentiles():
    d = np.arange(1, 101, dtype=float)  # 1..100 Gy, one voxel each
    assert dose_at_volume(d, 95) == 6.0  # 95 voxels (6..100) receive >= 6 Gy
    assert dose_at_volume(d, 2) == 99.0
    assert volume_at_dose(d, 91) == 10.0


def test_paddick_conformity_index():
    target = np.full(100, 80.0)
    outside = np.concatenate([np.full(100, 80.0), np.full(900, 10.0)])
    all_dose = np.concatenate([target, outside])
    # TV = 100, PIV = 200, TV_PIV = 100: CI = 100^2 / (100 * 200)
    assert conformity_index(target, all_dose, 78.0) == pytest.approx(0.5)
    assert dvh_metrics(target, prescription_Gy=78.0, all_dose=target)["CI"] == pytest.approx(1.0)
    assert conformity_index(np.full(10, 1.0), np.full(10, 1.0), 78.0) == 0.0


def test_dvh_curve_is_cumulative():
    d = np.concatenate([np.full(50, 20.0), np.full(50, 60.0)])
    doses, volumes = dvh_curve(d, 80.0, points=9)
    assert doses[0] == 0.0 and doses[-1] == 80.0
    assert volumes[0] == 100.0
    assert volumes[doses.index(40.0)] == 50.0
    assert volumes[-1] == 0.0
    assert all(a >= b for a, b in zip(volumes, volumes[1:], strict=False))


def test_empty_structure_and_bad_volume():
    assert math.isnan(dose_at_volume(np.array([]), 95))
    assert math.isnan(volume_at_dose(np.array([]), 50))
    with pytest.raises(ValueError, match="outside 0..100"):
        dose_at_volume(np.ones(3), 120)
