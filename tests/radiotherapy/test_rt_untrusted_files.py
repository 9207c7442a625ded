"""Goal files and case files may come from someone else: an alias bomb, a link, a FIFO, a case with out-of-range
sparse indices, NaN doses, a pickled array or a member that inflates past the limit is refused with one short line
naming the file, before anything is built from it; a NaN score is never valid; a reply naming thousands of made-up
structures gets a short parse error."""

from __future__ import annotations

import io
import math
import os
import zipfile

import numpy as np
import pytest
import scipy.sparse as sp

from domains.radiotherapy import case as case_module
from domains.radiotherapy.case import CaseFileError, load_npz_case, save_npz_case
from domains.radiotherapy.goals import GoalFileError, load_goals
from tgdomains.domain import ParseError

GOOD_GOALS = 'goals:\n  - {structure: PTV, metric: D95, comparator: ">=", value: 78}\n'


def alias_bomb(levels: int = 9) -> str:
    """The classic: each level a list of ten aliases to the one before, 10**levels strings once expanded."""
    lines = ['a0: &a0 ["lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    lines.append(f"goals: [*a{levels}]")
    return "\n".join(lines) + "\n"


# -- goal files -------------------------------------------------------------------------------------------------


def test_an_alias_bomb_goal_file_is_refused_in_one_short_line(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb())
    assert len(path.read_bytes()) < 600
    with pytest.raises(GoalFileError) as refused:
        load_goals(path, ["PTV"])
    message = str(refused.value)
    assert message.startswith(f"{path}, line 2: ") and "aliases" in message and len(message) < 200, message


def test_a_goal_whose_item_is_huge_is_quoted_in_a_few_dozen_characters():
    text = "goals:\n  - [" + ", ".join(["1"] * 5_000) + "]\n"
    with pytest.raises(GoalFileError, match="a goal must be a mapping") as refused:
        load_goals(text, ["PTV"])
    assert len(str(refused.value)) < 300


def test_a_goal_file_that_is_a_link_a_fifo_or_too_large_is_refused(tmp_path):
    real = tmp_path / "real.yaml"
    real.write_text(GOOD_GOALS)
    assert load_goals(real, ["PTV"]).goals  # the file itself is fine
    link = tmp_path / "link.yaml"
    link.symlink_to(real)
    with pytest.raises(GoalFileError, match=f"goal file {link} is a symbolic link"):
        load_goals(link, ["PTV"])
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    with pytest.raises(GoalFileError, match=f"goal file {fifo} is a FIFO"):  # refused, never waited on
        load_goals(fifo, ["PTV"])
    big = tmp_path / "big.yaml"
    big.write_text(GOOD_GOALS + "#" * (1 << 20))
    with pytest.raises(GoalFileError, match=f"goal file {big} is .* bytes, over the limit"):
        load_goals(big, ["PTV"])


@pytest.mark.parametrize("value", ["1e999", str(10 ** 400), ".nan"])
def test_a_goal_value_beyond_a_float_is_named(value):
    text = f'goals:\n  - {{structure: PTV, metric: D95, comparator: ">=", value: {value}}}\n'
    with pytest.raises(GoalFileError, match="field 'value' must be a finite number"):
        load_goals(text, ["PTV"])


# -- case files ----------------------------------------------------------------------------------------------------


@pytest.fixture
def saved_case(case2d, tmp_path):
    path = tmp_path / "case.npz"
    save_npz_case(case2d, path)
    return path


def rewrite(path, **changes) -> None:
    """Save the case at `path` again with some arrays replaced (None: removed)."""
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    arrays.update(changes)
    np.savez_compressed(path, **{k: v for k, v in arrays.items() if v is not None})


def test_a_saved_case_still_loads_and_plans_the_same(saved_case, case2d):
    mine = load_npz_case(saved_case)
    assert mine.structures.keys() == case2d.structures.keys()
    assert (mine.dose_influence != case2d.dose_influence.astype(np.float32)).nnz == 0


@pytest.mark.parametrize(("change", "expected"), [
    (lambda m: {"dij_indices": m.indices + m.shape[1]}, "dij_indices has beamlet indices outside"),
    (lambda m: {"dij_indices": -m.indices - 1}, "dij_indices has beamlet indices outside"),
    (lambda m: {"dij_indptr": m.indptr[::-1].copy()}, "CSR arrays disagree"),
    (lambda m: {"dij_indptr": m.indptr[:-1]}, "CSR arrays disagree"),
    (lambda m: {"dij_shape": np.array([m.shape[0], m.shape[1], 3])}, "dij_shape must be (voxels, beamlets)"),
    (lambda m: {"dij_shape": np.array([m.shape[0], 0])}, "dij_shape must be (voxels, beamlets)"),
    (lambda m: {"dij_data": np.where(np.arange(m.nnz) == 7, np.nan, m.data)}, "NaN or infinite dose values"),
    (lambda m: {"dij_data": np.full(m.nnz, np.inf, dtype=np.float32)}, "NaN or infinite dose values"),
    (lambda m: {"dij_indices": m.indices.astype(np.float64)}, "dij_indices must be a 1-D array of integers"),
    (lambda m: {"structure_PTV": np.array([0, 10 ** 9])}, "structure 'PTV' has row indices outside"),
    (lambda m: {"prescription_Gy": np.array(np.nan)}, "prescription_Gy must be one finite number"),
    (lambda m: {"voxel_index": np.array([10 ** 12] * m.shape[0])}, "voxel_index needs one grid point"),
    (lambda m: {"targets": np.array(["nowhere"])}, "are not among the structures"),
])
def test_a_tampered_case_file_is_one_clear_line_naming_it(saved_case, case2d, change, expected):
    rewrite(saved_case, **change(case2d.dose_influence.tocsr()))
    with pytest.raises(CaseFileError) as refused:
        load_npz_case(saved_case)
    message = str(refused.value)
    assert message.startswith(f"case file {saved_case}: ") and expected in message and "\n" not in message, message


def test_a_case_array_of_pickled_objects_is_refused(saved_case):
    rewrite(saved_case, name=np.array([{"x": 1}], dtype=object))
    with pytest.raises(CaseFileError, match="array 'name' has dtype object"):
        load_npz_case(saved_case)


def test_a_member_that_inflates_past_the_limit_is_refused_before_it_is_read(saved_case, monkeypatch):
    rewrite(saved_case, padding=np.zeros(4 << 20, dtype=np.uint8))  # 4 MiB of zeros compress to a few KiB
    assert os.path.getsize(saved_case) < 1 << 20
    monkeypatch.setattr(case_module, "MAX_CASE_ARRAY_BYTES", 2 << 20)
    with pytest.raises(CaseFileError, match="inflating to .* bytes, over the limit of 2,097,152"):
        load_npz_case(saved_case)


def test_a_member_whose_header_claims_more_than_it_holds_is_refused(saved_case):
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (100_000, 100_000)})
    with zipfile.ZipFile(saved_case, "a") as archive:
        archive.writestr("huge.npy", buffer.getvalue() + b"\0" * 64)
    with pytest.raises(CaseFileError, match=r"array 'huge' claims shape \(100000, 100000\) \(80,000,000,000 bytes\)"):
        load_npz_case(saved_case)


