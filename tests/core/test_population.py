"""Population search: parents from the Pareto front, concurrent children, the family tree, budgets, resume.

The LLM is scripted (`SeedEngine`: a reply from the prompt and the request's seed, so replies do not depend on the
order in which concurrent calls arrive); the evaluators are real (ArithmeticDomain, and the radiotherapy 2-D case
when that domain is installed).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from arithmetic_domain import ArithmeticDomain, Target, tagged

from tgdomains import pareto
from tgdomains.engines.base import BaseEngine, Completion, Usage, estimate_tokens
from tgdomains.records import RunRecord
from tgdomains.run import optimize

HERE = Path(__file__).parent


class SeedEngine(BaseEngine):
    """A scripted LLM whose reply is `respond(kind, value, seed, prompt)`; kind is "feedback", "step", "one_call"
    or "repair". Every request is kept."""

    model = "seed-scripted"

    def __init__(self, respond, delay_s: float = 0.0) -> None:
        super().__init__()
        self.respond = respond
        self.delay_s = delay_s
        self.requests: list[dict] = []
        self._lock = threading.Lock()

    def _complete(self, request):
        prompt = request.messages[-1][1]
        with self._lock:
            self.requests.append({"prompt": prompt, "seed": request.seed, "temperature": request.temperature})
        found = re.search(r"<VARIABLE>\n(.*?)\n</VARIABLE>", prompt, re.S)
        value = found.group(1) if found else ""
        kind = ("repair" if "could not be used" in prompt else "one_call" if "Critique the variable" in prompt
                else "step" if "Feedback on it" in prompt or "From scratch" in prompt else "feedback")
        if self.delay_s:
            time.sleep(self.delay_s)
        reply = self.respond(kind, value, request.seed, prompt)
        return Completion(reply, Usage(sum(estimate_tokens(c) for _, c in request.messages), estimate_tokens(reply)))


def additive(kind, value, seed, prompt):
    """Feedback names the value; a step appends a seeded small term (so children of one parent differ)."""
    if kind == "feedback":
        return f"fb[{value}]"
    if kind == "repair":
        return "no"
    term = random.Random(f"{value}|{seed}").randint(1, 9)
    return ("critique " if kind == "one_call" else "") + tagged(f"{value} + {term}")


def quiet(**kw):
    return dict(progress=False, **kw)


def optimize_population(domain, instance, **kw):
    return optimize(domain, instance, strategy="population", **kw)


def D(steps) -> list[dict]:
    """Steps as steps.jsonl stores them."""
    return [s.to_dict() for s in steps]


def check_tree(steps: list[dict]) -> None:
    """ids are line indices; every parent and original of a duplicate is an earlier step."""
    assert [s["id"] for s in steps] == list(range(len(steps)))
    assert steps[0]["parent"] is None and steps[0]["status"] == "initial"
    for s in steps[1:]:
        assert 0 <= s["parent"] < s["id"]
        if s["duplicate_of"] is not None:
            assert steps[s["duplicate_of"]]["value"] == s["value"] and s["duplicate_of"] < s["id"]
            assert steps[s["duplicate_of"]]["duplicate_of"] is None
    distinct = [s["value"] for s in steps if s["duplicate_of"] is None]
    assert len(distinct) == len(set(distinct))


def check_parents_on_front(steps: list[dict], objectives: dict[str, str]) -> None:
    """Every child's parent was on the Pareto front of the distinct candidates known when its iteration began."""
    objectives = pareto.with_score(objectives)
    for it in sorted({s["iteration"] for s in steps} - {0}):
        known = [s for s in steps if s["iteration"] < it and s["duplicate_of"] is None]
        front = {known[i]["id"] for i in pareto.pareto_front([k["evaluation"] for k in known], objectives)}
        parents = {s["parent"] for s in steps if s["iteration"] == it}
        assert parents <= front, (it, parents, front)


def read(run_dir: Path) -> tuple[list[dict], dict, dict]:
    record = RunRecord(run_dir)
    return record.read_step_dicts(repair=False), record.read_config(), record.read_best()


# -- the loop -------------------------------------------------------------------------------------------------


