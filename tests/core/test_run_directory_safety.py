"""A run directory may come from someone else: resuming it never runs code, never follows a link, never believes a
recorded pass without evaluating it again, and a tampered file stops the run with one line naming the file, the line
and the field."""

from __future__ import annotations

import json
import os
import pickle
import sys
from pathlib import Path

import pytest

FAULTS = Path(__file__).resolve().parents[1] / "faults"
sys.path.insert(0, str(FAULTS))
from arithmetic_domain import ArithmeticDomain, Target  # noqa: E402
from kill_worker import reply  # noqa: E402

from tgdomains.engines import ScriptedEngine  # noqa: E402
from tgdomains.records import RunDirectoryError, RunRecord  # noqa: E402
from tgdomains.run import optimize, resume  # noqa: E402

TARGET = Target("t997", 997)


class UndescribedDomain(ArithmeticDomain):
    """A domain that cannot say which arguments rebuild its instance (as a domain written before `instance_args`)."""

    def instance_args(self, instance):
        return None


def run(run_dir: Path, domain=None, iterations: int = 3, **kw):
    return optimize(domain or ArithmeticDomain(), TARGET, engine=ScriptedEngine(reply), run_dir=run_dir,
                    iterations=iterations, progress=False, **kw)


def more(run_dir: Path, domain=None, iterations: int = 5, **kw):
    return resume(run_dir, engine=ScriptedEngine(reply), domain=domain or ArithmeticDomain(), iterations=iterations,
                  progress=False, **kw)


