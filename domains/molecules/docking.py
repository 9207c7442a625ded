"""AutoDock Vina docking on the 58 DOCKSTRING targets, in worker processes, cached on disk.

Two backends dock the same receptor files and search boxes (shipped by the `dockstring` package):

- ``dockstring``: the published pipeline (Open Babel 3.1 protonation at pH 7.4, RDKit embedding + MMFF, the Vina 1.1.2
  binary it ships). Paper-compatible; exhaustiveness 8 as published.
- ``vina``: the same ligand preparation up to the 3D structure, then meeko for the PDBQT (rings kept rigid, as Open
  Babel keeps them) and the `vina` Python package on one thread, one pose, score only; its grid maps are computed
  once per (target, seed) in each worker and reused for every later ligand. Nearly all of its CPU is Vina's search.

Docking always runs in worker processes: the `vina` package calls C ``exit()`` on some inputs, which would take the
caller down with it. A worker that dies is replaced and its molecules are retried one at a time. A docking that runs
past `DockingSettings.time_limit_s` is stopped (the worker and the programs it started are killed) and the molecule
is scored invalid, saying so. Every finished result (a score or a docking error; not a time-out) is stored on disk
under a key of (canonical SMILES, target, backend, exhaustiveness, seed), so no molecule is ever docked twice with
the same settings.

No shell is ever involved: every program (Open Babel, the Vina binary) gets its arguments as a list. dockstring's own
protonation builds a shell command line, in which the ``$`` of a quadruple bond starts a shell variable and the rest
of the SMILES is lost (``C$C`` became methane); the worker replaces that one function by `_protonate`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from domains.molecules.chemistry import canonical_smiles

if TYPE_CHECKING:
    from domains.molecules.worker_pool import WorkerPool

BACKENDS = ("dockstring", "vina")
DEFAULT_BACKEND = "dockstring"
DEFAULT_EXHAUSTIVENESS = 8
DEFAULT_SEED = 974528263  # dockstring's default seed, so scores match the published pipeline
DEFAULT_TARGET = "DRD2"
PROTONATION_PH = 7.4
DEFAULT_TIME_LIMIT_S = 600.0  # one molecule's docking; exhaustiveness 8 docks a drug-like molecule in ~10-100 s
# Bumped when a backend's docking changes its scores, so that older cache entries are not read back.
# vina 2: rings of 7+ atoms kept rigid, as dockstring does (see _prepare_ligand).
_BACKEND_REVISIONS = {"vina": 2}
# dockstring entries of SMILES holding a `$` were docked as another molecule (see the module docstring): new keys
_SHELL_FREE_REVISION = "no-shell"


@dataclass(frozen=True)
class DockingResult:
    """One docking of one molecule. ``vina`` is the best pose's Vina score in kcal/mol (lower binds better)."""

    smiles: str
    target: str
    backend: str
    exhaustiveness: int
    seed: int
    vina: float | None  # None when docking failed; `error` says why
    error: str | None = None
    cpu_seconds: float = 0.0  # this ligand's CPU time in the worker, child processes (obabel, vina binary) included
    setup_cpu_seconds: float = 0.0  # grid maps computed for this call (vina backend, first ligand per worker)
    wall_seconds: float = 0.0
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.vina is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DockingResult:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class DockingSettings:
    """How to dock: backend, search effort, seed, where the cache lives and how many worker processes."""

    backend: str = DEFAULT_BACKEND
    exhaustiveness: int = DEFAULT_EXHAUSTIVENESS
    seed: int = DEFAULT_SEED
    cache_dir: str | None = None  # None: $TGDOMAINS_CACHE_DIR/docking (default ~/.cache/tgdomains/docking)
    use_cache: bool = True
    workers: int | None = None  # None: one per CPU core
    time_limit_s: float = DEFAULT_TIME_LIMIT_S  # per molecule; past it the worker is killed, the molecule invalid

    def checked(self) -> DockingSettings:
        """These settings, or ValueError naming the bad one."""
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown docking backend {self.backend!r}; choose one of {', '.join(BACKENDS)}")
        if not isinstance(self.exhaustiveness, int) or not 1 <= self.exhaustiveness <= 64:
            raise ValueError(f"exhaustiveness must be an integer from 1 to 64, got {self.exhaustiveness!r}")
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**31:
            raise ValueError(f"seed must be an integer in [0, 2**31), got {self.seed!r}")
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 1):
            raise ValueError(f"workers must be a positive integer, got {self.workers!r}")
        limit = self.time_limit_s
        if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not 0 < limit < float("inf"):
            raise ValueError(f"time_limit_s must be a positive number of seconds, got {limit!r}")
        return self