def test_children_come_from_the_front_and_the_record_is_the_family_tree(tmp_path):
    domain, engine = ArithmeticDomain(), SeedEngine(additive)
    result = optimize_population(domain, Target("t", 60), engine=engine, run_dir=tmp_path / "r", population=3,
                                 proposals=2, iterations=4, **quiet())
    steps, run, best = read(tmp_path / "r")
    assert steps == D(result.steps)
    check_tree(steps)
    check_parents_on_front(steps, domain.objectives(None))
    assert run["config"]["population"] == 3 and run["config"]["proposals"] == 2
    assert run["objectives"] == {"score": "max", "length": "min"}
    by_id = {s["id"]: s for s in steps}
    for s in steps[1:]:  # the feedback that produced a child is its parent's own feedback
        assert s["feedback"] == f"fb[{by_id[s['parent']]['value']}]"
    assert max(s["iteration"] for s in steps) == 4
    assert len({s["parent"] for s in steps if s["iteration"] == 4}) > 1  # the front holds several parents
    # every LLM call is in exactly one step: one backward per parent and one step call per child
    assert sum(s["usage"]["llm_calls"] for s in steps) == len(engine.requests) == best["usage"]["llm_calls"]
    assert best["usage"]["prompt_tokens"] == sum(s["usage"]["prompt_tokens"] for s in steps) > 0
    # each distinct candidate was evaluated once, and the best and the front are what the record says
    assert sorted(domain.evaluated) == sorted(s["value"] for s in steps if s["duplicate_of"] is None)
    assert best["usage"]["evaluations"] == len(domain.evaluated)
    assert best["value"] == result.best_value == max(steps, key=lambda s: s["evaluation"]["score"])["value"]
    distinct = [s for s in steps if s["duplicate_of"] is None]
    assert best["front"] == [distinct[i]["id"] for i in pareto.pareto_front(
        [s["evaluation"] for s in distinct], pareto.with_score(domain.objectives(None)))]


def test_a_bad_child_never_replaces_its_parent_on_the_front(tmp_path):
    def worse(kind, value, seed, prompt):  # longer and further from the target: dominated by its parent
        return "fb" if kind == "feedback" else tagged(f"{value} - {seed + 2}")

    domain = ArithmeticDomain()
    result = optimize_population(domain, Target("t", 24), engine=SeedEngine(worse), run_dir=tmp_path / "r",
                                 initial_value="20 + 3", population=4, proposals=3, iterations=3, **quiet())
    steps, _, best = read(tmp_path / "r")
    check_tree(steps)
    assert len(domain.evaluated) == 1 + 3 * 3  # every child was evaluated ...
    assert best["front"] == [0] and result.best_value == "20 + 3"  # ... and none displaced the parent
    assert {s["parent"] for s in steps[1:]} == {0}  # so only the parent ever had children


def test_duplicates_are_never_evaluated_twice(tmp_path):
    def same(kind, value, seed, prompt):  # every child of 1 + 1 is 3 * 7, and 3 * 7 proposes itself
        return "fb" if kind == "feedback" else tagged("3 * 7")

    domain = ArithmeticDomain()
    result = optimize_population(domain, Target("t", 24), engine=SeedEngine(same), run_dir=tmp_path / "r",
                                 population=2, proposals=3, iterations=3, **quiet())
    assert domain.evaluated == ["1 + 1", "3 * 7"]
    statuses = [(s["iteration"], s["status"], s["duplicate_of"]) for s in D(result.steps)]
    assert statuses[:4] == [(0, "initial", None), (1, "updated", None), (1, "duplicate", 1), (1, "duplicate", 1)]
    assert {st for it, st, _ in statuses if it > 1} <= {"unchanged", "duplicate"}
    assert result.usage["evaluations"] == 2 and len(result.steps) > 4
    check_tree(D(result.steps))


def test_a_parents_later_children_are_sampled_above_temperature_zero(tmp_path):
    # at temperature 0 every sibling's request gets the same reply: only the first child may be greedy
    engine = SeedEngine(additive)
    optimize_population(ArithmeticDomain(), Target("t", 99), engine=engine, run_dir=tmp_path / "r",
                        population=1, proposals=3, iterations=1, **quiet())
    steps = sorted(r["temperature"] for r in engine.requests if "Feedback on it" in r["prompt"])
    assert steps == [0.0, 0.8, 0.8]
    assert [r["temperature"] for r in engine.requests if "Feedback on it" not in r["prompt"]] == [0.0]


