import json

import numpy as np
import pytest
import scipy.sparse as sp

from domains.radiotherapy import pencil_beam
from domains.radiotherapy.cases import load_case, load_npz_case, prostate_case, save_npz_case
from domains.radiotherapy.evaluator import PlanEvaluator
from domains.radiotherapy.fluence import KINDS, Objective, fluence_optimize, objective_terms
from domains.radiotherapy.hyperparameters import default_hyperparameters, to_json
from domains.radiotherapy.planning import plan


def test_the_2d_case_is_a_real_sparse_problem(case2d):
    m = case2d.dose_influence
    assert sp.issparse(m) and m.dtype == np.float32
    assert m.shape[0] == len(case2d.structures["body"]) and m.shape[1] > 50
    assert 0 < m.nnz < 0.3 * m.shape[0] * m.shape[1]
    assert set(case2d.structures) == {"PTV", "rectum", "bladder", "femoral_head_L", "femoral_head_R", "body"}
    assert 0 < case2d.overlap_pct("PTV", "rectum") < 5  # coverage vs rectum is a real trade-off


def test_depth_dose_builds_up_then_attenuates_and_follows_inverse_square():
    # One beam from anterior into a large water phantom; voxels on the central axis at increasing depth.
    depth = np.arange(0.0, 200.0, 2.5)
    y = 100.0 - depth  # body surface at y = 100 mm (semi-axis 100)
    points = np.stack([np.zeros_like(y), y, np.zeros_like(y)], axis=1)
    beams = pencil_beam.BeamGeometry(gantry_angles_deg=(0.0,))
    field = np.stack([np.linspace(-30, 30, 13), np.zeros(13), np.zeros(13)], axis=1)  # a 7 cm wide open field
    matrix, beamlets = pencil_beam.dose_influence_matrix(points, field, (300.0, 100.0), beams, planar=True)
    assert {b["gantry_deg"] for b in beamlets} == {0.0} and len(beamlets) >= 12
    dose = np.asarray(matrix.sum(axis=1)).ravel()  # every beamlet at unit fluence: the open field's axis dose
    peak = depth[np.argmax(dose)]
    assert 7.5 <= peak <= 25.0  # build-up: the maximum lies near 1.5 cm, not at the surface
    assert dose[0] < 0.2 * dose.max()
    deep = dose[depth >= 50]
    assert np.all(np.diff(deep) < 0)  # attenuation + inverse square beyond the maximum
    # 100 -> 150 mm depth: attenuation exp(-mu * 50 mm) times inverse square (1000 / 1050)^2 (isocentre at 100 mm)
    d100, d150 = dose[depth == 100.0][0], dose[depth == 150.0][0]
    expected = np.exp(-pencil_beam.MU_PER_MM * 50) * ((1000.0) / 1050.0) ** 2
    assert d150 / d100 == pytest.approx(expected, rel=0.03)


def test_plan_is_non_negative_and_consistent(case2d):
    p = plan(case2d, default_hyperparameters(case2d))
    assert p.fluence.min() >= 0
    np.testing.assert_allclose(p.dose, case2d.dose_influence @ p.fluence.astype(np.float32), rtol=1e-5)
    assert p.optimization.converged
    assert 60 < float(np.mean(p.structure_dose("PTV"))) < 90


