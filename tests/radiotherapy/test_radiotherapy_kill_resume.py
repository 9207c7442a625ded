"""Kill at any point, on the radiotherapy domain with its real evaluator: a run SIGKILLed at random moments and resumed
each time writes exactly the steps of the same run never killed (tests/faults/domain_kill_worker.py)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))
from kill_loop import check_domain_kill_resume  # noqa: E402


@pytest.mark.slow
def test_a_sigkilled_radiotherapy_run_resumes_to_the_steps_of_an_unkilled_one(tmp_path):
    check_domain_kill_resume("radiotherapy", tmp_path, min_kills=2)