def test_unusable_replies_keep_the_parent_and_are_not_evaluated(tmp_path):
    def broken(kind, value, seed, prompt):
        return "fb" if kind == "feedback" else "no tags at all" if seed % 2 else tagged(f"{value} * 2")

    domain = ArithmeticDomain()
    result = optimize_population(domain, Target("t", 50), engine=SeedEngine(broken), run_dir=tmp_path / "r",
                                 population=2, proposals=2, iterations=2, **quiet())
    failed = [s for s in D(result.steps) if s["status"] == "failed"]
    assert failed and all(s["value"] == D(result.steps)[s["parent"]]["value"] and s["duplicate_of"] == s["parent"]
                          for s in failed)
    assert all(s["usage"]["llm_calls"] >= 2 for s in failed)  # the step call and its repair request are counted
    assert len(domain.evaluated) == len(set(domain.evaluated)) == result.usage["evaluations"]
    assert result.usage["unusable_replies"] == len(failed)


def test_a_batch_runs_population_search_per_instance(tmp_path):
    from tgdomains.batch import optimize_many

    summary = optimize_many(ArithmeticDomain(), [Target("a", 30), Target("b", 40)], engine=SeedEngine(additive),
                            out_dir=tmp_path / "batch", workers=2, eval_workers=2, progress=False, strategy="population", population=2,
                            proposals=2, iterations=2)
    assert summary["overall"]["errors"] == 0
    for row in summary["instances"]:  # evaluations ran in the batch's worker processes, the tree is still whole
        steps, run, _ = read(Path(row["run_dir"]))
        check_tree(steps)
        assert run["config"]["population"] == 2 and steps[-1]["iteration"] == 2


# -- budgets --------------------------------------------------------------------------------------------------


def test_the_evaluation_budget_is_never_exceeded(tmp_path):
    domain = ArithmeticDomain()
    result = optimize_population(domain, Target("t", 500), engine=SeedEngine(additive), run_dir=tmp_path / "r",
                                 population=4, proposals=2, iterations=50, evaluation_budget=6, **quiet())
    assert len(domain.evaluated) == 6 == result.usage["evaluations"]
    assert result.stop_reason == "evaluation budget (6) reached"
    # iteration 1: one parent, 1 feedback + 2 step calls; iteration 2 asked for only the 3 children the budget had
    # left (two parents, one of them the start whose feedback is reused: 1 feedback + 3 step calls), not
    # population x proposals = 8
    assert len(result.steps) == 6 and result.usage["llm_calls"] == (1 + 2) + (1 + 3)


def test_the_token_budget_counts_every_call_of_every_child(tmp_path):
    engine = SeedEngine(additive)
    result = optimize_population(ArithmeticDomain(), Target("t", 500), engine=engine, run_dir=tmp_path / "r",
                                 population=4, proposals=2, iterations=50, token_budget=3000, **quiet())
    assert result.stop_reason.startswith("token budget spent")
    used = result.usage["prompt_tokens"] + result.usage["completion_tokens"]
    assert used >= 3000 and result.usage["llm_calls"] == len(engine.requests)
    # a call is refused once the budget is spent, so the overshoot is at most one round of concurrent calls
    assert used < 3000 + 9 * max(estimate_tokens(r["prompt"]) + 200 for r in engine.requests)
    check_tree(D(result.steps))


def test_a_resumed_run_keeps_what_it_already_spent(tmp_path):
    kwargs = dict(population=2, proposals=2, iterations=50, token_budget=2000, **quiet())
    first = optimize_population(ArithmeticDomain(), Target("t", 500), engine=SeedEngine(additive),
                                run_dir=tmp_path / "r", **kwargs)
    assert first.stop_reason.startswith("token budget spent")
    engine = SeedEngine(additive)
    again = optimize_population(ArithmeticDomain(), Target("t", 500), engine=engine, run_dir=tmp_path / "r",
                                resume=True, **kwargs)
    assert again.stop_reason.startswith("token budget spent") and engine.requests == []
    assert D(again.steps) == D(first.steps)


def test_the_time_budget_stops_between_iterations(tmp_path):
    result = optimize_population(ArithmeticDomain(), Target("t", 500), engine=SeedEngine(additive, delay_s=0.05),
                                 run_dir=tmp_path / "r", iterations=100, time_budget_s=0.3, **quiet())
    assert result.stop_reason == "time budget (0.3 s) reached" and D(result.steps)[-1]["iteration"] < 10


# -- resume ---------------------------------------------------------------------------------------------------


def _truncate(run_dir: Path, keep: int, torn: str = "") -> None:
    path = run_dir / "steps.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:keep]) + torn)


