"""A docking worker process SIGKILLed while it docks: that molecule is docked again on a fresh worker, the others
are untouched, and every score equals the one an undisturbed batch gets."""

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from domains.molecules import Docker, DockingSettings

LIGANDS = ["CCO", "CC(=O)O", "CCN", "Oc1ccccc1", "CC(=O)Nc1ccc(O)cc1", "CCOC(C)=O"]


def docking_workers() -> list[int]:
    """Pids of this process's docking worker children."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and b"domains.molecules.worker" in cmdline:
            found.append(int(proc.name))
    return found


@pytest.mark.slow
def test_a_docking_worker_killed_mid_batch_costs_one_retry(tmp_path):
    settings = DockingSettings(exhaustiveness=1, use_cache=False, workers=2, cache_dir=str(tmp_path))
    reference = Docker(settings).dock_many(LIGANDS, "DRD2")
    assert all(r.ok for r in reference), [r.error for r in reference]
    killed: list[int] = []

    def kill_one_mid_batch():
        time.sleep(1.0)  # the batch is under way: both workers are docking
        pids = docking_workers()
        if pids:
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    killer = threading.Thread(target=kill_one_mid_batch)
    killer.start()
    results = Docker(settings).dock_many(LIGANDS, "DRD2")
    killer.join()
    assert killed, "no docking worker was running to kill"
    assert [(r.smiles, r.vina, r.error) for r in results] == [(r.smiles, r.vina, r.error) for r in reference]