def default_cache_dir() -> Path:
    from tgdomains.caches import cache_dir

    return cache_dir("docking")


def list_targets() -> list[str]:
    """The 58 DOCKSTRING target names."""
    from dockstring import list_all_target_names

    return sorted(list_all_target_names())


def check_target(name: str) -> str:
    """The target's DOCKSTRING name (case-insensitive), or ValueError listing the known ones."""
    targets = list_targets()
    by_upper = {t.upper(): t for t in targets}
    found = by_upper.get(str(name).strip().upper())
    if found is None:
        raise ValueError(f"unknown docking target {name!r}; DOCKSTRING targets: {', '.join(targets)}")
    return found


class DockingCache:
    """One JSON file per docking result, named by the hash of what determines the score."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    @staticmethod
    def key(smiles: str, target: str, backend: str, exhaustiveness: int, seed: int) -> str:
        revision = _BACKEND_REVISIONS.get(backend)  # a backend that now docks differently gets fresh entries
        if backend == "dockstring" and "$" in smiles:
            revision = _SHELL_FREE_REVISION
        fields = json.dumps([smiles, target, backend, exhaustiveness, seed] + ([revision] if revision else []))
        return hashlib.sha256(fields.encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, smiles: str, target: str, settings: DockingSettings) -> DockingResult | None:
        """The stored result, or None: missing, half-written (a killed process), a link, or not the result of
        exactly this docking (the cache folder may be shared: an entry is data to check, never trusted)."""
        from tgdomains.files import read_bytes

        path = self._path(self.key(smiles, target, settings.backend, settings.exhaustiveness, settings.seed))
        try:
            data = json.loads(read_bytes(path, 1 << 20, what="docking cache entry"))
        except (OSError, ValueError, RecursionError):  # UnsafeFileError is a ValueError
            return None
        expected = {"smiles": smiles, "target": target, "backend": settings.backend,
                    "exhaustiveness": settings.exhaustiveness, "seed": settings.seed}
        if not isinstance(data, dict) or any(data.get(k) != v for k, v in expected.items()):
            return None
        vina, error = data.get("vina"), data.get("error")
        if not (vina is None and isinstance(error, str)) and not (
                isinstance(vina, (int, float)) and not isinstance(vina, bool) and math.isfinite(vina)):
            return None
        try:
            return replace(DockingResult.from_dict(data), cached=True)
        except (TypeError, ValueError):
            return None

    def put(self, result: DockingResult) -> None:
        """Store `result`; a cache folder that cannot be written costs a warning, never the docking."""
        key = self.key(result.smiles, result.target, result.backend, result.exhaustiveness, result.seed)
        path = self._path(key)
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write then rename: a reader never sees a partial file, even if this process is killed mid-write.
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "w") as handle:
                json.dump(result.to_dict(), handle)
            os.replace(tmp, path)
        except OSError as exc:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            from tgdomains.caches import cache_warning

            warnings.warn(cache_warning(self.directory, exc), stacklevel=2)

    def __len__(self) -> int:
        return sum(1 for _ in self.directory.glob("*/*.json")) if self.directory.exists() else 0


@dataclass(frozen=True)
class _Outcome:
    result: DockingResult
    error_is_transient: bool = False  # the worker died: do not cache, dock again next time


@dataclass
class Docker:
    """Docks molecules with fixed settings: cache first, then worker processes. Counts what it did."""

    settings: DockingSettings = field(default_factory=DockingSettings)
    docked: int = 0  # molecules actually docked by a worker (cache misses)
    cache_hits: int = 0
    pool: WorkerPool | None = None  # the worker processes to use (default: this Docker's own, see `close`)

    def workers(self) -> WorkerPool:
        if self.pool is None:
            from domains.molecules.worker_pool import WorkerPool

            self.pool = WorkerPool()
        return self.pool

    def close(self) -> None:
        """Stop the worker processes (a later docking starts new ones)."""
        if self.pool is not None:
            self.pool.close()

    @property
    def cache(self) -> DockingCache:
        return DockingCache(self.settings.cache_dir or default_cache_dir())

    def dock(self, smiles: str, target: str) -> DockingResult:
        """Dock one molecule (any valid SMILES; canonicalised first). Raises SmilesError for an invalid one."""
        return self.dock_many([smiles], target)[0]

    def dock_many(self, smiles_list: list[str], target: str) -> list[DockingResult]:
        """Dock many molecules on one target in parallel; results in input order, each docked at most once."""
        settings = self.settings.checked()
        target = check_target(target)
        canonical = [canonical_smiles(s) for s in smiles_list]
        cache = self.cache
        results: dict[str, DockingResult] = {}
        for smiles in dict.fromkeys(canonical):
            hit = cache.get(smiles, target, settings) if settings.use_cache else None
            if hit is not None:
                results[smiles] = hit
                self.cache_hits += 1
        todo = [s for s in dict.fromkeys(canonical) if s not in results]
        for outcome in _dock_in_workers(todo, target, settings, self.workers()) if todo else []:
            self.docked += 1
            if settings.use_cache and not outcome.error_is_transient:
                cache.put(outcome.result)
            results[outcome.result.smiles] = outcome.result
        return [results[s] for s in canonical]


def dock(
    smiles: str,
    target: str = DEFAULT_TARGET,
    *,
    backend: str = DEFAULT_BACKEND,
    exhaustiveness: int = DEFAULT_EXHAUSTIVENESS,
    seed: int = DEFAULT_SEED,
    cache_dir: str | None = None,
    use_cache: bool = True,
) -> DockingResult:
    """Dock one molecule on a DOCKSTRING target; see `Docker` for many at once."""
    settings = DockingSettings(backend, exhaustiveness, seed, cache_dir, use_cache)
    docker = Docker(settings)
    try:
        return docker.dock(smiles, target)
    finally:
        docker.close()


# ---------------------------------------------------------------------------------------------------------------
# What runs inside a worker process (see worker.py and worker_pool.py)


def _dock_in_workers(smiles_list: list[str], target: str, settings: DockingSettings,
                     pool: WorkerPool) -> list[_Outcome]:
    def crashed(message: dict[str, Any], why: str) -> dict[str, Any]:
        failure = DockingResult(message["smiles"], target, settings.backend, settings.exhaustiveness, settings.seed,
                                None, error=why)
        return {**failure.to_dict(), "transient": True}

    plain_settings = {k: v for k, v in asdict(settings).items()}
    messages = [{"smiles": s, "target": target, "settings": plain_settings} for s in smiles_list]
    replies = pool.run_requests(messages, settings.workers or os.cpu_count() or 1, crashed,
                                time_limit_s=settings.time_limit_s)
    # A worker killed twice on one molecule may have been the machine's doing (memory): do not cache that.
    return [_Outcome(DockingResult.from_dict(r), error_is_transient=bool(r.get("transient"))) for r in replies]


def dock_in_this_process(smiles: str, target: str, settings: DockingSettings) -> dict[str, Any]:
    """Dock one canonical SMILES here and now (in a worker); every failure becomes a result with `error` set."""
    import resource

    def cpu_now() -> float:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + children.ru_utime + children.ru_stime

    wall_start, cpu_start = time.perf_counter(), cpu_now()
    setup_cpu = 0.0
    try:
        if settings.backend == "dockstring":
            score = _dock_dockstring(smiles, target, settings)
        else:
            score, setup_cpu = _dock_vina(smiles, target, settings, cpu_now)
        error = None if score is not None else "Vina returned no pose"
    except Exception as exc:  # dockstring and meeko raise many types; each is a per-molecule docking failure
        score, error = None, f"{type(exc).__name__}: {exc}".strip()
    result = DockingResult(
        smiles, target, settings.backend, settings.exhaustiveness, settings.seed, score, error,
        cpu_seconds=cpu_now() - cpu_start - setup_cpu, setup_cpu_seconds=setup_cpu,
        wall_seconds=time.perf_counter() - wall_start,
    )
    return result.to_dict()


def _dock_dockstring(smiles: str, target: str, settings: DockingSettings) -> float | None:
    import dockstring.utils
    from dockstring import load_target
    from dockstring.utils import get_targets_dir

    # dockstring's protonate_mol calls this module-level function: ours passes an argument list, never a shell line
    dockstring.utils.protonate_smiles = _protonate

    # dockstring reads the box from <target>_conf.txt and has no exhaustiveness argument: give it a copy of the
    # conf with an `exhaustiveness` line (Vina's own config key) next to a link to the receptor.
    with tempfile.TemporaryDirectory(prefix="tgd-dock-") as work:
        targets_dir = Path(work) / "targets"
        targets_dir.mkdir()
        source = get_targets_dir()
        os.symlink(source / f"{target}_target.pdbqt", targets_dir / f"{target}_target.pdbqt")
        conf = (source / f"{target}_conf.txt").read_text()
        (targets_dir / f"{target}_conf.txt").write_text(f"{conf.rstrip()}\nexhaustiveness = {settings.exhaustiveness}\n")
        docking_target = load_target(target, working_dir=work, targets_dir=targets_dir)
        score, _ = docking_target.dock(smiles, pH=PROTONATION_PH, num_cpus=1, seed=settings.seed)
    return None if score is None else float(score)


_vina_by_target: dict[tuple[str, int], Any] = {}  # per worker: a Vina object with its grid maps, by (target, seed)


def _dock_vina(smiles: str, target: str, settings: DockingSettings, cpu_now: Any) -> tuple[float | None, float]:
    ligand_pdbqt = _prepare_ligand(smiles, settings.seed)
    setup_start = cpu_now()
    engine = _vina_by_target.get((target, settings.seed))
    if engine is None:
        engine = _vina_with_maps(target, settings.seed)
        _vina_by_target[(target, settings.seed)] = engine
    setup_cpu = cpu_now() - setup_start
    engine.set_ligand_from_string(ligand_pdbqt)
    engine.dock(exhaustiveness=settings.exhaustiveness, n_poses=1)
    energies = engine.energies(n_poses=1)
    return (float(energies[0][0]) if len(energies) else None), setup_cpu


def _vina_with_maps(target: str, seed: int) -> Any:
    from dockstring.utils import get_targets_dir, parse_search_box_conf
    from vina import Vina

    box = parse_search_box_conf(get_targets_dir() / f"{target}_conf.txt")
    engine = Vina(sf_name="vina", cpu=1, seed=seed, verbosity=0)
    engine.set_receptor(str(get_targets_dir() / f"{target}_target.pdbqt"))
    engine.compute_vina_maps(
        center=[box["center_x"], box["center_y"], box["center_z"]],
        box_size=[box["size_x"], box["size_y"], box["size_z"]],
    )
    return engine


def _prepare_ligand(smiles: str, seed: int) -> str:
    """dockstring's ligand preparation up to the 3D structure, then meeko's PDBQT (its ok flag checked first)."""
    from dockstring.utils import check_mol, embed_mol, refine_mol_with_ff, sanitize_mol
    from meeko import MoleculePreparation, PDBQTWriterLegacy
    from rdkit import Chem

    mol = sanitize_mol(Chem.MolFromSmiles(smiles))
    check_mol(mol)
    protonated = Chem.MolFromSmiles(_protonate(Chem.MolToSmiles(mol)))
    if protonated is None:
        raise ValueError("Open Babel's protonated SMILES is unreadable")
    check_mol(protonated)
    embedded = refine_mol_with_ff(embed_mol(protonated, seed=seed))
    # Open Babel's PDBQT (dockstring's) keeps every ring rigid. meeko by default opens rings of 7+ atoms (diazepam's)
    # into flexible chains with glue atoms: more torsions, a slower search and a different score. Keep rings rigid.
    setups = MoleculePreparation(rigid_macrocycles=True).prepare(embedded)
    if len(setups) != 1:
        raise ValueError(f"meeko prepared {len(setups)} molecule setups, expected 1")
    pdbqt, ok, message = PDBQTWriterLegacy.write_string(setups[0])
    # An empty or broken ligand string makes vina call C exit(): never hand it one.
    if not ok or not pdbqt.strip():
        raise ValueError(f"meeko could not write the ligand PDBQT: {message.strip() or 'no reason given'}")
    return pdbqt


def _protonate(smiles: str, pH: float = PROTONATION_PH) -> str:  # noqa: N803 - dockstring's protonate_smiles
    """Open Babel 3.1 protonation at pH 7.4, as dockstring does it (the command, never the Python bindings), with
    the SMILES as one argument of an argument list: no shell reads it."""
    import subprocess

    done = subprocess.run(
        ["obabel", f"-:{smiles}", "-ismi", "-ocan", f"-p{pH}"], capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise ValueError(f"Open Babel protonation failed: {done.stderr.strip()[:200]}")
    return done.stdout.split()[0]
