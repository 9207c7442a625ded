"""The TG-119 case through pyRadPlan (optional extra ``radiotherapy-pyradplan``). The case is computed once per
machine (about half a minute) and kept in the user's cache, so this module uses the real cache directory."""

import pytest

pytest.importorskip("pyRadPlan")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tg119(user_cache):
    from domains.radiotherapy.cases import load_case

    return load_case("tg119")


def test_tg119_case_structures_and_goals(tg119):
    assert set(tg119.structures) == {"PTV", "core", "body"}
    assert tg119.targets == ["PTV"] and tg119.prescription_Gy == 50
    # pyRadPlan's overlap priorities: the body excludes the target and the core.
    assert tg119.overlap_pct("body", "PTV") == 0 and tg119.overlap_pct("body", "core") == 0
    assert tg119.dose_influence.shape[0] == len(tg119.voxel_index)


def test_tg119_plans_against_its_goals(tg119, user_cache):
    from domains.radiotherapy.plugin import RadiotherapyDomain

    domain = RadiotherapyDomain()
    instance = domain.load({"case": "tg119"})
    ev = domain.evaluate(domain.initial(instance).value, instance)
    assert ev.valid and ev.metrics["goals_total"] == 3
    assert "PTV_D95_Gy" in ev.metrics and "core_D10_Gy" in ev.metrics
    assert 40 < ev.metrics["PTV_mean_Gy"] < 60
