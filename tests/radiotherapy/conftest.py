import os

import pytest

USER_CACHE_DIR = os.environ.get("TGDOMAINS_CACHE_DIR")  # before the session fixture below replaces it


@pytest.fixture(scope="session", autouse=True)
def _matrix_cache(tmp_path_factory):
    """Dose-influence matrices go to a fresh cache for the session (so the cache path is exercised, not assumed)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("TGDOMAINS_CACHE_DIR", str(tmp_path_factory.mktemp("tgd-cache")))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def domain():
    from domains.radiotherapy.plugin import RadiotherapyDomain

    return RadiotherapyDomain()


@pytest.fixture(scope="module")
def instance(domain, _matrix_cache):
    """The prostate-2d case as the domain loads it."""
    return domain.load({"case": "prostate-2d"})


@pytest.fixture(scope="session")
def case2d(_matrix_cache):
    from domains.radiotherapy.cases import load_case

    return load_case("prostate-2d")


@pytest.fixture(scope="session")
def goals2d(case2d):
    from domains.radiotherapy.goals import load_goals

    return load_goals(case2d.default_goals, case2d.structure_names)


@pytest.fixture
def passing_2d():
    """A hand-tuned weight set that meets every default goal on prostate-2d: the PTV dominates, the rectum
    gives up its overlap, the body objective keeps the hot spot down."""
    return dict(PASSING_2D)


PASSING_2D = {
    "PTV": {"weight": 1500, "dose_Gy": 80.8},
    "rectum": {"weight": 10, "dose_Gy": 31},
    "bladder": {"weight": 30, "dose_Gy": 40},
    "femoral_head_L": {"weight": 100, "dose_Gy": 20},
    "femoral_head_R": {"weight": 20, "dose_Gy": 35},
    "body": {"weight": 40, "dose_Gy": 58},
}


@pytest.fixture(scope="module")
def user_cache():
    """The user's own matrix cache (for cases that are expensive to compute, like tg119)."""
    mp = pytest.MonkeyPatch()
    if USER_CACHE_DIR is None:
        mp.delenv("TGDOMAINS_CACHE_DIR", raising=False)
    else:
        mp.setenv("TGDOMAINS_CACHE_DIR", USER_CACHE_DIR)
    yield
    mp.undo()
