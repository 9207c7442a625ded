"""Kill at any point: a real optimization in a subprocess, SIGKILLed at random moments and resumed each time.

After every kill the complete lines of steps.jsonl must extend the ones seen before (nothing complete is lost or
rewritten) with iterations 0..n exactly once; in the end the killed-and-resumed run must have written exactly the
steps of a run that was never killed, and best.json must name the true best of them.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import pytest

FAULTS = Path(__file__).resolve().parents[1] / "faults"
sys.path.insert(0, str(FAULTS))
import kill_worker  # noqa: E402
from fault_helpers import check_record, complete_lines  # noqa: E402
from kill_loop import kill_until_done  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MIN_KILLS = 6 * len(kill_worker.MODES)  # kills that landed, over every mode: enough to land at random moments
TIMING_FIELDS = ("eval_s", "step_s", "elapsed_s")  # the only fields a kill may change: they are wall-clock times


def _comparable(steps):
    return [{k: v for k, v in s.items() if k not in TIMING_FIELDS} for s in steps]


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_and_duplicates_nothing(tmp_path):
    rng = random.Random(20240607)
    deadline = time.monotonic() + 300
    all_kills = []
    for mode in kill_worker.MODES:
        reference = kill_worker.run(str(tmp_path / f"ref-{mode}"), mode, jitter=False)
        run_dir = tmp_path / f"killed-{mode}"
        # each start is killed after 0-4 new steps plus a jitter, sometimes at once (while run.json or step 0 is
        # written): kill_loop.wait_to_kill
        kills = kill_until_done([str(FAULTS / "kill_worker.py"), str(run_dir), mode], run_dir / "steps.jsonl", rng,
                                deadline_s=deadline - time.monotonic(), starts=60,
                                most_new_steps=4, jitter_s=0.05)
        all_kills += kills
        steps, best = check_record(run_dir, iterations=kill_worker.ITERATIONS)
        reference_steps, _ = complete_lines(tmp_path / f"ref-{mode}" / "steps.jsonl")
        assert _comparable(steps) == _comparable(reference_steps), f"{mode}: resumed run differs from an unkilled one"
        assert best["value"] == reference.best_value and best["stop_reason"] == reference.stop_reason
    assert len(all_kills) >= MIN_KILLS, all_kills
    assert len(set(all_kills)) >= 8, f"kills did not land at varied moments: {all_kills}"
    print(f"\n{len(all_kills)} SIGKILLs; complete steps at each kill: {all_kills}")