def test_optimizer_lowers_the_objective_and_warm_starts(case2d):
    from domains.radiotherapy.hyperparameters import objectives_for

    objectives = objectives_for(default_hyperparameters(case2d), case2d)
    one_step = fluence_optimize(case2d.dose_influence, case2d.structures, objectives, max_iterations=1)
    full = fluence_optimize(case2d.dose_influence, case2d.structures, objectives)
    assert full.objective_value < 0.5 * one_step.objective_value
    trace = []
    warm = fluence_optimize(case2d.dose_influence, case2d.structures, objectives, x0=full.fluence, callback=trace.append)
    assert trace[0] <= full.objective_value * 1.001  # it starts where the previous plan ended, not from scratch
    assert warm.objective_value <= full.objective_value * (1 + 1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_objective_gradients_match_finite_differences(kind):
    rng = np.random.default_rng(0)
    dose = rng.uniform(40, 90, size=50)
    rows = np.arange(10, 40)
    o = Objective("s", kind, 1.0, dose_Gy=70.0, volume_pct=40.0)
    _, grad = objective_terms(dose, rows, o)
    for j in (0, 7, 21):
        step = np.zeros_like(dose)
        step[rows[j]] = 1e-4
        up, _ = objective_terms(dose + step, rows, o)
        down, _ = objective_terms(dose - step, rows, o)
        assert grad[j] == pytest.approx((up - down) / 2e-4, rel=1e-3, abs=1e-7)


def test_objectives_naming_a_missing_structure_are_refused(case2d):
    with pytest.raises(ValueError, match="lacks: liver"):
        fluence_optimize(case2d.dose_influence, case2d.structures, [Objective("liver", "mean", 1.0)])
    with pytest.raises(ValueError, match="kind 'minmax'"):
        Objective("PTV", "minmax", 1.0)


def test_default_weights_fail_and_the_tuned_set_passes_every_goal(case2d, goals2d, passing_2d):
    ev = PlanEvaluator(case2d, goals2d)
    default = ev.evaluate(to_json(default_hyperparameters(case2d), case2d))
    assert default.valid and not default.passed
    assert default.metrics["goals_passed"] < default.metrics["goals_total"]
    assert default.metrics["PTV_D95_Gy"] < 78
    assert "FAIL" in default.text and "PTV D95" in default.text and "Trade-off" in default.text
    tuned = ev.evaluate(json.dumps(passing_2d))
    assert tuned.passed and tuned.metrics["goals_passed"] == tuned.metrics["goals_total"]
    assert tuned.score > default.score and -0.01 < tuned.score <= 0
    # The trade-off is real: the coverage that passes costs rectum dose.
    assert tuned.metrics["rectum_V70_pct"] > default.metrics["rectum_V70_pct"]


def test_the_same_candidate_is_planned_once(case2d, goals2d, passing_2d, monkeypatch):
    from domains.radiotherapy import planning

    ev = PlanEvaluator(case2d, goals2d)
    first = ev.evaluate(json.dumps(passing_2d))
    monkeypatch.setattr(planning, "plan", lambda *a, **k: (_ for _ in ()).throw(AssertionError("replanned")))
    again = ev.evaluate("```json\n" + json.dumps(passing_2d, indent=4) + "\n```")
    assert again is first


def test_matrix_cache_is_reused(case2d, monkeypatch):
    def no_build(*args, **kwargs):
        raise AssertionError("the matrix was rebuilt despite the cache")

    monkeypatch.setattr(pencil_beam, "dose_influence_matrix", no_build)
    again = prostate_case(planar=True)
    assert (again.dose_influence != case2d.dose_influence).nnz == 0


def test_npz_case_round_trip(case2d, tmp_path):
    path = tmp_path / "mine.npz"
    save_npz_case(case2d, path)
    mine = load_case(str(path))
    assert mine.name == "prostate-2d" and mine.targets == ["PTV"]
    assert (mine.dose_influence != case2d.dose_influence).nnz == 0
    for s in case2d.structures:
        np.testing.assert_array_equal(mine.structures[s], case2d.structures[s])
    a = plan(mine, default_hyperparameters(mine))
    b = plan(case2d, default_hyperparameters(case2d))
    np.testing.assert_allclose(a.dose, b.dose, rtol=1e-6)


def test_bad_npz_cases_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_npz_case(tmp_path / "none.npz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, dij_data=np.ones(1))
    with pytest.raises(ValueError, match="lacks the arrays"):
        load_npz_case(bad)
    with pytest.raises(ValueError, match="unknown case 'liver'"):
        load_case("liver")


@pytest.mark.slow
def test_the_3d_case_plans_and_fails_by_default():
    case = load_case("prostate")
    assert len(case.grid_shape) == 3 and case.voxel_size_mm == (5.0, 5.0, 5.0)
    from domains.radiotherapy.goals import load_goals

    ev = PlanEvaluator(case, load_goals(case.default_goals, case.structure_names))
    default = ev.evaluate(to_json(default_hyperparameters(case), case))
    assert default.valid and not default.passed


def test_callback_traces_a_decreasing_objective(case2d):
    from domains.radiotherapy.hyperparameters import objectives_for

    trace = []
    result = fluence_optimize(case2d.dose_influence, case2d.structures,
                              objectives_for(default_hyperparameters(case2d), case2d), callback=trace.append)
    assert len(trace) == result.iterations
    assert trace[-1] == pytest.approx(result.objective_value) and trace[0] > trace[-1]


def test_screened_dose_gives_the_exact_objective_and_gradient(case2d):
    """The screening skips voxels provably below their overdose level; value and gradient must not change."""
    from domains.radiotherapy.fluence import ScreenedDose
    from domains.radiotherapy.hyperparameters import objectives_for

    hp = default_hyperparameters(case2d)
    hp["rectum"]["dose_Gy"] = 30.0
    objectives = objectives_for(hp, case2d) + [Objective("femoral_head_L", "max", 5.0, 20.0)]
    m = case2d.dose_influence
    screened = ScreenedDose(m, case2d.structures, objectives)
    assert len(screened.screened) > 0.9 * m.shape[0]  # the body is screened, the PTV is always computed
    rng = np.random.default_rng(3)
    x = np.full(m.shape[1], 1.0)
    skipped = 0
    for step in range(40):
        x = np.maximum(x + rng.normal(0, 0.3 if step % 10 else 3.0, size=x.shape), 0)  # small steps, some big
        exact = m @ x.astype(np.float32)
        fast = screened(x)  # the dose of screened.voxels, in that order
        for o in objectives:
            v_exact, g_exact = objective_terms(exact, case2d.structures[o.structure], o)
            v_fast, g_fast = objective_terms(fast, screened.local_rows[o.structure], o)
            # Equal up to float32 rounding (dense and sparse products sum in different orders).
            assert v_fast == pytest.approx(v_exact, rel=1e-4, abs=1e-6)
            np.testing.assert_allclose(g_fast, g_exact, rtol=1e-4, atol=1e-4 * np.abs(g_exact).max() + 1e-12)
        skipped += int(np.sum(fast == 0))
        g = np.zeros(m.shape[0], dtype=np.float32)
        g[case2d.structures["rectum"]] = np.maximum(exact[case2d.structures["rectum"]] - 30, 0)
        g[case2d.structures["PTV"]] = exact[case2d.structures["PTV"]] - 78
        reference = m.T @ g  # float32 sums of terms of both signs: compare against the gradient's scale
        np.testing.assert_allclose(screened.transpose_product(g[screened.voxels]), reference, rtol=1e-4,
                                   atol=1e-5 * np.abs(reference).max())
    assert skipped > 0  # the screening did skip voxels
    assert len(screened.hot) > 0  # and moved the voxels near their level into the dense hot rows


def test_a_float64_matrix_is_read_in_place_and_gives_the_same_plan(case2d):
    """The screened blocks are views of the caller's matrix (any float dtype); it must come back unchanged."""
    from domains.radiotherapy.hyperparameters import objectives_for

    objectives = objectives_for(default_hyperparameters(case2d), case2d)
    m64 = case2d.dose_influence.astype(np.float64)
    before = m64.copy()
    a = fluence_optimize(case2d.dose_influence, case2d.structures, objectives)
    b = fluence_optimize(m64, case2d.structures, objectives)
    assert b.objective_value == pytest.approx(a.objective_value, rel=1e-3)
    assert (m64 != before).nnz == 0 and m64.dtype == np.float64
