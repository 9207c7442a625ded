import json

import pytest

from tgdomains.domain import Domain, ParseError


def _tagged(value) -> str:
    return f"Reasoning about the DVH...\n<IMPROVED_VARIABLE>{json.dumps(value)}</IMPROVED_VARIABLE>"


def test_plugin_contract(domain, instance):
    assert isinstance(domain, Domain)
    assert instance.id == "prostate-2d"
    start = domain.initial(instance)
    assert json.loads(start.value)["PTV"] == {"weight": 100, "dose_Gy": 78}
    assert any("exactly these keys" in c for c in start.constraints)
    context = domain.context(instance)
    assert "PTV D95 >= 78 Gy" in context and "overlaps the rectum" in context and "weight x mean" in context
    ev = domain.evaluate(start.value, instance)
    assert ev.valid and not ev.passed
    for name in ("PTV_D95_Gy", "rectum_V70_pct", "rectum_mean_Gy", "goals_passed", "PTV_HI", "PTV_CI"):
        assert name in ev.metrics
    assert domain.objectives(instance) == {"PTV_D95_Gy": "max", "rectum_mean_Gy": "min"}
    json.dumps(ev.to_dict())  # the run record stores it as JSON


def test_the_domain_keeps_the_contract(domain):
    from tgdomains.checks import check_domain

    assert check_domain(domain, {"case": "prostate-2d"})


def test_parse_canonicalises_and_refuses_with_reasons(domain, instance, passing_2d):
    fenced = "```json\n" + json.dumps(passing_2d, indent=4) + "\n```"
    assert domain.parse(fenced, instance) == domain.parse(json.dumps(passing_2d), instance)
    with pytest.raises(ParseError, match="negative"):
        domain.parse(json.dumps({**passing_2d, "PTV": {"weight": -1, "dose_Gy": 78}}), instance)
    bad = domain.evaluate("not json at all", instance)
    assert not bad.valid and "no plan was made" in bad.text


def test_load_errors_are_clear(domain, tmp_path):
    with pytest.raises(ValueError, match="unknown case 'lung'"):
        domain.load({"case": "lung"})
    goals = tmp_path / "typo.yaml"
    goals.write_text('goals:\n  - {structure: rectumm, metric: V70, comparator: "<", value: 20}\n')
    with pytest.raises(ValueError, match=r"line 2 .*unknown structure 'rectumm'"):
        domain.load({"case": "prostate-2d", "goals": str(goals)})
    params = tmp_path / "p.json"
    params.write_text('{"PTV": {"weight": NaN, "dose_Gy": 78}}')
    with pytest.raises(ValueError, match=r"--params .*p.json: NaN is not a number"):
        domain.load({"case": "prostate-2d", "params": str(params)})


def test_custom_goals_and_params_and_batch(domain, tmp_path, passing_2d):
    goals = tmp_path / "easy.yaml"
    goals.write_text('goals:\n  - {structure: PTV, metric: mean, comparator: ">", value: 70}\n')
    params = tmp_path / "p.json"
    params.write_text(json.dumps(passing_2d))
    inst = domain.load({"case": "prostate-2d", "goals": str(goals), "params": str(params)})
    assert inst.id == "prostate-2d+easy"
    value = domain.candidate_from_args({}, inst)
    ev = domain.evaluate(value, inst)
    assert ev.passed and ev.metrics["goals_total"] == 1
    many = domain.load_many({"cases": ["prostate-2d,prostate-2d"], "goals": str(goals)})
    assert [i.case_spec for i in many] == ["prostate-2d", "prostate-2d"]


def test_examples_reach_the_optimizer_prompt(domain, tmp_path, passing_2d):
    examples = tmp_path / "ex.json"
    examples.write_text(json.dumps([passing_2d]))
    inst = domain.load({"case": "prostate-2d", "examples": str(examples)})
    start = domain.initial(inst)
    assert len(start.examples) == 1 and "meets every goal" in start.examples[0]


