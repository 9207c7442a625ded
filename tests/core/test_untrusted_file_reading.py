"""Files from elsewhere are read with bounds: YAML without aliases and with a node cap (goal files and code problem
files alike), a short error that never quotes the document, and caches that never stop a run: a cache row or a
cassette line without reply text is a miss with a warning, and a cache folder with a file in its place costs one
warning line naming that file."""

from __future__ import annotations

import json
import re
import sqlite3
import warnings

import pytest

from tgdomains.engines import CachedEngine, RecordingEngine, ReplayEngine, ScriptedEngine
from tgdomains.engines.cache import CacheWarning
from tgdomains.files import UnsafeFileError, load_yaml, read_bytes

MSG = [{"role": "user", "content": "Say something."}]


def alias_bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\nproblems: [*a9]\n"


# -- YAML -------------------------------------------------------------------------------------------------------


def test_yaml_aliases_are_refused_in_a_short_line_naming_the_line():
    with pytest.raises(UnsafeFileError) as refused:
        load_yaml(alias_bomb(), "bomb.yaml")
    assert str(refused.value) == "bomb.yaml, line 2: not valid YAML (aliases (*name) are not accepted)"


def test_yaml_without_aliases_still_has_a_node_cap_and_a_size_cap():
    assert load_yaml("a: [1, 2, 3]\nb: {c: d}\n", "ok.yaml") == {"a": [1, 2, 3], "b": {"c": "d"}}
    with pytest.raises(UnsafeFileError, match="many.yaml, line 1: not valid YAML \\(more than 100 values\\)"):
        load_yaml("[" + ", ".join(["1"] * 200) + "]", "many.yaml", max_nodes=100)
    with pytest.raises(UnsafeFileError, match="big.yaml: 2,000 characters of YAML, over the limit of 1,000"):
        load_yaml("#" * 2000, "big.yaml", limit=1000)


@pytest.mark.parametrize(("text", "expected"), [
    ("a: !!python/object/apply:os.system ['true']\n", "could not determine a constructor"),
    ("[" * 5000, "nested more than 100 deep"),
    ("n: " + "9" * 5000 + "\n", "not valid YAML"),
    ("a: 1\na: [\n", "line"),
], ids=["python-tag", "deep", "long-integer", "cut"])
def test_hostile_yaml_is_one_short_line(text, expected):
    with pytest.raises(UnsafeFileError) as refused:
        load_yaml(text, "x.yaml")
    message = str(refused.value)
    assert message.startswith("x.yaml") and expected in message and len(message) < 300 and "\n" not in message


def test_a_code_problem_yaml_bomb_is_refused_by_the_problem_loader(tmp_path):
    from domains.code.problems import load_problems

    path = tmp_path / "problems.yaml"
    path.write_text(alias_bomb())
    with pytest.raises(ValueError) as refused:
        load_problems(path)
    assert "aliases (*name) are not accepted" in str(refused.value) and len(str(refused.value)) < 300


def test_reading_refuses_links_and_oversized_files(tmp_path):
    real = tmp_path / "real.txt"
    real.write_bytes(b"x" * 100)
    assert read_bytes(real, 100) == b"x" * 100
    with pytest.raises(UnsafeFileError, match="is 100 bytes, over the limit of 99"):
        read_bytes(real, 99)
    (tmp_path / "link.txt").symlink_to(real)
    with pytest.raises(UnsafeFileError, match="link.txt is a symbolic link"):
        read_bytes(tmp_path / "link.txt", 100)
    with pytest.raises(UnsafeFileError, match="is a folder, not a file"):
        read_bytes(tmp_path, 100)


# -- caches ----------------------------------------------------------------------------------------------------


def test_a_reply_cache_row_without_text_is_a_miss_with_a_warning(tmp_path):
    path = tmp_path / "cache.sqlite"
    first = CachedEngine(ScriptedEngine(["stored"]), path)
    assert first.generate(MSG).text == "stored"
    with sqlite3.connect(path) as db:
        db.execute("UPDATE replies SET text = NULL, prompt_tokens = 'many'")
    again = CachedEngine(ScriptedEngine(["asked again"]), path)
    with pytest.warns(CacheWarning, match="row without text"):
        assert again.generate(MSG).text == "asked again"
    assert CachedEngine(ScriptedEngine([]), path).generate(MSG).text == "asked again"  # the row was replaced


