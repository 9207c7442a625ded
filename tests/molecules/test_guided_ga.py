"""Lead optimization (named leads, the similarity constraint, Graph GA seeded from the lead) and the LLM-guided GA:
LLM children screened before docking, graph operators standing in for unusable ones, the call budget kept."""

from __future__ import annotations

import random

import pytest

from domains.molecules import LEADS, MoleculesDomain, MoleculeTask, Objective, tanimoto
from domains.molecules.baselines import GraphGA, lead_mutants
from domains.molecules.guided_ga import SCREENED, GuidedGA, llm_room, screen
from domains.molecules.plugin import is_lead_task
from tgdomains.engines import ScriptedEngine
from tgdomains.engines.budget import Meter, RunEngine
from tgdomains.evaluation import Evaluation
from tgdomains.records import Step, StepStatus
from tgdomains.runview import RunConfig, RunView, Setup

HALOPERIDOL = LEADS["haloperidol"].smiles
POLYAMINE = "N" + "CCN" * 20  # the reward hack the quality tables met: docks well, QED near 0, fails Lipinski


def _view(task: MoleculeTask, steps: list[Step], engine=None, llm_call_budget: int | None = None) -> RunView:
    """A strategy's view of a run whose steps are given (nothing is docked: the strategies only propose here)."""
    domain = MoleculesDomain()
    start = domain.initial(task)
    setup = Setup(start.role_description, start.constraints, start.examples, domain.context(task))
    run_engine = RunEngine(engine or ScriptedEngine([]), call_budget=llm_call_budget)
    return RunView(domain, task, RunConfig(llm_call_budget=llm_call_budget), setup, steps,
                   lambda: Meter(run_engine), None)


def _undocked(i: int, value: str, parent: int | None = None, usage: dict | None = None) -> Step:
    return Step(id=i, iteration=0 if i == 0 else 1, value=value, parent=parent, usage=usage or {},
                evaluation=Evaluation.invalid("not docked in this test"),
                status=StepStatus.INITIAL if i == 0 else StepStatus.UPDATED)


def test_a_named_lead_is_lead_optimization_with_the_similarity_constraint_to_it():
    task = MoleculesDomain().load({"target": "DRD2", "start": "haloperidol"})
    assert task.start == HALOPERIDOL
    assert (task.objective.reference, task.objective.min_similarity) == (HALOPERIDOL, 0.4)
    assert is_lead_task(task)
    assert "Lead optimization" in MoleculesDomain().context(task)


def test_a_user_similarity_floor_or_reference_overrides_the_lead_defaults():
    domain = MoleculesDomain()
    assert domain.load({"start": "haloperidol", "min_similarity": 0.6}).objective.min_similarity == 0.6
    task = domain.load({"start": "CCOc1ccccc1", "lead": True})
    assert (task.objective.reference, task.objective.min_similarity) == ("CCOc1ccccc1", 0.4) and is_lead_task(task)
    other = domain.load({"start": "haloperidol", "reference": "c1ccccc1", "min_similarity": 0.3})
    assert other.objective.reference == "c1ccccc1" and not is_lead_task(other)


def test_the_paper_starts_stay_de_novo():
    task = MoleculesDomain().load({"target": "DRD2", "start": "benzene"})
    assert task.objective.min_similarity is None and not is_lead_task(task)
    assert "Lead optimization" not in MoleculesDomain().context(task)


def test_every_shipped_lead_is_a_valid_molecule_for_its_own_target():
    domain = MoleculesDomain()
    for lead in LEADS.values():
        task = domain.load({"target": lead.target, "start": lead.name})
        assert is_lead_task(task) and lead.source


def test_the_screen_rejects_the_polyamine_hack_and_a_molecule_far_from_the_lead():
    de_novo = MoleculeTask(start="c1ccccc1")
    assert "Lipinski" in screen(POLYAMINE, de_novo)
    assert screen("CC(=O)Nc1ccc(O)cc1", de_novo) is None
    lead = MoleculeTask(start=HALOPERIDOL, objective=Objective(reference=HALOPERIDOL, min_similarity=0.4))
    assert "similarity" in screen("CC(=O)Nc1ccc(O)cc1", lead)
    assert screen("O=C(CCCN1CCC(O)(c2ccc(Br)cc2)CC1)c1ccc(F)cc1", lead) is None  # Cl -> Br


def test_lead_mutants_are_distinct_edits_that_keep_the_similarity_floor():
    mutants = lead_mutants(HALOPERIDOL, 9, random.Random(0), 0.4)
    assert len(mutants) == 9 and len(set(mutants)) == 9 and HALOPERIDOL not in mutants
    assert all(tanimoto(m, HALOPERIDOL) >= 0.4 for m in mutants)


def test_graph_ga_seeds_a_lead_task_from_the_lead_not_from_zinc():
    task = MoleculesDomain().load({"target": "DRD2", "start": "haloperidol"})
    proposals = GraphGA(population=5).propose(_view(task, [_undocked(0, HALOPERIDOL)]), 1, None)
    assert len(proposals) == 4 and all("mutations of the lead" in p.feedback for p in proposals)
    assert all(tanimoto(p.value, HALOPERIDOL) >= 0.4 for p in proposals)
    zinc = GraphGA(population=5).propose(_view(MoleculeTask(), [_undocked(0, "c1ccccc1")]), 1, None)
    assert all("ZINC" in p.feedback for p in zinc)


def test_the_guided_ga_draws_the_same_first_population_as_graph_ga():
    task = MoleculesDomain().load({"target": "DRD2", "start": "haloperidol"})
    steps = [_undocked(0, HALOPERIDOL)]
    ga = [p.value for p in GraphGA(population=4).propose(_view(task, steps), 1, None)]
    guided = [p.value for p in GuidedGA(population=4).propose(_view(task, steps), 1, None)]
    assert ga == guided and len(ga) == 3