def test_cli_evaluate_prints_the_evaluation(tmp_path, passing_2d, capsys):
    from tgdomains.cli import main

    assert main(["evaluate", "radiotherapy", "--case", "prostate-2d", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["valid"] and not out["passed"] and out["metrics"]["PTV_D95_Gy"] < 78
    params = tmp_path / "p.json"
    params.write_text(json.dumps(passing_2d))
    assert main(["evaluate", "radiotherapy", "--case", "prostate-2d", "--params", str(params), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["passed"]


def test_the_loop_finds_a_plan_that_passes_more_goals(domain, instance, passing_2d, tmp_path):
    """Through the real runner: the scripted LLM first raises the PTV weight (better, still failing), then sends a
    reply with a negative weight (repaired), then the tuned set, which passes every goal and stops the run."""
    from tgdomains.engines.scripted import ScriptedEngine
    from tgdomains.run import optimize

    first = json.loads(domain.initial(instance).value)
    first["PTV"] = {"weight": 1000, "dose_Gy": 80}
    bad = {**passing_2d, "rectum": {"weight": -10, "dose_Gy": 31}}
    engine = ScriptedEngine([
        "Coverage is short: PTV D95 is below 78 Gy while the organs have margin; raise the PTV weight.",
        _tagged(first),
        "Closer; spend the rectum and bladder margin, lower their weights.",
        _tagged(bad),
        _tagged(passing_2d),
    ])
    result = optimize(domain, instance, engine=engine, strategy="chain", iterations=10, run_dir=tmp_path / "run",
                      progress=False)
    assert result.passed and result.stop_reason == "passed"
    initial = result.steps[0].evaluation
    assert result.best_evaluation.metrics["goals_passed"] > initial.metrics["goals_passed"]
    assert [s.status for s in result.steps] == ["initial", "updated", "repaired"]
    assert result.final["passed"] and result.final["failed_goals"] == []
    prompts = "\n".join(m["content"] for r in engine.requests for m in r["messages"])
    assert "PTV D95 = " in prompts  # the loss text reached the LLM
    assert "rectum.weight: -10 is negative" in prompts  # the repair request says why the reply was refused
    assert (result.run_dir / "steps.jsonl").exists()

    written = domain.report(str(result.run_dir), str(tmp_path / "report"))
    names = sorted(p.rsplit("/", 1)[-1] for p in written)
    assert names == ["dose_slice.png", "dvh.png", "goals.md", "weights.png"]
    table = (tmp_path / "report" / "goals.md").read_text()
    assert "| PTV D95 >= 78 Gy |" in table and "**no**" not in table  # the best plan meets every goal
    for png in written:
        if png.endswith(".png"):
            assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_optuna_baseline_runs_on_the_same_evaluator(domain, instance, tmp_path):
    from tgdomains.run import optimize, resume

    result = optimize(domain, instance, strategy="optuna", evaluation_budget=4, seed=1, run_dir=tmp_path / "o",
                      progress=False)
    assert 1 <= result.usage["evaluations"] <= 4 and result.usage["llm_calls"] == 0
    assert result.steps[0].value == domain.initial(instance).value  # trial 0 = the default weights
    assert result.best_evaluation.score == max(s.evaluation.score for s in result.steps)
    more = resume(tmp_path / "o", engine=None, evaluation_budget=5, progress=False)  # the directory alone
    assert [s.to_dict() for s in more.steps[:len(result.steps)]] == [s.to_dict() for s in result.steps] and more.usage["evaluations"] <= 5


@pytest.mark.slow
def test_batch_evaluates_in_worker_processes(domain, passing_2d, tmp_path):
    """Instances travel to worker processes as their specification; each worker loads the case from the cache."""
    import pickle

    from tgdomains.batch import optimize_many
    from tgdomains.engines.scripted import ScriptedEngine

    instances = domain.load_many({"cases": ["prostate-2d"]})
    assert len(pickle.dumps(instances[0])) < 2000  # no matrix inside

    def reply(messages):
        if "<IMPROVED_VARIABLE>" in messages[0]["content"] + messages[-1]["content"]:
            return _tagged(passing_2d)
        return "Coverage is short; raise the PTV weight and lower the rectum weight."

    summary = optimize_many(domain, instances, engine=ScriptedEngine(reply), out_dir=tmp_path / "batch",
                            workers=1, eval_workers=1, progress=False, iterations=3, strategy="chain")
    row = summary["instances"][0]
    assert summary["overall"]["errors"] == 0, row
    assert row["passed"], row


def test_objectives_name_only_structures_the_case_has(domain, case2d, tmp_path):
    """A case without a rectum (as TG-119 has none) gets the mean dose of its own primary organ, never -inf."""
    import dataclasses

    from domains.radiotherapy.cases import save_npz_case
    from tgdomains.checks import check_domain

    structures = {k: v for k, v in case2d.structures.items() if k != "rectum"}
    no_rectum = dataclasses.replace(case2d, name="no-rectum", structures=structures, primary_oars=["bladder"])
    save_npz_case(no_rectum, tmp_path / "no_rectum.npz")
    goals = tmp_path / "goals.yaml"
    goals.write_text("prescription_Gy: 78\ngoals:\n  - {structure: PTV, metric: D95, comparator: \">=\", value: 78}\n"
                     "  - {structure: bladder, metric: V70, comparator: \"<\", value: 35}\n")
    args = {"case": str(tmp_path / "no_rectum.npz"), "goals": str(goals)}
    instance = domain.load(args)
    assert domain.objectives(instance) == {"PTV_D95_Gy": "max", "bladder_mean_Gy": "min"}
    check_domain(domain, args)  # every objective is a metric of this case's evaluations