def test_a_cassette_line_without_text_is_skipped_with_a_warning(tmp_path):
    cassette = tmp_path / "run.jsonl"
    recorder = RecordingEngine(ScriptedEngine(["one", "two"]), cassette)
    recorder.generate(MSG)
    recorder.generate(MSG + [{"role": "user", "content": "More."}])
    lines = cassette.read_text().splitlines()
    broken = json.loads(lines[0])
    broken["text"] = None
    cassette.write_text("\n".join([json.dumps(broken), lines[1], "[1, 2]"]) + "\n")
    replay = ReplayEngine(cassette)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert replay.generate(MSG + [{"role": "user", "content": "More."}]).text == "two"
    assert [str(w.message).split(": ", 1)[1] for w in caught] == [
        f"line {n} has no reply text; skipped (a request that needed it is a miss)" for n in (1, 3)]
    with pytest.raises(KeyError):  # the skipped exchange is a miss, as a line that was never recorded
        replay.generate(MSG)
    assert replay.misses == 1
    imported = CachedEngine(ScriptedEngine([]), tmp_path / "c.sqlite").import_cassette(cassette)
    assert imported == 1


def test_a_reply_cache_whose_folder_is_a_file_warns_and_the_run_goes_on(tmp_path):
    blocker = tmp_path / "cache-root"
    blocker.write_text("not a folder")
    engine = CachedEngine(ScriptedEngine(["fine"]), blocker / "llm_cache.sqlite")
    with pytest.warns(CacheWarning, match=re.escape(f"({blocker} is a file, not a folder); going on without")):
        assert engine.generate(MSG).text == "fine"


def test_a_docking_cache_whose_folder_is_a_file_warns_and_the_result_is_kept(tmp_path):
    from domains.molecules.docking import DockingCache, DockingResult, DockingSettings

    blocker = tmp_path / "docking"
    blocker.write_text("not a folder")
    cache = DockingCache(blocker)
    result = DockingResult("CCO", "DRD2", "vina", 1, 0, -3.0)
    with pytest.warns(UserWarning, match=f"{blocker} is a file, not a folder"):
        cache.put(result)
    assert cache.get("CCO", "DRD2", DockingSettings(backend="vina", exhaustiveness=1, seed=0)) is None


def test_a_docking_cache_entry_for_another_molecule_is_not_served(tmp_path):
    from domains.molecules.docking import DockingCache, DockingResult, DockingSettings

    cache = DockingCache(tmp_path)
    settings = DockingSettings(backend="vina", exhaustiveness=1, seed=0)
    cache.put(DockingResult("CCO", "DRD2", "vina", 1, 0, -3.0))
    assert cache.get("CCO", "DRD2", settings).vina == -3.0
    entry = next(tmp_path.glob("*/*.json"))
    entry.write_text(json.dumps({**json.loads(entry.read_text()), "smiles": "CCN"}))  # moved under another key
    assert cache.get("CCO", "DRD2", settings) is None
    entry.write_text(json.dumps({**json.loads(entry.read_text()), "smiles": "CCO", "vina": "-99"}))
    assert cache.get("CCO", "DRD2", settings) is None


def test_a_radiotherapy_cache_whose_folder_is_a_file_warns_and_the_matrix_is_built(tmp_path, monkeypatch):
    import numpy as np
    import scipy.sparse as sp

    from domains.radiotherapy import cache

    blocker = tmp_path / "root"
    blocker.write_text("not a folder")
    monkeypatch.setenv("TGDOMAINS_CACHE_DIR", str(blocker))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        matrix = cache.cached_matrix("k", lambda: sp.identity(3, format="csr"))
    assert (matrix.toarray() == np.identity(3)).all()
    assert any(f"{blocker} is a file, not a folder" in str(w.message) for w in caught)