def _population() -> list[Step]:
    return [_undocked(0, "c1ccccc1"), _undocked(1, "Cc1ccccc1", 0), _undocked(2, "Oc1ccccc1", 0)]


def _reply(smiles: str) -> str:
    return f"Add a polar group.\n<IMPROVED_VARIABLE>{smiles}</IMPROVED_VARIABLE>"


def test_an_llm_child_that_fails_the_screen_is_not_docked_and_a_graph_child_takes_its_place():
    engine = ScriptedEngine([_reply(POLYAMINE)])
    strategy = GuidedGA(population=3, offspring=3, llm_children=1, crossover_share=0.0).check()
    proposals = strategy.propose(_view(MoleculeTask(), _population(), engine), 2, None)
    screened, *graph = proposals
    assert screened.status is StepStatus.FAILED and screened.problem.startswith(SCREENED)
    assert POLYAMINE in screened.problem and "Lipinski" in screened.problem
    assert screened.value == _population()[screened.parent].value  # the parent's value: a repeat, never docked
    assert screened.meter.usage.calls == 1
    assert len(graph) == 3 and all("graph operators" in p.feedback for p in graph)  # all three slots filled
    assert all(screen(p.value, MoleculeTask()) is None for p in graph)
    assert len({p.value for p in graph} | {s.value for s in _population()}) == 6  # nothing seen before


def test_a_usable_llm_child_is_docked_beside_graph_children_and_a_crossover_shows_the_second_parent():
    engine = ScriptedEngine([_reply("CC(=O)Nc1ccc(O)cc1")])
    strategy = GuidedGA(population=3, offspring=3, llm_children=1, crossover_share=1.0).check()
    llm, *graph = strategy.propose(_view(MoleculeTask(), _population(), engine), 2, None)
    assert llm.value == "CC(=O)Nc1ccc(O)cc1" and llm.status is StepStatus.UPDATED and len(graph) == 2
    request = str(engine.requests[0]["messages"])
    assert "Crossover" in request and "second molecule" in request


def test_an_unparseable_llm_reply_falls_back_to_the_graph_operators():
    engine = ScriptedEngine(["no molecule here, sorry", "still none"])  # the step, then its repair
    strategy = GuidedGA(population=3, offspring=2, llm_children=1).check()
    failed, *graph = strategy.propose(_view(MoleculeTask(), _population(), engine), 2, None)
    assert failed.status is StepStatus.FAILED and len(graph) == 2 and len(engine.requests) == 2


def test_the_llm_is_asked_only_while_a_child_cannot_reach_the_call_budget():
    spent = [_undocked(0, "c1ccccc1"), _undocked(1, "Oc1ccccc1", 0, usage={"llm_calls": 14})]
    assert llm_room(_view(MoleculeTask(), spent, llm_call_budget=20)) == 1  # 14 + 4 < 20
    spent[1] = _undocked(1, "Oc1ccccc1", 0, usage={"llm_calls": 16})
    view = _view(MoleculeTask(), spent, ScriptedEngine([]), llm_call_budget=20)
    assert llm_room(view) == 0
    proposals = GuidedGA(population=2, offspring=2, llm_children=2).propose(view, 3, None)
    assert len(proposals) == 2 and all("graph operators" in p.feedback for p in proposals)  # no call made


def test_the_last_places_of_the_docking_budget_go_to_graph_children_only():
    """A failed LLM child takes a proposal's place: with room for only a generation, the LLM is not asked."""
    engine = ScriptedEngine([])
    proposals = GuidedGA(population=3, offspring=2, llm_children=1).propose(
        _view(MoleculeTask(), _population(), engine), 2, 2)
    assert len(proposals) == 2 and not engine.requests


def test_bad_guided_ga_settings_are_refused():
    with pytest.raises(ValueError, match="rank"):
        GuidedGA(rank="sa").check()
    with pytest.raises(ValueError, match="crossover_share"):
        GuidedGA(crossover_share=2.0).check()


@pytest.mark.slow
def test_a_scripted_llm_ga_run_docks_what_passes_the_screen_and_resumes_exactly(fast_docking, tmp_path):
    """Real docking of tiny molecules from benzene: the LLM child and graph children are docked, the screened-out
    polyamine never is; a run stopped after two generations and resumed writes the steps of the one never stopped."""
    from tgdomains.run import optimize, resume

    def run(name: str, iterations: int):
        engine = ScriptedEngine([_reply("Oc1ccccc1"), _reply(POLYAMINE)])
        return optimize(MoleculesDomain(), MoleculeTask(start="c1ccccc1", docking=fast_docking), engine=engine,
                        strategy="llm-ga", population=1, offspring=2, llm_children=1, seed=0, evaluation_budget=6,
                        llm_call_budget=12, iterations=iterations, run_dir=tmp_path / name, progress=False)

    # the start; the LLM's phenol and a graph child; the polyamine screened out and two graph children; the last
    # place, too few for an LLM child that might fail, to a graph child
    result = run("whole", 10)
    evaluated = [s.value for s in result.steps if s.evaluated]
    assert len(evaluated) == 6 and "Oc1ccccc1" in evaluated and POLYAMINE not in evaluated
    assert any(s.problem.startswith(SCREENED) for s in result.steps)
    assert result.usage["llm_calls"] == 2 and result.stop_reason == "evaluation budget (6) reached"
    run("stopped", 2)
    resumed = resume(tmp_path / "stopped", engine=ScriptedEngine([]), iterations=10, progress=False)  # no call left
    assert [(s.value, s.status, s.parent) for s in resumed.steps] == [(s.value, s.status, s.parent)
                                                                      for s in result.steps]
