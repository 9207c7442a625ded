"""The committed quality tables (bench/quality/results_DOMAIN.md) are what their committed cassettes replay to.

Replaying serves the recorded LLM replies (a changed prompt or strategy is a CassetteMiss), the recorded
evaluations and the recorded finalize results (code's hidden tests), so CI guards the figures offline, without a
model and without running a candidate.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "quality"
COMMITTED = sorted(p.stem.removeprefix("results_") for p in BENCH.glob("results_*.md"))  # code, code_seed1, ...


def _bench():
    spec = importlib.util.spec_from_file_location("quality_bench", BENCH / "run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # radiotherapy re-runs the dose engine for its finals (seconds); the others only replay
@pytest.mark.parametrize("table", COMMITTED)
def test_replaying_the_cassettes_gives_the_committed_table(table, tmp_path):
    pytest.importorskip("matplotlib")
    bench = _bench()
    suite, seed = bench.parse_results_stem(f"results_{table}")
    if suite == "radiotherapy":
        pytest.importorskip("optuna")
    assert bench.main(["--domain", suite, "--seed", str(seed), "--replay", "--out", str(tmp_path),
                       "--work", str(tmp_path / "w")]) == 0
    assert (tmp_path / f"results_{table}.md").read_text() == (BENCH / f"results_{table}.md").read_text()


def test_top_k_auc_counts_only_valid_scores():
    bench = _bench()
    assert bench.top_k_auc([1.0, float("-inf"), 3.0], 2) == pytest.approx((1.0 + 1.0 + 2.0) / 3, abs=1e-4)
    assert bench.top_k_auc([float("-inf")], 10) is None


def test_the_rule_of_five_best_skips_a_reward_hack():
    """The Ro5 best is the best score among molecules with at most one Lipinski violation: the 20-amine chain
    (3 violations) that tops the score is left out, and a run with no admissible molecule shows none."""
    from tgdomains.evaluation import Evaluation
    from tgdomains.records import Step, StepStatus

    bench = _bench()

    def step(i: int, score: float, violations: float) -> Step:
        evaluation = Evaluation(score=score, metrics={"lipinski_violations": violations}, text="")
        return Step(id=i, iteration=i, value=f"m{i}", evaluation=evaluation, status=StepStatus.INITIAL if i == 0 else StepStatus.UPDATED)

    rule = bench.SUITES["molecules"].admissible.test
    row = bench.summarize([step(0, 2.7, 0), step(1, 13.2, 3), step(2, 4.0, 1)], {}, {}, [], rule)
    assert (row["best_score"], row["best_admissible_score"]) == (13.2, 4.0)
    assert bench.summarize([step(0, 13.2, 2)], {}, {}, [], rule)["best_admissible_score"] is None
    assert "best_admissible_score" not in bench.summarize([step(0, 1.0, 0)], {}, {}, [])


def test_the_seeds_table_is_what_the_committed_results_give():
    spec = importlib.util.spec_from_file_location("quality_seeds", BENCH / "seeds.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (BENCH / "seeds.md").read_text(encoding="utf-8") == module.render()
