import pytest

from domains.molecules import DockingSettings, MoleculesDomain


@pytest.fixture
def fast_docking(tmp_path):
    """Real docking, made small: the vina backend at exhaustiveness 1, a private cache."""
    return DockingSettings(backend="vina", exhaustiveness=1, cache_dir=str(tmp_path / "docking-cache"), workers=2)


@pytest.fixture
def domain():
    return MoleculesDomain()