class _TouchOnLoad:
    """Unpickling this creates the file `marker`: the proof that a pickle was loaded, i.e. code was run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


# -- no code from the run directory -----------------------------------------------------------------------------


def test_a_python_run_stores_its_instance_arguments_and_no_pickle(tmp_path):
    run(tmp_path / "r")
    assert RunRecord(tmp_path / "r").read_config()["meta"]["instance_args"] == {"number": 997}
    assert not (tmp_path / "r" / "instance.pickle").exists()
    assert more(tmp_path / "r").steps[-1].iteration == 5  # rebuilt from run.json alone


def test_resume_never_unpickles_an_instance_file(tmp_path):
    run(tmp_path / "r", domain=UndescribedDomain())
    marker = tmp_path / "code-ran"
    (tmp_path / "r" / "instance.pickle").write_bytes(pickle.dumps(_TouchOnLoad(marker)))
    with pytest.raises(ValueError, match="pass instance= to resume") as refused:
        more(tmp_path / "r", domain=UndescribedDomain())
    assert "instance.pickle is not read" in str(refused.value) and "\n" not in str(refused.value)
    assert not marker.exists()
    assert more(tmp_path / "r", domain=UndescribedDomain(), instance=TARGET).steps[-1].iteration == 5


# -- no link followed -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["run.lock", "steps.jsonl", "run.json", "best.json"])
def test_a_link_in_the_run_directory_is_refused_and_its_target_untouched(tmp_path, name):
    run(tmp_path / "r")
    outside = tmp_path / "outside.txt"
    outside.write_text("precious\n")
    path = tmp_path / "r" / name
    path.unlink()
    path.symlink_to(outside)
    with pytest.raises(RunDirectoryError if name != "run.lock" else ValueError, match="symbolic link") as refused:
        more(tmp_path / "r")
    assert name in str(refused.value) and "\n" not in str(refused.value)
    assert outside.read_text() == "precious\n"


def test_a_link_planted_as_the_temporary_best_file_is_replaced_not_followed(tmp_path):
    run(tmp_path / "r")
    outside = tmp_path / "outside.txt"
    outside.write_text("precious\n")
    (tmp_path / "r" / "best.json.tmp").symlink_to(outside)
    result = more(tmp_path / "r")
    assert outside.read_text() == "precious\n"
    assert RunRecord(tmp_path / "r").read_best()["id"] == max(result.steps, key=lambda s: s.rank()).id
    assert not os.path.lexists(tmp_path / "r" / "best.json.tmp")


# -- a forged pass --------------------------------------------------------------------------------------------


def test_a_forged_passed_step_does_not_stop_a_resumed_run(tmp_path):
    first = run(tmp_path / "r")
    assert not first.passed
    steps_path = tmp_path / "r" / "steps.jsonl"
    lines = steps_path.read_text().splitlines()
    forged = json.loads(lines[-1])
    forged["evaluation"].update(passed=True, score=0)
    steps_path.write_text("\n".join(lines[:-1] + [json.dumps(forged)]) + "\n")
    said: list[str] = []
    result = resume(tmp_path / "r", engine=ScriptedEngine(reply), domain=ArithmeticDomain(), iterations=5,
                    progress=said.append)
    assert result.stop_reason != "passed" and result.steps[-1].iteration == 5
    assert any(f"step #{forged['id']} is recorded as passed" in line and "not believed" in line for line in said)
    assert not RunRecord(tmp_path / "r").read_best()["evaluation"]["passed"]


def test_a_true_recorded_pass_still_stops_a_resumed_run(tmp_path):
    first = optimize(ArithmeticDomain(), Target("t600", 600), engine=ScriptedEngine(reply), run_dir=tmp_path / "r",
                     iterations=1, progress=False, initial_value="20 * 30")
    assert first.passed and first.stop_reason == "passed"
    again = resume(tmp_path / "r", engine=ScriptedEngine(reply), domain=ArithmeticDomain(), iterations=5,
                   progress=False)
    assert again.stop_reason == "passed" and len(again.steps) == len(first.steps)


# -- tampered files: one line naming the file, the line and the field ------------------------------------------


def _edit_step(run_dir: Path, index: int, edit) -> None:
    path = run_dir / "steps.jsonl"
    lines = path.read_text().splitlines()
    step = json.loads(lines[index])
    edit(step)
    lines[index] = json.dumps(step)
    path.write_text("\n".join(lines) + "\n")


STEP_TAMPERING = {
    "iteration": (lambda s: s.update(iteration="2"), "field 'iteration' must be an integer"),
    "value": (lambda s: s.update(value=["a"]), "field 'value' must be a string"),
    "evaluation": (lambda s: s.update(evaluation="passed"), "field 'evaluation' must be an object"),
    "score": (lambda s: s["evaluation"].update(score="9"), "field 'evaluation.score' must be a number"),
    "huge score": (lambda s: s["evaluation"].update(score=10 ** 400), "evaluation.score' must be a finite number"),
    "passed": (lambda s: s["evaluation"].update(passed="yes"), "field 'passed' must be true or false"),
    "status": (lambda s: s.update(status="won"), "field 'status' is 'won'"),
    "parent": (lambda s: s.update(parent=99), "field 'parent' is 99: it must name an earlier step"),
    "id": (lambda s: s.update(id=7), "field 'id' is 7"),
    "usage": (lambda s: s.update(usage={"llm_calls": "many"}), "field 'usage.llm_calls' must be a number"),
    "not an object": (lambda s: s.clear() or s.update(x=1), "field 'iteration' is missing"),
}


@pytest.mark.parametrize("case", list(STEP_TAMPERING))
def test_a_type_tampered_step_line_is_one_clear_error(tmp_path, case):
    run(tmp_path / "r")
    edit, expected = STEP_TAMPERING[case]
    _edit_step(tmp_path / "r", 1, edit)
    with pytest.raises(RunDirectoryError) as refused:
        more(tmp_path / "r")
    message = str(refused.value)
    assert f"{tmp_path / 'r' / 'steps.jsonl'}, line 2: " in message and expected in message and "\n" not in message


def test_a_step_line_that_is_a_json_list_is_one_clear_error(tmp_path):
    run(tmp_path / "r")
    path = tmp_path / "r" / "steps.jsonl"
    path.write_text(path.read_text() + "[1, 2]\n")
    with pytest.raises(RunDirectoryError, match=r"steps.jsonl, line \d+: a step must be a JSON object, got a list"):
        more(tmp_path / "r")


@pytest.mark.parametrize(("name", "edit", "expected"), [
    ("run.json", lambda d: d.update(constraints=5), "key 'constraints' must be a list"),
    ("run.json", lambda d: d.update(examples=[1]), "key 'examples' must be a list of strings"),
    ("run.json", lambda d: d.update(role_description={"a": 1}), "key 'role_description' must be a string"),
    ("run.json", lambda d: d["meta"].update(instance_args=[997]), "key 'meta.instance_args' must be an object"),
    ("best.json", lambda d: d.update(wall_s="long"), "key 'wall_s' must be a number"),
    ("best.json", lambda d: d.update(usage=[1]), "key 'usage' must be an object"),
    ("best.json", lambda d: d["usage"].update(llm_calls=None), "key 'usage.llm_calls' must be a number"),
])
def test_a_type_tampered_run_or_best_file_is_one_clear_error(tmp_path, name, edit, expected):
    run(tmp_path / "r")
    path = tmp_path / "r" / name
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(RunDirectoryError) as refused:
        more(tmp_path / "r")
    assert str(refused.value).startswith(f"{path}: ") and expected in str(refused.value)


@pytest.mark.parametrize("text", ["[1, 2]", "{", "NaN", '{"domain": "arithmetic", "x": ' + "[" * 100_000 + "]}"],
                         ids=["list", "cut", "nan", "deep"])
def test_a_run_json_that_is_not_an_object_is_one_clear_error(tmp_path, text):
    run(tmp_path / "r")
    (tmp_path / "r" / "run.json").write_text(text)
    with pytest.raises(RunDirectoryError, match="run.json: ") as refused:
        more(tmp_path / "r")
    assert len(str(refused.value)) < 300


@pytest.mark.parametrize("name", ["run.lock", "steps.jsonl", "best.json"])
def test_a_folder_in_place_of_a_run_file_is_one_clear_error(tmp_path, name):
    run(tmp_path / "r")
    path = tmp_path / "r" / name
    path.unlink()
    path.mkdir()
    with pytest.raises(ValueError, match="is a folder, not a file") as refused:
        more(tmp_path / "r")
    assert f"{path} is a folder" in str(refused.value)