def test_a_case_file_that_is_a_link_or_not_a_zip_is_refused(saved_case, tmp_path):
    link = tmp_path / "link.npz"
    link.symlink_to(saved_case)
    with pytest.raises(CaseFileError, match=f"case file {link} is a symbolic link"):
        load_npz_case(link)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip" * 100)
    with pytest.raises(CaseFileError, match=f"case file {junk}: not an .npz archive"):
        load_npz_case(junk)


def test_a_nan_dose_never_scores_as_a_valid_plan(case2d):
    from domains.radiotherapy.evaluator import PlanEvaluator
    from domains.radiotherapy.goals import load_goals as goals_of
    from domains.radiotherapy.hyperparameters import default_hyperparameters, to_json

    broken = sp.csr_matrix(case2d.dose_influence, dtype=np.float32, copy=True)
    broken.data[::97] = np.nan  # built in Python, so no file check stood in the way
    nan_case = case_module.Case(**{**case2d.__dict__, "dose_influence": broken})
    evaluator = PlanEvaluator(nan_case, goals_of(case2d.default_goals, list(case2d.structures)))
    evaluation = evaluator.evaluate(to_json(default_hyperparameters(nan_case), nan_case))
    assert not evaluation.valid and not evaluation.passed and not math.isnan(evaluation.score)
    assert "not finite" in evaluation.text


# -- replies ---------------------------------------------------------------------------------------------------


def test_a_reply_naming_ten_thousand_unknown_structures_gets_a_short_parse_error():
    from domains.radiotherapy.plugin import RadiotherapyDomain

    domain = RadiotherapyDomain()
    instance = domain.load({"case": "prostate-2d"})
    reply = "{" + ", ".join(f'"organ_{i}": {{"weight": 1, "dose_Gy": 1}}' for i in range(10_000)) + "}"
    with pytest.raises(ParseError) as refused:
        domain.parse(reply, instance)
    message = str(refused.value)
    assert "unknown structure(s) 'organ_0'" in message and "(10000 in all)" in message and len(message) < 500