def test_resume_from_an_iteration_boundary_replays_the_uninterrupted_run(tmp_path):
    kwargs = dict(population=3, proposals=2, iterations=4, seed=7, **quiet())
    whole = optimize_population(ArithmeticDomain(), Target("t", 70), engine=SeedEngine(additive),
                                run_dir=tmp_path / "whole", **kwargs)
    optimize_population(ArithmeticDomain(), Target("t", 70), engine=SeedEngine(additive), run_dir=tmp_path / "cut",
                        **kwargs)
    boundary = sum(1 for s in D(whole.steps) if s["iteration"] <= 2)
    _truncate(tmp_path / "cut", boundary, torn='{"iteration": 3, "va')
    with pytest.raises(FileExistsError):
        optimize_population(ArithmeticDomain(), Target("t", 70), engine=SeedEngine(additive),
                            run_dir=tmp_path / "cut", **kwargs)
    domain = ArithmeticDomain()
    resumed = optimize_population(domain, Target("t", 70), engine=SeedEngine(additive), run_dir=tmp_path / "cut",
                                  resume=True, **kwargs)
    keys = ("id", "iteration", "parent", "value", "feedback", "status", "duplicate_of")
    assert [[s.get(k) for k in keys] for s in D(resumed.steps)] == [[s.get(k) for k in keys] for s in D(whole.steps)]
    assert set(domain.evaluated).isdisjoint(s["value"] for s in D(whole.steps)[:boundary])  # nothing re-evaluated
    assert read(tmp_path / "cut")[0] == D(resumed.steps)


def test_resume_mid_iteration_keeps_the_family_tree_complete(tmp_path):
    kwargs = dict(population=3, proposals=2, seed=1, **quiet())
    first = optimize_population(ArithmeticDomain(), Target("t", 90), engine=SeedEngine(additive),
                                run_dir=tmp_path / "r", iterations=3, **kwargs)
    cut = next(s["id"] for s in D(first.steps) if s["iteration"] == 3) + 1  # one child of iteration 3 survives
    _truncate(tmp_path / "r", cut, torn='{"id": 99, "parent": 4')
    resumed = optimize_population(ArithmeticDomain(), Target("t", 90), engine=SeedEngine(additive),
                                  run_dir=tmp_path / "r", resume=True, iterations=5, **kwargs)
    steps = read(tmp_path / "r")[0]
    assert steps == D(resumed.steps) and steps[:cut] == D(first.steps)[:cut]
    check_tree(steps)
    assert [s["iteration"] for s in steps[cut:]][0] == 4 and steps[-1]["iteration"] == 5


def test_a_single_chain_run_continues_as_a_population(tmp_path):
    from tgdomains.engines import ScriptedEngine

    optimize(ArithmeticDomain(), Target("t", 90), engine=ScriptedEngine(["fb", tagged("1 + 1"), "no", "fb", tagged("9")]),
             run_dir=tmp_path / "r", iterations=2, **quiet())  # step 1 is "unchanged": a duplicate of step 0
    domain = ArithmeticDomain()
    result = optimize_population(domain, Target("t", 90), engine=SeedEngine(additive), run_dir=tmp_path / "r",
                                 resume=True, iterations=4, **quiet())
    check_tree(D(result.steps))
    assert D(result.steps)[1]["duplicate_of"] == 0 and D(result.steps)[2]["value"] == "9"
    assert "1 + 1" not in domain.evaluated and "9" not in domain.evaluated


_KILLED_RUN = """
import sys
sys.path.insert(0, {here!r})
from arithmetic_domain import ArithmeticDomain, Target
from test_population import SeedEngine, additive
from tgdomains.run import optimize
optimize(ArithmeticDomain(), Target("t", 10**9), engine=SeedEngine(additive, delay_s=0.02), strategy="population",
         run_dir={run_dir!r}, population=3, proposals=2, iterations=1000, progress=False)
"""


def test_resume_after_sigkill_keeps_the_family_tree_complete(tmp_path):
    run_dir = tmp_path / "r"
    code = _KILLED_RUN.format(here=str(HERE), run_dir=str(run_dir))
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=HERE, env={**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])})
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            path = run_dir / "steps.jsonl"
            if path.exists() and path.read_text().count("\n") >= 12:
                break
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    killed = RunRecord(run_dir).read_step_dicts(repair=False)
    assert len(killed) >= 12 and proc.returncode == -signal.SIGKILL
    check_tree(killed)
    last = killed[-1]["iteration"]
    domain = ArithmeticDomain()
    result = optimize_population(domain, Target("t", 10**9), engine=SeedEngine(additive), run_dir=run_dir,
                                 resume=True, population=3, proposals=2, iterations=last + 2, **quiet())
    check_tree(D(result.steps))
    check_parents_on_front(D(result.steps), domain.objectives(None))
    assert D(result.steps)[:len(killed)] == killed and D(result.steps)[-1]["iteration"] == last + 2
    assert set(domain.evaluated).isdisjoint(s["value"] for s in killed)


