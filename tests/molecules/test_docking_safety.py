"""Docking runs no shell (a `$` in a SMILES is chemistry, not a shell variable) and has a time limit: a molecule
that docks for too long is stopped, with the programs its worker started, and scored invalid saying why."""

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from domains.molecules import DockingCache, DockingSettings, MoleculeEvaluator, MoleculeTask
from domains.molecules.docking import _protonate, dock_in_this_process

ROOT = Path(__file__).resolve().parents[2]
QUADRUPLE = "C$C"  # valid SMILES: two carbons and a quadruple bond; a shell reads "C" and an empty variable $C


def test_protonation_passes_a_dollar_sign_through_unchanged():
    assert _protonate(QUADRUPLE) == QUADRUPLE


def test_the_dockstring_pipeline_starts_no_shell_and_docks_the_molecule_it_was_given(monkeypatch, tmp_path):
    started = []
    real_popen = subprocess.Popen

    class RecordingPopen(real_popen):
        def __init__(self, args, *rest, **kwargs):
            started.append((args, kwargs.get("shell", False)))
            super().__init__(args, *rest, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", RecordingPopen)
    monkeypatch.setattr(os, "system", lambda command: pytest.fail(f"os.system({command!r})"))
    settings = DockingSettings(backend="dockstring", exhaustiveness=1, cache_dir=str(tmp_path))
    result = dock_in_this_process(QUADRUPLE, "DRD2", settings)
    assert started and all(not shell and isinstance(args, list) for args, shell in started), started
    protonations = [args for args, _ in started if any(str(a).startswith("-:") for a in args)]
    assert protonations and all(f"-:{QUADRUPLE}" in args for args in protonations)  # the whole SMILES, `$` and all
    assert result["smiles"] == QUADRUPLE
    assert result["error"] or result["vina"] is not None  # it docks itself, or says why it cannot


def test_a_dollar_smiles_is_not_read_back_from_a_cache_entry_written_by_the_shell_pipeline(tmp_path):
    settings = DockingSettings(backend="dockstring", exhaustiveness=1, cache_dir=str(tmp_path))
    fields = json.dumps([QUADRUPLE, "DRD2", "dockstring", 1, settings.seed])  # the key before protonation was fixed
    old_key = hashlib.sha256(fields.encode()).hexdigest()
    entry = tmp_path / old_key[:2] / f"{old_key}.json"
    entry.parent.mkdir(parents=True)
    entry.write_text(json.dumps({"smiles": QUADRUPLE, "target": "DRD2", "backend": "dockstring", "exhaustiveness": 1,
                                 "seed": settings.seed, "vina": -1.2}))  # methane's score
    assert DockingCache(tmp_path).get(QUADRUPLE, "DRD2", settings) is None
    assert DockingCache.key("CCO", "DRD2", "dockstring", 1, settings.seed) == hashlib.sha256(
        json.dumps(["CCO", "DRD2", "dockstring", 1, settings.seed]).encode()).hexdigest()  # other entries kept


@pytest.mark.parametrize("bad", [0, -5, float("nan"), float("inf"), "60", True])
def test_a_bad_time_limit_names_the_setting(bad):
    with pytest.raises(ValueError, match="time_limit_s must be a positive number of seconds"):
        DockingSettings(time_limit_s=bad).checked()


def _session_members(session_ids: set[int]) -> list[str]:
    """Live processes in any of these sessions (what a killed worker might have left behind)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[0] != "Z" and int(fields[3]) in session_ids:
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
    return found


@pytest.mark.slow
def test_a_docking_past_its_time_limit_is_stopped_and_scored_invalid(tmp_path):
    long_alkane = "C" * 30  # valid; Vina needs over a minute for it even at exhaustiveness 1
    settings = DockingSettings(backend="dockstring", exhaustiveness=1, cache_dir=str(tmp_path), workers=1,
                               time_limit_s=12)  # room for a fresh worker to start and dock ethanol
    evaluator = MoleculeEvaluator(MoleculeTask(docking=settings))
    seen: dict[str, object] = {"members": []}

    def watch():  # while it docks: the worker's session and what runs in it (the Vina binary)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(seen["members"]) < 2:
            time.sleep(0.1)
            pool = evaluator.docker.pool if evaluator.docker is not None else None
            if pool is not None:
                seen["sessions"] = {w.process.pid for w in list(pool._all) if w.process is not None}
                seen["members"] = _session_members(seen["sessions"])

    watcher = threading.Thread(target=watch)
    start = time.monotonic()
    watcher.start()
    verdict = evaluator.evaluate(long_alkane)
    took = time.monotonic() - start
    watcher.join()
    assert not verdict.valid and "docking took longer than the time limit of 12 s" in verdict.text, verdict.text
    assert took < 30, took
    assert len(seen["members"]) >= 2, seen  # the worker and the docking program it started ...
    assert not _session_members(seen["sessions"])  # ... are all gone
    assert len(DockingCache(tmp_path)) == 0  # a time-out is not cached: a later, larger limit docks it again
    again = evaluator.evaluate("CCO")  # a fresh worker takes the next molecule
    assert again.valid, again.text
    evaluator.docker.close()



@pytest.mark.slow
def test_a_docking_worker_and_its_programs_stop_when_their_parent_is_killed():
    parent_code = ("import threading, time\n"
                   "from domains.molecules.docking import DockingSettings, Docker\n"
                   "docker = Docker(DockingSettings(backend='dockstring', exhaustiveness=1, use_cache=False, workers=1))\n"
                   "threading.Thread(target=lambda: docker.dock('C' * 30, 'DRD2'), daemon=True).start()\n"
                   "time.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, "-c", parent_code], env={**os.environ, "PYTHONPATH": str(ROOT)})
    sessions: set[int] = set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(_session_members(sessions)) < 2:  # the worker and the Vina binary
        time.sleep(0.2)
        sessions = {int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _parent_of(p) == parent.pid}
    assert len(_session_members(sessions)) >= 2
    parent.kill()  # a SIGKILL: the parent stops nothing itself
    parent.wait()
    deadline = time.monotonic() + 10
    while _session_members(sessions) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _session_members(sessions)


def _parent_of(proc: Path) -> int:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1
