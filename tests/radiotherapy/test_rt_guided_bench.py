"""bench/quality/guided.py: the LLM-guided Bayesian optimization's table over every seed is what the committed results
give (each seed's results replay from their cassettes in tests/core/test_quality_tables.py)."""

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "quality"


def _guided():
    spec = importlib.util.spec_from_file_location("quality_guided", BENCH / "guided.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_guided_table_is_what_the_committed_results_give():
    assert (BENCH / "radiotherapy-bo.md").read_text(encoding="utf-8") == _guided().render()


def test_a_run_that_stopped_early_holds_its_best_at_later_checkpoints():
    guided = _guided()
    curve = [[1, -0.2], [2, -0.1], [3, -0.01]]
    assert [guided.at(curve, n) for n in (1, 2, 5, 40)] == [-0.2, -0.1, -0.01, -0.01]


def test_paired_wins_count_wins_ties_and_losses_seed_by_seed():
    guided = _guided()

    def run(*bests):
        return {"curve_evaluations": [[i + 1, b] for i, b in enumerate(bests)]}

    method = [run(-0.1, -0.05), run(-0.2, -0.2), run(-0.3, -0.3)]
    baseline = [run(-0.2, -0.2), run(-0.2, -0.2), run(-0.1, -0.1)]
    assert guided.wins(method, baseline, 2) == "1-1-1"


def test_a_seed_that_never_met_every_goal_counts_above_the_budget_in_the_median():
    guided = _guided()
    assert guided._median_to_pass([10, None, None], 40) == ">40"
    assert guided._median_to_pass([10, 20, None], 40) == "20"
