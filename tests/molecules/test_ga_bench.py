"""The GA suites of bench/quality/run.py (de novo and lead optimization at 100 dockings): what they run, and the
figures their tables add (novelty, the LLM's children docked / screened / unusable, the admissible best)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from domains.molecules import LEADS
from tgdomains.evaluation import Evaluation
from tgdomains.records import Step, StepStatus

BENCH = Path(__file__).resolve().parents[2] / "bench" / "quality"


def _bench():
    spec = importlib.util.spec_from_file_location("quality_bench_ga", BENCH / "run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


def test_the_ga_suites_run_the_guided_ga_against_graph_ga_at_100_dockings_and_20_calls():
    bench = _bench()
    for name in ("molecules-denovo", "molecules-lead"):
        suite = bench.SUITES[name]
        assert (suite.evaluations, suite.llm_calls) == (100, 20) and suite.extended
        assert [m.name for m in suite.llm_runs] == ["llm-ga", "llm-ga-2", "tgd-chain"]
        assert [m.name for m in suite.baselines] == ["graph-ga"]
        assert all(args["exhaustiveness"] == 1 for args in suite.instances)
    leads = [args["start"] for args in bench.SUITES["molecules-lead"].instances]
    assert set(leads) <= set(LEADS) and len({bench.instance_name(a) for a in bench.SUITES["molecules-lead"].instances}) == 4
    assert bench.SUITES["molecules"].llm_runs is bench.LLM_METHODS  # the recorded suites run what they ran


def _step(i: int, score: float, *, feedback: str = "", calls: int = 0, status=StepStatus.UPDATED, problem: str = "",
          metrics: dict | None = None, duplicate_of: int | None = None) -> Step:
    return Step(id=i, iteration=i, value=f"m{i}", parent=None if i == 0 else 0, feedback=feedback, problem=problem,
                status=StepStatus.INITIAL if i == 0 else status, usage={"llm_calls": calls} if calls else {},
                duplicate_of=duplicate_of, elapsed_s=float(i),
                evaluation=Evaluation(score=score, metrics=metrics or {"lipinski_violations": 0,
                                                                        "constraint_violations": 0}, text=""))


def test_ga_figures_count_the_llm_children_and_what_the_search_made():
    bench = _bench()
    steps = [_step(0, 3.0), _step(1, 6.0, feedback="(graph-ga: starting population from ZINC)"),
             _step(2, 7.0, calls=1), _step(3, 6.0, calls=1, status=StepStatus.FAILED, duplicate_of=1,
                                             problem="screened out before docking: NCCN...: 3 Lipinski violations"),
             _step(4, 6.0, calls=2, status=StepStatus.FAILED, duplicate_of=1, problem="no SMILES found"),
             _step(5, 8.0, feedback="(llm-ga generation 2: graph operators)")]
    figures = bench.ga_figures(steps)
    assert figures["llm_children"] == {"docked": 1, "screened": 1, "unusable": 1}
    assert figures["novelty"] == 0.5  # of the top 4 (8, 7, 6, 3): the LLM's and the graph child, not ZINC or start
    assert bench.summarize(steps, {}, {}, [])["curve_wall_s"][-1] == [5.0, 8.0]  # best so far against seconds


def test_the_lead_rule_leaves_out_a_best_that_left_the_lead():
    bench = _bench()
    rule = bench.SUITES["molecules-lead"].admissible.test
    far = {"lipinski_violations": 0, "constraint_violations": 1}
    row = bench.summarize([_step(0, 5.0), _step(1, 9.0, metrics=far)], {}, {}, [], rule, extended=True)
    assert (row["best_score"], row["best_admissible_score"]) == (9.0, 5.0) and "novelty" in row


def test_a_ga_table_shows_auc_best_and_admissible_best_per_method():
    bench = _bench()
    suite = bench.SUITES["molecules-lead"]
    rows = []
    for method, calls in (("llm-ga", 2), ("graph-ga", 0)):
        row = bench.summarize([_step(0, 5.0), _step(1, 6.0, calls=calls)], {}, {"llm_calls": calls}, suite.columns,
                              suite.admissible.test, extended=True)
        rows.append({**row, "method": method, "instance": "DRD2-apomorphine", "wall_s": 12.0})
    text = bench.markdown(suite, rows, {"seed": 0, "engine": "scripted"})
    assert "| llm-ga | 5.25 | 6 | 6 |" in text and "1 / 0 / 0" in text  # AUC, best, Ro5+sim best; children
    assert "top-10 AUC" in text and "Ro5+sim" in text


def test_the_paired_comparison_tallies_auc_wins_seed_by_seed(tmp_path):
    import json

    bench = _bench()

    def run(method: str, auc: float) -> dict:
        return {"instance": "DRD2-benzene", "method": method, "top10_auc": auc, "best_score": auc + 1,
                "best_admissible_score": auc}

    for seed, (guided, ga) in enumerate(((7.0, 6.0), (5.0, 6.5), (6.0, 6.0))):
        path = tmp_path / f"{bench.results_stem('molecules-denovo', seed)}.json"
        path.write_text(json.dumps({"runs": [run("llm-ga", guided), run("graph-ga", ga)]}))
    text = bench.paired(bench.SUITES["molecules-denovo"], tmp_path, "llm-ga")
    assert "better 1, worse 1, the same 1" in text and "mean top-10 AUC 6 against 6.17" in text
    assert text.count("| DRD2-benzene |") == 3


@pytest.mark.slow
def test_a_recorded_llm_ga_run_replays_to_the_same_row(tmp_path, monkeypatch):
    """The GA suites' path through the harness: an llm-ga run recorded (scripted replies, real docking of tiny
    molecules) replays from its cassette and evaluations to the same table row, without docking again."""
    import argparse
    import dataclasses
    import shutil

    from tgdomains.engines import RecordingEngine, ReplayEngine, ScriptedEngine

    bench = _bench()
    monkeypatch.setattr(bench, "HERE", tmp_path)  # cassettes under tmp_path, not the committed ones
    monkeypatch.setenv("TGDOMAINS_CACHE_DIR", str(tmp_path / "cache"))
    suite = dataclasses.replace(bench.SUITES["molecules-denovo"], evaluations=6, llm_calls=12)
    method = bench.Method("llm-ga", "llm-ga", {"population": 1, "offspring": 2, "llm_children": 1})
    args = {"target": "DRD2", "start": "benzene", "exhaustiveness": 1}
    replies = iter(["<IMPROVED_VARIABLE>Oc1ccccc1</IMPROVED_VARIABLE>",
                    "<IMPROVED_VARIABLE>" + "N" + "CCN" * 20 + "</IMPROVED_VARIABLE>"])

    def opts(replay: bool) -> argparse.Namespace:
        return argparse.Namespace(replay=replay, reevaluate=False, fresh_evaluations=False, verbose=False, seed=0)

    recorded = bench.run_one(suite, args, method, lambda c: RecordingEngine(ScriptedEngine(lambda m: next(replies)), c),
                             opts(False), tmp_path / "work")
    shutil.rmtree(tmp_path / "cache")
    replayed = bench.run_one(suite, args, method, ReplayEngine, opts(True), tmp_path / "work2")
    assert not (tmp_path / "cache" / "docking").exists() or not any((tmp_path / "cache" / "docking").rglob("*.json"))
    assert recorded["evaluations"] == 6 and recorded["llm_children"] == {"docked": 1, "screened": 1, "unusable": 0}
    keep = ("best_score", "top10_auc", "best_admissible_score", "novelty", "llm_children", "llm_calls", "validity")
    assert {k: replayed[k] for k in keep} == {k: recorded[k] for k in keep}
