"""Real docking (AutoDock Vina on DOCKSTRING's DRD2), small: paracetamol at exhaustiveness 1."""

import json

import pytest

from domains.molecules import Docker, DockingCache, DockingSettings, MoleculeEvaluator, MoleculeTask, dock
from domains.molecules.docking import check_target, list_targets

LIGAND = "CC(=O)Nc1ccc(O)cc1"  # paracetamol: small, docks in a few seconds


def test_the_58_dockstring_targets_are_known_by_name():
    assert len(list_targets()) == 58
    assert check_target("drd2") == "DRD2"
    with pytest.raises(ValueError, match="unknown docking target 'DRD9'.*DRD2"):
        check_target("DRD9")


@pytest.mark.parametrize("bad", [
    {"backend": "gnina"}, {"exhaustiveness": 0}, {"exhaustiveness": 2.5}, {"seed": -1}, {"workers": 0},
])
def test_bad_docking_settings_name_the_setting(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        DockingSettings(**bad).checked()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["dockstring", "vina"])
def test_real_docking_of_a_small_ligand_then_a_cache_hit(backend, tmp_path):
    settings = DockingSettings(backend=backend, exhaustiveness=1, cache_dir=str(tmp_path), workers=1)
    docker = Docker(settings)
    first = docker.dock("OC1=CC=C(NC(C)=O)C=C1", "DRD2")  # a non-canonical spelling of the ligand
    assert first.ok and first.error is None, first.error
    assert first.smiles == LIGAND and not first.cached
    assert -9.0 < first.vina < -4.0  # kcal/mol; paracetamol is a weak binder
    assert first.cpu_seconds > 0
    assert (docker.docked, docker.cache_hits) == (1, 0)

    again = Docker(settings).dock(LIGAND, "drd2")  # a new Docker, same disk cache
    assert again.cached and again.vina == first.vina
    assert len(DockingCache(tmp_path)) == 1

    # Any field of the key changes the entry: another seed docks again.
    other_seed = Docker(DockingSettings(backend=backend, exhaustiveness=1, seed=1, cache_dir=str(tmp_path)))
    assert not other_seed.dock(LIGAND, "DRD2").cached
    assert len(DockingCache(tmp_path)) == 2


@pytest.mark.slow
def test_many_molecules_dock_in_parallel_once_each(fast_docking):
    docker = Docker(fast_docking)
    results = docker.dock_many(["CCO", LIGAND, "OCC", "c1ccccc1"], "DRD2")
    assert [r.smiles for r in results] == ["CCO", LIGAND, "CCO", "c1ccccc1"]
    assert all(r.ok for r in results)
    assert results[0] == results[2]
    assert docker.docked == 3  # the duplicate spelling of ethanol was docked once
    assert results[1].vina < results[0].vina  # paracetamol binds better than ethanol


@pytest.mark.slow
def test_the_dock_function_and_a_corrupt_cache_file(tmp_path):
    result = dock("CCO", "DRD2", backend="vina", exhaustiveness=1, cache_dir=str(tmp_path))
    assert result.ok
    (entry,) = tmp_path.glob("*/*.json")
    entry.write_text("{ half a file")  # a process killed mid-write: the entry is a miss, not a crash
    again = dock("CCO", "DRD2", backend="vina", exhaustiveness=1, cache_dir=str(tmp_path))
    assert not again.cached and again.vina == result.vina
    assert json.loads(entry.read_text())["vina"] == result.vina


def test_invalid_smiles_are_rejected_before_any_docking(tmp_path):
    docker = Docker(DockingSettings(cache_dir=str(tmp_path)))
    evaluator = MoleculeEvaluator(MoleculeTask(docking=docker.settings), docker=docker)
    for smiles, reason in [("C1CC(", "position 5"), ("CCO.O", "several fragments"), ("[Fe]", "unsupported element")]:
        evaluation = evaluator.evaluate(smiles)
        assert not evaluation.valid and reason in evaluation.text
        assert evaluation.to_dict()["score"] is None
    assert docker.docked == 0 and not tmp_path.joinpath("x").exists() and len(DockingCache(tmp_path)) == 0


def test_vina_ligand_preparation_keeps_a_seven_membered_ring_rigid_as_dockstring_does():
    from domains.molecules.docking import DEFAULT_SEED, _prepare_ligand

    pdbqt = _prepare_ligand("CN1C(=O)CN=C(c2ccccc2)c2cc(Cl)ccc21", DEFAULT_SEED)  # diazepam
    atoms = [line for line in pdbqt.splitlines() if line.startswith(("ATOM", "HETATM"))]
    assert not [a for a in atoms if a[77:].strip().startswith(("G", "CG"))]  # no ring-closure glue atoms
    assert "TORSDOF 1" in pdbqt and pdbqt.count("BRANCH") == 2  # one torsion (the phenyl), as in Open Babel's PDBQT