# -- plots ----------------------------------------------------------------------------------------------------


def test_front_and_lineage_plots(tmp_path):
    from tgdomains.report import write_report
    from tgdomains.report.figures import lineage, plot_front, plot_lineage

    domain = ArithmeticDomain()
    result = optimize_population(domain, Target("t", 40), engine=SeedEngine(additive), run_dir=tmp_path / "r",
                                 population=3, proposals=2, iterations=3, **quiet())
    chain = D(lineage(result.steps))
    assert chain[0]["id"] == 0 and chain[-1]["value"] == result.best_value
    assert all(child["parent"] == parent["id"] for parent, child in zip(chain, chain[1:], strict=False))
    for path in (plot_front(result.steps, domain.objectives(None), tmp_path / "front.png"),
                 plot_lineage(result.steps, tmp_path / "lineage.png")):
        assert path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size > 5000
    written = write_report(tmp_path / "r", tmp_path / "report")  # the report draws the lineage of population runs
    assert (tmp_path / "report" / "lineage.png") in written


# -- a real domain ----------------------------------------------------------------------------------------------


def _radiotherapy():
    from tgdomains.domain import get_domain

    try:
        domain = get_domain("radiotherapy")
        return domain, domain.load({"case": "prostate-2d"})
    except Exception as exc:  # the domain is optional for the core's tests
        pytest.skip(f"radiotherapy domain unavailable: {type(exc).__name__}: {exc}")


def perturbed_plan(value: str, seed: int) -> str:
    """A seeded multiplicative change of the weights and a small shift of the dose levels."""
    rng = random.Random(f"{value}|{seed}")
    plan = json.loads(value)
    for entry in plan.values():
        entry["weight"] = round(min(10_000.0, max(0.0, entry["weight"] * rng.choice([0.5, 0.8, 1.25, 2.0]))), 2)
        entry["dose_Gy"] = round(max(0.0, entry["dose_Gy"] + rng.choice([-2, 0, 2])), 1)
    return json.dumps(plan)


def test_radiotherapy_front_parents_and_bad_children(tmp_path):
    domain, instance = _radiotherapy()
    start = json.loads(domain.initial(instance).value)

    def respond(kind, value, seed, prompt):
        if kind == "feedback":
            return "raise the PTV coverage"
        if value == domain.initial(instance).value and seed % 2:  # a bad child: the target barely weighted
            bad = {**start, "PTV": {"weight": 1, "dose_Gy": 60}}
            return tagged(json.dumps(bad))
        return tagged(perturbed_plan(value, seed))

    counted: Counter = Counter()

    def evaluate(value):
        counted[value] += 1
        return domain.evaluate(value, instance)

    result = optimize_population(domain, instance, engine=SeedEngine(respond), run_dir=tmp_path / "r",
                                 population=2, proposals=2, iterations=2, evaluate=evaluate, **quiet())
    steps = D(result.steps)
    check_tree(steps)
    check_parents_on_front(steps, domain.objectives(instance))
    assert set(counted.values()) == {1} and len(counted) == result.usage["evaluations"]
    bad = [s for s in steps if s["parent"] == 0 and json.loads(s["value"])["PTV"]["weight"] == 1]
    assert bad and all(s["evaluation"]["score"] < steps[0]["evaluation"]["score"] for s in bad)
    front = set(json.loads((tmp_path / "r" / "best.json").read_text())["front"])
    objectives = pareto.with_score(domain.objectives(instance))

    def vector(step):
        return pareto.objective_vector(step["evaluation"], objectives)

    beaten = [s for s in steps[1:] if s["duplicate_of"] is None and pareto.dominates(vector(steps[s["parent"]]), vector(s))]
    assert any(s in bad for s in beaten)  # the crippled plan is worse than its parent on every objective ...
    assert not front & {s["id"] for s in beaten}  # ... and no child its parent beats is on the front or had children
    assert not {s["parent"] for s in steps} & {s["id"] for s in beaten}
    # a parent leaves the front only for a child (or another candidate) that dominates it
    for s in steps:
        if s["duplicate_of"] is None and s["id"] not in front and vector(s) is not None:
            assert any(pareto.dominates(vector(o), vector(s)) for o in steps if o["id"] in front)
