"""The plug-in seen from the core: flags, tasks, parse, evaluate with real docking, a scripted TextGrad run, report."""

import argparse
import math

import pytest

from domains.molecules import (
    MoleculeEvaluator,
    MoleculesDomain,
    MoleculeTask,
    Objective,
    optimize,
    pareto_front,
    read_records,
    records_from_steps,
)
from tgdomains.domain import ParseError, get_domain
from tgdomains.engines import ScriptedEngine


def test_the_domain_is_registered_under_its_name():
    assert isinstance(get_domain("molecules"), MoleculesDomain)
    assert MoleculesDomain().objectives(None) == {"vina": "min", "qed": "max"}


@pytest.mark.slow
def test_the_domain_keeps_the_contract(domain, fast_docking):
    from tgdomains.checks import check_domain

    assert check_domain(domain, {"target": "DRD2", "start": "benzene", "backend": "vina", "exhaustiveness": 1,
                                 "docking_cache": fast_docking.cache_dir, "docking_workers": 2})


def test_cli_flags_build_a_task(domain):
    parser = argparse.ArgumentParser()
    domain.add_arguments(parser)
    args = parser.parse_args(["--target", "ESR1", "--start", "acetamide", "--backend", "vina", "--exhaustiveness",
                              "2", "--target-score", "9", "--mw-max", "450", "--no-pains", "--smiles", "CCO"])
    task = domain.load(vars(args))
    assert (task.target, task.start, task.docking.backend, task.docking.exhaustiveness) == ("ESR1", "CC(N)=O",
                                                                                          "vina", 2)
    assert task.objective.target_score == 9 and task.objective.mw_max == 450 and task.objective.forbid_pains
    assert domain.candidate_from_args(vars(args), task) == "CCO"
    assert task.id == "ESR1:CC(N)=O"


def test_batch_flags_give_every_target_and_start(domain):
    parser = argparse.ArgumentParser()
    domain.add_arguments(parser, batch=True)
    tasks = domain.load_many(vars(parser.parse_args(["--targets", "DRD2,ESR1", "--starts", "benzene,CCO"])))
    assert [t.id for t in tasks] == ["DRD2:c1ccccc1", "DRD2:CCO", "ESR1:c1ccccc1", "ESR1:CCO"]


@pytest.mark.parametrize(("args", "message"), [
    ({"target": "DRD9"}, "unknown docking target"),
    ({"start": "C1CC("}, "--start 'C1CC\\(' is not a usable molecule"),
    ({"backend": "autodock"}, "unknown docking backend"),
    ({"mw_min": 500, "mw_max": 300}, "MW window is empty"),
    ({"min_similarity": 0.5}, "needs a reference"),
])
def test_bad_task_arguments_name_what_is_wrong(domain, args, message):
    with pytest.raises(ValueError, match=message):
        domain.load(args)


def test_parse_canonicalises_or_raises_parse_error_with_the_reason(domain):
    task = MoleculeTask()
    assert domain.parse("SMILES: OC1=CC=CC=C1", task) == "Oc1ccccc1"
    with pytest.raises(ParseError, match="valence error"):
        domain.parse("SMILES: CN(C)(C)(C)C", task)
    with pytest.raises(ParseError, match="several fragments"):
        domain.parse("```smiles\nCCO.CCN\n```", task)


def test_context_and_start_tell_the_llm_the_target_goals_and_rules(domain):
    task = domain.load({"target": "DRD2", "start": "benzene", "sa_max": 4, "target_score": 9})
    context = domain.context(task)
    assert "DRD2" in context and "QED" in context and "SA" in context and "reaches 9" in context
    start = domain.initial(task)
    assert start.value == "c1ccccc1" and "SMILES" in start.role_description
    assert any("SA" in c for c in start.constraints)


@pytest.mark.slow
def test_evaluation_with_real_docking_has_numbers_terms_and_target(fast_docking):
    task = MoleculeTask(start="c1ccccc1", docking=fast_docking,
                        objective=Objective(target_score=1.0, mw_max=100))
    evaluation = MoleculeEvaluator(task).evaluate("CC(=O)Nc1ccc(O)cc1")
    m = evaluation.metrics
    assert evaluation.valid and m["vina"] < -4
    assert m["objective"] == pytest.approx(m["vina"] + 1 - m["qed"])
    # MW 151 breaks the 100 g/mol ceiling: one violation costs 1 point and blocks `passed`.
    assert m["constraint_violations"] == 1 and evaluation.score == pytest.approx(-m["objective"] - 1)
    assert not evaluation.passed
    first_line = evaluation.text.splitlines()[0]
    assert first_line.startswith("CONSTRAINT VIOLATED: MW 151.2 g/mol is above the maximum 100")
    assert "The Vina term" in evaluation.text and f"{m['vina']:.2f} kcal/mol" in evaluation.text
    for name in ["vina", "qed", "sa", "logp", "mw", "tpsa", "hbd", "hba", "rotatable_bonds", "lipinski_violations",
                 "pains_alerts", "brenk_alerts", "similarity_to_start"]:
        assert math.isfinite(m[name]), name
    relaxed = MoleculeTask(start="c1ccccc1", docking=fast_docking, objective=Objective(target_score=1.0))
    assert MoleculeEvaluator(relaxed).evaluate("CC(=O)Nc1ccc(O)cc1").passed


def _scripted_chemist(replies):
    """Feedback for backward calls; the next SMILES (inside the optimizer's tags) for each step call."""
    queue = list(replies)

    def respond(messages):
        if "IMPROVED_VARIABLE" in messages[-1]["content"] or "IMPROVED_VARIABLE" in messages[0]["content"]:
            return f"<IMPROVED_VARIABLE>{queue.pop(0)}</IMPROVED_VARIABLE>"
        return "Add a polar group and an amide to bind better; keep the molecule drug-like."
    return respond


@pytest.mark.slow
def test_a_scripted_textgrad_run_docks_each_new_molecule_and_reports(fast_docking, tmp_path):
    engine = ScriptedEngine(_scripted_chemist([
        "SMILES: Oc1ccccc1",
        "a ring with a bad valence: CN(C)(C)(C)C",  # rejected by parse; the optimizer asks for a repair
        "SMILES: CC(=O)Nc1ccc(O)cc1",
        "```smiles\nCC(=O)Nc1ccc(O)cc1\n```",  # the same molecule again: not docked twice
    ]))
    result = optimize("benzene", "DRD2", engine=engine, strategy="chain", iterations=3, backend="vina", exhaustiveness=1,
                      docking_cache=fast_docking.cache_dir, run_dir=tmp_path / "run", progress=False)
    history = records_from_steps(result.steps)
    values = [r.smiles for r in history]
    assert values[0] == "c1ccccc1" and "Oc1ccccc1" in values and "CC(=O)Nc1ccc(O)cc1" in values
    assert result.best_value == "CC(=O)Nc1ccc(O)cc1"
    assert result.best_evaluation.metrics["vina"] < -5
    front = pareto_front(history)
    assert front and all(r.vina is not None for r in front)
    assert result.final["smiles"] == "CC(=O)Nc1ccc(O)cc1"
    assert read_records(result.run_dir) == history
    # The valence reply reached the optimizer as a repair request naming the problem.
    assert any("valence" in str(r["messages"]) for r in engine.requests)

    written = MoleculesDomain().report(str(tmp_path / "run"), str(tmp_path / "report"))
    assert sorted(p.rsplit("/", 1)[1] for p in written) == ["best_molecules.png", "pareto.png", "trajectory.png"]
    assert all((tmp_path / "report" / name).stat().st_size > 1000 for name in ["pareto.png", "trajectory.png"])


@pytest.mark.slow
def test_graph_ga_baseline_spends_exactly_its_docking_budget(fast_docking, tmp_path):
    from tgdomains.run import optimize as run_optimize

    task = MoleculeTask(start="c1ccccc1", docking=fast_docking)
    # the start, one ZINC molecule, then a generation of two children that the budget cuts to one
    result = run_optimize(MoleculesDomain(), task, strategy="graph-ga", population=2, offspring=2, seed=0,
                          evaluation_budget=3, iterations=20, run_dir=tmp_path / "ga", progress=False)
    assert result.usage["evaluations"] == 3 and result.usage["llm_calls"] == 0
    assert result.stop_reason == "evaluation budget (3) reached"
    values = [s.value for s in result.steps if s.evaluated]
    assert len(set(values)) == 3 and values[0] == "c1ccccc1"  # the task's start is in the first population
    assert [s.iteration for s in result.steps] == [0, 1, 2]
    assert math.isfinite(result.best_evaluation.score)
    assert result.best_evaluation.score == max(s.evaluation.score for s in result.steps)
