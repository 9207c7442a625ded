"""Optimization quality: every method at equal budgets on each domain, through the one run loop.

    python3 bench/quality/run.py --domain radiotherapy            # record with the embedded model (default engine)
    python3 bench/quality/run.py --domain all --engine openai --base-url http://host:8000/v1 --model NAME
    python3 bench/quality/run.py --domain radiotherapy --replay   # offline, from the committed cassettes

Every (instance, method) run gets the same caps, set per domain in `SUITES`: `llm_calls` LLM requests (feedback,
steps, repairs and re-asks all count) and `evaluations` distinct evaluated candidates (the start included); the
LLM-free baselines
(radiotherapy: optuna; molecules: graph-ga) get the same evaluation cap. Seeds are fixed (`--seed`).

Each run records its LLM traffic to cassettes/DOMAIN/INSTANCE/METHOD.jsonl and the evaluations it made to
METHOD.evals.jsonl next to it (under `--seed N` other than 0: METHOD.seedN.jsonl ..., results_DOMAIN_seedN.*).
`--replay` serves the recorded replies (ReplayEngine: a changed prompt is a CassetteMiss, not a silent re-run) and, unless `--reevaluate`, the recorded evaluations and finalize result
(METHOD.final.json: code's hidden tests), so the tables regenerate offline in seconds;
tests/core/test_quality_tables.py asserts that they equal the committed results_DOMAIN.md.

Outputs: results_DOMAIN.json (every run: summary and best-so-far curves), results_DOMAIN.md (the tables) and
DOMAIN_INSTANCE.png (best-so-far against LLM calls and against evaluations, one line per method).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # run from anywhere in the checkout
sys.path.insert(0, str(HERE))  # bench_strategies.py beside this file

from bench_strategies import BENCH_STRATEGIES  # noqa: E402

from tgdomains.domain import get_domain  # noqa: E402
from tgdomains.evaluation import Evaluation  # noqa: E402
from tgdomains.records import Step, StepStatus  # noqa: E402


@dataclass(frozen=True)
class Method:
    name: str  # the column/line label
    strategy: str
    settings: dict[str, Any] = field(default_factory=dict)
    uses_llm: bool = True
    # the strategy keeps to the suite's LLM calls itself (its `llm_calls` setting): a run-level call budget would
    # end the run at its last call, with the TPE trials of the LLM-guided strategy still to come
    caps_own_calls: bool = False
    domain: str | None = None  # a domain's own strategy: run on that domain's suites only


LLM_METHODS = [
    Method("zero-shot", "zero-shot"),
    Method("best-of-4", "zero-shot", {"samples": 4, "workers": 1}),  # one thread, as population below
    Method("reflexion", "reflexion"),
    Method("tgd-chain", "chain"),
    # one thread: which concurrent call a spent budget refuses would depend on timing, and replays must not
    Method("population", "population", {"population": 2, "proposals": 1, "workers": 1}),
    # one critique of the best, three children from it (the first greedy, the others sampled at 0.8): TGD's
    # feedback with the samplers' spread, the critique's cost shared by three proposals
    Method("tgd-fanout", "population", {"population": 1, "proposals": 3, "workers": 1}),
    # code's sample-repair-select, one part added at a time (samples alone: zero-shot, the same requests): a repair
    # of each concretely failing sample; selection among the passing programs by agreement on generated inputs
    # (the run goes on after the first visible pass); both
    Method("sample+repair", "sample-repair-select", {"agree": 0}, domain="code"),
    Method("sample+select", "sample-repair-select", {"repairs": 0}, domain="code"),
    Method("sample+repair+select", "sample-repair-select", domain="code"),
]


HUMANEVAL_PLUS = HERE.parents[2] / "shared" / "data" / "HumanEvalPlus.jsonl.gz"  # ../shared beside the checkout


@dataclass(frozen=True)
class Rule:
    name: str  # in column headers: "best Ro5 score"
    description: str  # under the overview's caption
    test: Callable[[dict[str, float]], bool]  # a candidate's metrics -> whether it meets the rule


@dataclass(frozen=True)
class Suite:
    name: str  # `--domain NAME`; file names: results_NAME.md, cassettes/NAME/, NAME_INSTANCE.png
    domain: str
    instances: list[dict[str, Any]]  # the domain's instance arguments (as the CLI's flags)
    baselines: list[Method]
    llm_calls: int
    evaluations: int
    columns: list[str]  # best-candidate metrics shown in the table
    # a second best score, over the candidates that meet a rule the score itself does not enforce (molecules: the
    # rule of five), so a table shows when a method's best is a reward hack
    admissible: Rule | None = None
    llm_methods: list[Method] | None = None  # the LLM methods compared (None: LLM_METHODS)
    plots: bool = True  # a plot per instance and seed (off where a script plots every seed together)
    # the GA suites' table: top-10 AUC, novelty, what became of the LLM's children, wall seconds; curves against
    # wall seconds too
    extended: bool = False

    @property
    def llm_runs(self) -> list[Method]:
        return LLM_METHODS if self.llm_methods is None else self.llm_methods

    @property
    def methods(self) -> list[Method]:
        return [*self.llm_runs, *self.baselines]


# Lipinski's rule as he stated it (poor oral absorption is likely when more than one criterion fails). The bench's
# objective, Vina + (1 − QED), does not enforce it: Reflexion's best on DRD2-acetamide, a chain of 20 amines, docks
# at −14.1 kcal/mol with QED 0.07.
RULE_OF_FIVE = Rule("Ro5", "Lipinski's rule of five: at most one of MW > 500, logP > 5, H-bond donors > 5, "
                    "acceptors > 10", lambda metrics: metrics.get("lipinski_violations", math.inf) <= 1)

# Lead optimization: the rule of five, and the task's constraints met (similarity to the lead at least the floor)
LEAD_RULE = Rule("Ro5+sim", "the rule of five, and Tanimoto similarity to the lead at least 0.4 (every constraint "
                 "met)", lambda metrics: RULE_OF_FIVE.test(metrics)
                 and metrics.get("constraint_violations", math.inf) == 0)

# The GA suites: the LLM-guided GA (one or two LLM children per generation) against Graph GA on every seed, and the
# TGD chain for reference (recorded on seed 0 only: `--methods tgd-chain`)
GA_METHODS = [
    Method("llm-ga", "llm-ga", {"llm_children": 1}),
    Method("llm-ga-2", "llm-ga", {"llm_children": 2}),
    Method("tgd-chain", "chain"),
]
GA_BUDGET = {"llm_calls": 20, "evaluations": 100}

SUITES = {
    # prostate: the 3-D phantom (5 mm voxels, 7 beams; a plan evaluation takes ~1.3 s on a quiet machine)
    "radiotherapy": Suite("radiotherapy", "radiotherapy", [{"case": "prostate-2d"}, {"case": "prostate"}],
                          [Method("optuna", "optuna", uses_llm=False)],
                          llm_calls=10, evaluations=10,  # 5 chain iterations, as the first runs
                          columns=["goals_passed", "PTV_D95_Gy", "rectum_mean_Gy", "bladder_mean_Gy"]),
    "molecules": Suite("molecules", "molecules", [{"target": t, "start": s, "exhaustiveness": 1} for t in ("DRD2", "ESR2")
                                     for s in ("acetamide", "pentane", "benzene")],
                       [Method("graph-ga", "graph-ga", uses_llm=False)], llm_calls=8, evaluations=8,
                       columns=["vina", "qed", "objective", "lipinski_violations"],
                       admissible=RULE_OF_FIVE),
    # the 12 shipped LeetCode-Hard problems, and two HumanEval+ problems the model's zero-shot program fails
    # (screened: HumanEval/145 passes 2 of 3 visible tests and 4% of the hidden ones, HumanEval/163 none)
    "code": Suite("code", "code", [*({"task_id": t} for t in ("longest-valid-parentheses", "burst-balloons",
                                                      "trapping-rain-water", "median-of-two-sorted-arrays",
                                                      "regex-dot-star-matching", "wildcard-matching",
                                                      "largest-rectangle-in-histogram", "sliding-window-maximum",
                                                      "minimum-window-substring", "count-smaller-after-self",
                                                      "distinct-subsequences", "n-queens-count")),
                           *({"problems": str(HUMANEVAL_PLUS), "task_id": t} for t in ("HumanEval/145",
                                                                                        "HumanEval/163"))],
                  [], llm_calls=8, evaluations=6, columns=["visible_pass_rate"]),
    # the problems no method solved on either seed of "code", at twice its budget: whether edits overtake
    # independent samples once there is room for more than a few of them
    "code-hard": Suite("code-hard", "code", [{"task_id": "longest-valid-parentheses"},
                                             {"task_id": "count-smaller-after-self"},
                                             *({"problems": str(HUMANEVAL_PLUS), "task_id": t}
                                               for t in ("HumanEval/145", "HumanEval/163"))],
                       [], llm_calls=16, evaluations=12, columns=["visible_pass_rate"]),
    # de novo at PMO-like budgets: the paper's benzene start on two targets, 100 dockings
    "molecules-denovo": Suite("molecules-denovo", "molecules",
                              [{"target": t, "start": "benzene", "exhaustiveness": 1} for t in ("DRD2", "ESR2")],
                              [Method("graph-ga", "graph-ga", uses_llm=False)], **GA_BUDGET,
                              columns=["vina", "qed", "lipinski_violations"], admissible=RULE_OF_FIVE,
                              llm_methods=GA_METHODS, extended=True),
    # lead optimization: two known ligands per target (domains/molecules/chemistry.py LEADS), similarity >= 0.4
    "molecules-lead": Suite("molecules-lead", "molecules",
                            [{"target": t, "start": lead, "exhaustiveness": 1}
                             for t, lead in (("DRD2", "apomorphine"), ("ESR2", "genistein"), ("DRD2", "haloperidol"),
                                             ("ESR2", "estradiol"))],
                            [Method("graph-ga", "graph-ga", uses_llm=False)], **GA_BUDGET,
                            columns=["vina", "qed", "similarity_to_reference", "lipinski_violations"],
                            admissible=LEAD_RULE, llm_methods=GA_METHODS, extended=True),
}
# LLM-guided Bayesian optimization against TPE configured for the budget, both stopping at the first plan that meets
# every goal: 40 evaluations, at most 6 LLM calls, seeds 0-4 (bench/quality/guided.py tables and plots them all).
# Two schedules: 2 LLM trials first, then one after every 6 TPE trials (up to 6 calls: bench_strategies.py); or the
# 2 first trials only, TPE after them (the warm start alone, LLAMBO's main gain: `guided-tpe`, since it met every goal
# on more seeds; its requests are the first schedule's first two).
GUIDED_METHODS = [
    Method("guided-tpe", "guided-tpe-interleaved", {"warm_start": 2, "every": 6}, caps_own_calls=True),
    Method("guided-tpe-warm2", "guided-tpe", {"warm_start": 2}, caps_own_calls=True),
]
RT_COLUMNS = ["goals_passed", "PTV_D95_Gy", "rectum_mean_Gy", "bladder_mean_Gy"]
SUITES["radiotherapy-bo"] = Suite("radiotherapy-bo", "radiotherapy", [{"case": "prostate-2d"}, {"case": "prostate"}],
                                  [Method("tpe", "tpe", uses_llm=False)], llm_calls=6, evaluations=40,
                                  columns=RT_COLUMNS, llm_methods=GUIDED_METHODS, plots=False)
# TPE alone left to run on prostate-2d: how many evaluations it needs (at this budget `tpe` is Optuna's defaults:
# 10 start-up trials, multivariate)
SUITES["radiotherapy-tpe300"] = Suite("radiotherapy-tpe300", "radiotherapy", [{"case": "prostate-2d"}],
                                      [Method("tpe", "tpe", uses_llm=False)], llm_calls=0, evaluations=300,
                                      columns=RT_COLUMNS, llm_methods=[], plots=False)
# the 14 problems of "code" at code-hard's budget: whether selection's extra samples pay at twice the calls
SUITES["code-16"] = Suite("code-16", "code", SUITES["code"].instances, [], llm_calls=16, evaluations=12,
                          columns=["visible_pass_rate"])


def seed_suffix(seed: int, sep: str = ".") -> str:
    """What a seed adds to file names: nothing for seed 0, else ".seed1" for
    cassettes (METHOD.seed1.jsonl) and "_seed1" for results and plots (results_code_seed1.md)."""
    return "" if seed == 0 else f"{sep}seed{seed}"


def results_stem(suite: str, seed: int) -> str:
    """The name of a suite's results files under a seed: results_code, results_code_seed1, results_code-hard."""
    return f"results_{suite}{seed_suffix(seed, '_')}"


def parse_results_stem(stem: str) -> tuple[str, int]:
    """`results_stem`'s inverse: "results_code_seed1" -> ("code", 1)."""
    suite, _, seed = stem.removeprefix("results_").partition("_seed")
    return suite, int(seed or 0)


def instance_name(args: dict[str, Any]) -> str:
    """The instance's name in tables and cassette paths: its arguments' values, without settings or file paths."""
    return "-".join(str(v).replace("/", "-") for k, v in args.items() if k not in ("exhaustiveness", "problems"))


# -- running ---------------------------------------------------------------------------------------------------


class RecordedEvaluations:
    """The evaluations a run made, by value: written while recording, served on replay (or None: evaluate).

    `reuse` (recording): a value that any committed run of the instance already evaluated gets that evaluation
    instead of running the evaluator again. An evaluation is a function of the value, but not bit for bit across
    machines (the radiotherapy dose engine's DVH values differ by ~0.1 Gy), so without this a re-recording on
    another machine changed every prompt after the first evaluation and the reply cache served nothing; it also
    saves the dockings. `--fresh-evaluations` turns it off (after an evaluator change)."""

    def __init__(self, path: Path, replay: bool, reuse: bool = False) -> None:
        self.path, self.replay = path, replay
        self.known: dict[str, dict] = {}
        sources = [path] if replay else sorted(path.parent.glob("*.evals.jsonl")) if reuse else []
        for source in (f for f in sources if f.exists()):
            for line in source.read_text(encoding="utf-8").splitlines():
                entry = json.loads(line)
                self.known.setdefault(entry["value"], entry["evaluation"])
        self.reused = 0
        if not replay:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("")

    def wrap(self, evaluate):
        def recorded(value: str) -> Evaluation:
            if value in self.known:
                if not self.replay:  # reused while recording: this run's file still lists it
                    self.reused += 1
                    self._write(value, self.known[value])
                return Evaluation.from_dict(self.known[value])
            evaluation = evaluate(value)
            if not self.replay:
                # details (DVH curves, per-test logs) feed reports, not the tables: left out to keep this small
                self._write(value, {k: v for k, v in evaluation.to_dict().items() if k != "details"})
            return evaluation
        return recorded

    def _write(self, value: str, evaluation: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"value": value, "evaluation": evaluation}, ensure_ascii=False, default=str) + "\n")


class RecordedFinal:
    """The run's finalize result (code: the hidden tests of the best program), stored beside its evaluations.

    Served on replay when the replayed run ends on the same best value, so a replay never runs the hidden tests
    again (the code tables replay in seconds instead of minutes); `--reevaluate` rewrites it, running finalize
    again unless a sibling holds the value's verdict. A value another method of the instance already finalized gets
    that verdict: a hidden test near its time limit
    passed in one measurement of the same program and not in another (HumanEval/163: 9 or 10 of 986), and one
    program must not show two verdicts in a table.
    """

    def __init__(self, path: Path, replay: bool) -> None:
        self.path, self.replay = path, replay
        self.known = json.loads(path.read_text(encoding="utf-8")) if replay and path.exists() else None

    def wrap(self, finalize):
        def recorded(value: str, instance: Any) -> dict[str, Any]:
            if self.known is not None and self.known["value"] == value:
                return self.known["final"]
            final = self._sibling(value)
            if final is None:
                final = finalize(value, instance) or {}
            if not self.replay:
                self.path.write_text(json.dumps({"value": value, "final": final}, indent=1, ensure_ascii=False,
                                                default=str) + "\n", encoding="utf-8")
            return final
        return recorded

    def _sibling(self, value: str) -> dict[str, Any] | None:
        for other in sorted(self.path.parent.glob("*.final.json")):
            if other != self.path:
                entry = json.loads(other.read_text(encoding="utf-8"))
                if entry["value"] == value:
                    return entry["final"]
        return None


def cassette_dir(suite: Suite, args: dict[str, Any]) -> Path:
    """Where an instance's recordings lie: cassettes/SUITE/INSTANCE/METHOD[.seedN].{jsonl,evals.jsonl,final.json}."""
    return HERE / "cassettes" / suite.name / instance_name(args)


def run_one(suite: Suite, args: dict[str, Any], method: Method, engine_factory, opts: argparse.Namespace,
            work: Path) -> dict[str, Any]:
    from tgdomains.run import optimize

    domain = get_domain(suite.domain)
    instance = domain.load(dict(args))
    where = cassette_dir(suite, args)
    stem = method.name + seed_suffix(opts.seed)
    cassette = where / f"{stem}.jsonl"
    replaying = opts.replay and not opts.reevaluate
    evals = RecordedEvaluations(where / f"{stem}.evals.jsonl", replay=replaying,
                                reuse=not (opts.fresh_evaluations or opts.reevaluate))
    unrecorded_finalize = domain.finalize
    domain.finalize = RecordedFinal(where / f"{stem}.final.json", replay=replaying).wrap(domain.finalize)
    engine = engine_factory(cassette) if method.uses_llm else None
    settings = dict(method.settings)
    if method.caps_own_calls:
        settings["llm_calls"] = suite.llm_calls
    elif method.uses_llm:
        settings["llm_call_budget"] = suite.llm_calls
    strategy: Any = method.strategy
    if strategy in BENCH_STRATEGIES:  # not the product's: built here, with its own settings
        cls = BENCH_STRATEGIES[strategy]
        own = {f.name for f in fields(cls)}
        strategy = cls(**{k: v for k, v in settings.items() if k in own}).check()
        settings = {k: v for k, v in settings.items() if k not in own}
    run_dir = work / suite.name / instance_name(args) / method.name
    t0 = time.monotonic()
    result = optimize(domain, instance, engine=engine, strategy=strategy, run_dir=run_dir,
                      evaluate=evals.wrap(lambda v: domain.evaluate(v, instance)), progress=opts.verbose,
                      iterations=50, seed=opts.seed, evaluation_budget=suite.evaluations, **settings)
    if getattr(engine, "misses", 0):  # the run loop took each miss for a dead endpoint and went on
        raise SystemExit(f"{cassette}: {engine.misses} request(s) were never recorded: prompts, grammars or "
                         f"strategies changed since the recording; re-record this run (without --replay)")
    summary = summarize(result.steps, result.final, result.usage, suite.columns,
                        suite.admissible.test if suite.admissible else None, extended=suite.extended,
                        chosen=result.best_value)
    selection = result.final.get("selection")
    if isinstance(selection, dict):  # what the hidden tests said of the first visible pass the selection overruled
        summary["selection"] = selection_row(selection, result.steps, result.final, RecordedFinal(
            where / f"{stem}.first-pass.final.json", replay=replaying).wrap(unrecorded_finalize), instance)
    if method.uses_llm:  # tokens of every exchange as recorded: the same whether a reply came from the cache or not
        usage = [json.loads(line)["usage"] for line in cassette.read_text(encoding="utf-8").splitlines()]
        summary["prompt_tokens"] = sum(u[0] for u in usage)
        summary["completion_tokens"] = sum(u[1] for u in usage)
    summary.update(method=method.name, strategy=method.strategy, instance=instance_name(args),
                   stop_reason=result.stop_reason, wall_s=round(time.monotonic() - t0, 1))
    print(f"{suite.name} {instance_name(args)} {method.name}: best {fmt(summary['best_score'])} "
          f"({summary['evaluations']} evaluations{f', {evals.reused} reused' if evals.reused else ''}, "
          f"{summary['llm_calls']} LLM calls, {summary['wall_s']} s)",
          file=sys.stderr, flush=True)
    return summary


def summarize(steps: list[Step], final: dict[str, Any], usage: dict[str, float], columns: list[str],
              admissible: Callable[[dict[str, float]], bool] | None = None, extended: bool = False,
              chosen: str | None = None) -> dict:
    """One run's row: the best candidate and its metrics, what was spent, how repeats went, and the curves; with
    `admissible`, also the best score among the candidates that meet it (None: none did); `extended` adds the GA
    suites' figures (`ga_figures`). `chosen`: the run's result when its strategy selected it (the first step with
    that value), else the best by rank."""
    best = max((s for s in steps if s.evaluated), key=Step.rank)
    best = next((s for s in steps if s.evaluated and s.value == chosen), best)
    calls = evals = 0
    curve_calls, curve_evals, best_so_far, last = [], [], -math.inf, None
    curve_wall, curve_goals, leader = [], [], None  # best so far against the run's seconds; its goals met
    for s in steps:
        calls += int(s.usage.get("llm_calls", 0) + s.usage.get("cache_hits", 0))
        if s.evaluated:
            evals += 1
            if math.isfinite(s.evaluation.score):
                best_so_far = max(best_so_far, s.evaluation.score)
            if leader is None or s.rank() > leader.rank():
                leader = s
            last = s
        point = None if not math.isfinite(best_so_far) else round(best_so_far, 6)
        curve_calls.append([calls, point])
        curve_evals.append([evals, point])
        curve_wall.append([s.elapsed_s, point])
        curve_goals.append([evals, None if leader is None else leader.evaluation.metrics.get("goals_passed")])
    valid = [s for s in steps if s.evaluated and s.evaluation.valid]
    evaluated = [s for s in steps if s.evaluated]
    # what the method proposed after the start: new candidates, and replies that gave no usable value
    proposals = [s for s in steps[1:] if s.evaluated or s.status is StepStatus.FAILED]
    valid_proposals = [s for s in proposals if s.evaluated and s.evaluation.valid]
    start = steps[0].evaluation.score
    row = {
        "start_score": round(start, 6) if math.isfinite(start) else None,
        "best_score": round(best.evaluation.score, 6) if math.isfinite(best.evaluation.score) else None,
        "best_passed": best.evaluation.passed, "best_step": best.id,
        "last_score": None if last is None or not math.isfinite(last.evaluation.score)
        else round(last.evaluation.score, 6),
        "metrics": {c: best.evaluation.metrics.get(c) for c in columns},
        "final": {k: v for k, v in final.items() if isinstance(v, (int, float, str, bool)) or v is None},
        "evaluations": len(evaluated), "validity": round(len(valid) / len(evaluated), 3) if evaluated else None,
        "proposals": len(proposals), "valid_proposals": len(valid_proposals),
        "llm_calls": int(usage.get("llm_calls", 0) + usage.get("cache_hits", 0)),
        "prompt_tokens": int(usage.get("prompt_tokens", 0)), "completion_tokens": int(usage.get("completion_tokens", 0)),
        "steps": len(steps) - 1,
        "repeat_steps": sum(1 for s in steps if s.status in (StepStatus.UNCHANGED, StepStatus.DUPLICATE)),
        "re_asked": sum(1 for s in steps if "re-asked" in s.problem),
        "unusable": sum(1 for s in steps if s.status is StepStatus.FAILED),
        "top10_auc": top_k_auc([s.evaluation.score for s in evaluated], 10),
        "curve_llm_calls": curve_calls, "curve_evaluations": curve_evals, "curve_wall_s": curve_wall,
        "curve_goals": curve_goals,
    }
    if admissible is not None:
        scores = [s.evaluation.score for s in valid if math.isfinite(s.evaluation.score) and admissible(s.evaluation.metrics)]
        row["best_admissible_score"] = round(max(scores), 6) if scores else None
    if extended:
        row.update(ga_figures(steps))
    return row


SCREENED = "screened out before docking"  # how the LLM-guided GA's problem text names a child it did not dock
DRAWN = "starting population"  # what the GA's feedback says of a molecule drawn (ZINC, lead mutants), not made


def ga_figures(steps: list[Step]) -> dict[str, Any]:
    """What the GA suites add: novelty (the share of the top-10 molecules a search operator made, rather than the
    start or a molecule drawn for the first population), what became of the steps that called the LLM (docked,
    screened out before docking, unusable: the last two replaced by graph children)."""
    evaluated = [s for s in steps if s.evaluated and math.isfinite(s.evaluation.score)]
    top = sorted(evaluated, key=lambda s: -s.evaluation.score)[:10]
    made = [s for s in top if s.parent is not None and DRAWN not in s.feedback]
    asked = [s for s in steps[1:] if s.usage.get("llm_calls", 0) + s.usage.get("cache_hits", 0) > 0]
    screened = sum(1 for s in asked if s.problem.startswith(SCREENED))
    docked = sum(1 for s in asked if s.evaluated)
    return {"novelty": round(len(made) / len(top), 3) if top else None,
            "llm_children": {"docked": docked, "screened": screened, "unusable": len(asked) - docked - screened}}


def selection_row(selection: dict[str, Any], steps: list[Step], final: dict[str, Any], finalize,
                  instance: Any) -> dict[str, Any]:
    """The selection's choice against the first program that passed the visible tests, with both hidden pass rates
    (the first pass's verdict is run, or replayed, only when the selection chose another program)."""
    first, chosen = selection.get("first_pass_step"), selection.get("chosen_step")
    hidden = final.get("hidden_pass_rate")
    first_hidden = hidden if first == chosen else finalize(steps[first].value, instance).get("hidden_pass_rate")
    return {"first_pass_step": first, "chosen_step": chosen, "votes": selection.get("votes"),
            "inputs": selection.get("inputs"), "passing_programs": selection.get("passing_programs"),
            "first_pass_hidden_pass_rate": first_hidden, "chosen_hidden_pass_rate": hidden}


def selection_table(runs: list[dict]) -> str:
    """Per run of a selecting method: the first visible pass, the chosen program, and their hidden pass rates."""
    head = ["instance", "method", "first pass", "chosen", "votes", "inputs", "hidden: first pass", "hidden: chosen"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in runs:
        c = r["selection"]
        lines.append("| " + " | ".join([r["instance"], r["method"], f"#{c['first_pass_step']}", f"#{c['chosen_step']}",
                                        fmt("/".join(map(str, c["votes"] or [])) or None), fmt(c["inputs"]),
                                        fmt(c["first_pass_hidden_pass_rate"]), fmt(c["chosen_hidden_pass_rate"])])
                     + " |")
    return "\n".join(lines)


def top_k_auc(scores: list[float], k: int) -> float | None:
    """PMO's top-k AUC: the mean of the top-k average (invalid ones counted as absent) after each evaluation."""
    finite, curve = [], []
    for score in scores:
        if math.isfinite(score):
            finite.append(score)
        top = sorted(finite, reverse=True)[:k]
        if top:
            curve.append(sum(top) / len(top))
    return round(sum(curve) / len(curve), 4) if curve else None


# -- reporting -------------------------------------------------------------------------------------------------


def fmt(x: Any) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:.3g}" if abs(x) < 1000 else f"{x:.0f}"
    return str(x)


def ga_table(suite: Suite, rows: list[dict]) -> str:
    """The GA suites' per-instance table: PMO's top-10 AUC first, the best beside the admissible best, novelty,
    and what became of the LLM's children (docked / screened out before docking / unusable)."""
    rule = suite.admissible.name if suite.admissible else "admissible"
    head = ["method", "top-10 AUC", "best score", f"best {rule} score", *suite.columns, "validity", "novelty",
            "evals", "LLM calls", "LLM children docked / screened / unusable", "wall s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        children = r.get("llm_children") or {}
        cells = [r["method"], fmt(r["top10_auc"]), fmt(r["best_score"]), fmt(r.get("best_admissible_score")),
                 *(fmt(r["metrics"].get(c)) for c in suite.columns), fmt(r["validity"]), fmt(r.get("novelty")),
                 fmt(r["evaluations"]), fmt(r["llm_calls"]),
                 " / ".join(fmt(children.get(k)) for k in ("docked", "screened", "unusable")) if r["llm_calls"]
                 else "–", fmt(r.get("wall_s"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ga_overview(suite: Suite, runs: list[dict]) -> str:
    """Top-10 AUC / best / admissible best of every method (rows) on every instance (columns); the best AUC of each
    column in bold."""
    instances = list(dict.fromkeys(r["instance"] for r in runs))
    methods = list(dict.fromkeys(r["method"] for r in runs))
    by = {(r["instance"], r["method"]): r for r in runs}
    head = ["method", *instances]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    top = {i: max((by[i, m]["top10_auc"] for m in methods if (i, m) in by and by[i, m]["top10_auc"] is not None),
                  default=None) for i in instances}
    for m in methods:
        cells = [m]
        for i in instances:
            r = by.get((i, m))
            if r is None:
                cells.append("–")
                continue
            cell = f"{fmt(r['top10_auc'])} / {fmt(r['best_score'])} / {fmt(r.get('best_admissible_score'))}"
            cells.append(f"**{cell}**" if r["top10_auc"] is not None and r["top10_auc"] == top[i] else cell)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table(suite: Suite, rows: list[dict]) -> str:
    extra = ["hidden_pass_rate"] if suite.domain == "code" else []
    rule = [f"best {suite.admissible.name} score"] if suite.admissible else []
    head = (["method", "best score", *rule, "passed", *suite.columns, *extra, "last score", "evals",
             "valid proposals", "LLM calls", "prompt tok", "repeat steps", "re-asked", "unusable", "top-10 AUC"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["method"], fmt(r["best_score"]), *(fmt(r.get("best_admissible_score")) for _ in rule),
                 fmt(r["best_passed"]), *(fmt(r["metrics"].get(c))
                 for c in suite.columns), *(fmt(r["final"].get(c)) for c in extra), fmt(r["last_score"]),
                 fmt(r["evaluations"]), f"{r['valid_proposals']}/{r['proposals']}", fmt(r["llm_calls"]), fmt(r["prompt_tokens"]), fmt(r["repeat_steps"]),
                 fmt(r["re_asked"]), fmt(r["unusable"]), fmt(r["top10_auc"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def overview(suite: Suite, runs: list[dict]) -> str:
    """Best score of every method (rows) on every instance (columns), the start's score first; the best of each
    column in bold; for code, the hidden-test pass rate after a slash and the problems solved (every hidden test);
    with an admissibility rule, the best score among the candidates that meet it after a slash."""
    instances = list(dict.fromkeys(r["instance"] for r in runs))
    methods = list(dict.fromkeys(r["method"] for r in runs))
    by = {(r["instance"], r["method"]): r for r in runs}
    code = suite.domain == "code"
    head = ["method", *instances, *(["solved (hidden)"] if code else [])]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    start = {i: next((r["start_score"] for r in runs if r["instance"] == i and r.get("start_score") is not None),
                     None) for i in instances}
    lines.append("| (start) | " + " | ".join(fmt(start[i]) for i in instances) + (" | |" if code else " |"))
    top = {i: max((by[i, m]["best_score"] for m in methods if (i, m) in by and by[i, m]["best_score"] is not None),
                  default=None) for i in instances}
    for m in methods:
        cells, solved, ran = [m], 0, 0
        for i in instances:
            r = by.get((i, m))
            if r is None:
                cells.append("–")
                continue
            cell = fmt(r["best_score"])
            if code:
                hidden = r["final"].get("hidden_pass_rate")
                cell += f" / {fmt(hidden)}"
                ran += 1
                solved += int(hidden == 1)
            elif suite.admissible:
                cell += f" / {fmt(r.get('best_admissible_score'))}"
            cells.append(f"**{cell}**" if r["best_score"] is not None and r["best_score"] == top[i] else cell)
        if code:
            cells.append(f"{solved}/{ran}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(suite: Suite, runs: list[dict], header: dict[str, Any]) -> str:
    if suite.extended:
        return ga_markdown(suite, runs, header)
    out = [f"# Quality: {suite.name}", "",
           f"Budget per run: {suite.llm_calls} LLM calls and {suite.evaluations} evaluations (the start included); "
           f"seed {header['seed']}; engine: {header['engine']}.", "",
           "Best score per method and instance (higher is better; bold: the best of the column"
           + ("; after the slash: the best program's hidden-test pass rate" if suite.domain == "code" else "")
           + (f"; after the slash: the best score among candidates that meet {suite.admissible.name}, "
              f"{suite.admissible.description}" if suite.admissible else "")
           + "):", "", overview(suite, runs), ""]
    selecting = [r for r in runs if r.get("selection")]
    if selecting:
        out += ["Selection by agreement against the first program that passed the visible tests (votes: programs "
                "per output group on the generated inputs, largest first):", "", selection_table(selecting), ""]
    for name in dict.fromkeys(r["instance"] for r in runs):
        out += [f"## {name}", "", table(suite, [r for r in runs if r["instance"] == name]), ""]
    return "\n".join(out)


def ga_markdown(suite: Suite, runs: list[dict], header: dict[str, Any]) -> str:
    rule = suite.admissible
    out = [f"# Quality: {suite.name}", "",
           f"Budget per run: {suite.evaluations} dockings (the start included) and at most {suite.llm_calls} LLM "
           f"calls; seed {header['seed']}; engine: {header['engine']}.", "",
           "Top-10 AUC (PMO: the mean, over the dockings, of the mean of the 10 best scores so far) / best score / "
           + (f"best score among molecules that meet {rule.name} ({rule.description})" if rule else "best score")
           + " per method and instance (higher is better; bold: the best AUC of the column):", "",
           ga_overview(suite, runs), ""]
    for name in dict.fromkeys(r["instance"] for r in runs):
        out += [f"## {name}", "", ga_table(suite, [r for r in runs if r["instance"] == name]), ""]
    return "\n".join(out)


def plot(suite: Suite, runs: list[dict], out: Path, seed: int) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    styles = _method_styles(suite)
    curves = ("curve_llm_calls", "curve_evaluations", *(("curve_wall_s",) if suite.extended else ()))
    for name in dict.fromkeys(r["instance"] for r in runs):
        fig, axes = plt.subplots(1, len(curves), figsize=(6 * len(curves), 3.8))
        for r in (r for r in runs if r["instance"] == name):
            for ax, key in zip(axes, curves, strict=True):
                pts = [(x, y) for x, y in r[key] if y is not None]
                if pts:
                    ax.step([p[0] for p in pts], [p[1] for p in pts], where="post", label=r["method"], marker=".",
                            **styles.get(r["method"], {}))
        axes[0].set_xlabel("LLM calls")
        axes[1].set_xlabel("evaluations")
        if suite.extended:
            axes[2].set_xlabel("wall seconds")
        for ax in axes:
            ax.set_ylabel("best score so far")
            ax.grid(alpha=0.3)
        axes[-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))  # outside: 13 lines
        fig.suptitle(f"{suite.name} {name}: best so far, equal budgets, seed {seed}")
        fig.tight_layout()
        path = out / f"{suite.name}_{name}{seed_suffix(seed, '_')}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(str(path))
    return paths


def _method_styles(suite: Suite) -> dict[str, dict[str, Any]]:
    """One look per method, the same in every plot: tab20's dark colours for the first ten LLM methods, its light
    ones dashed after them (the default cycle repeats after ten), the LLM-free baselines black and dotted."""
    import matplotlib

    colors = matplotlib.colormaps["tab20"].colors
    styles = {m.name: {"color": colors[(2 * i) % 20 + (i // 10) % 2], "linestyle": "-" if i < 10 else "--"}
              for i, m in enumerate(suite.llm_runs)}
    styles.update({m.name: {"color": "black", "linestyle": ":"} for m in suite.baselines})
    return styles


# -- main ------------------------------------------------------------------------------------------------------


def engine_factory(opts: argparse.Namespace):
    """A function cassette path -> the engine of one run: replaying it, or recording the shared engine to it."""
    from tgdomains.engines import RecordingEngine, ReplayEngine

    if opts.replay:
        return lambda cassette: ReplayEngine(cassette), "replay of the committed cassettes"
    from tgdomains.cli import build_engine

    base, reason = build_engine(argparse.Namespace(
        replay=None, record=None, engine=opts.engine, model=opts.model, base_url=opts.base_url,
        model_path=opts.model_path, price=[], cache_path=None, no_cache=opts.no_cache))

    # A new machine has an empty reply cache: the committed cassettes fill it first, so a re-recording after a
    # change asks the model only what changed (requests recorded under other engine settings never match).
    from tgdomains.engines.cache import CachedEngine
    if isinstance(base, CachedEngine) and base.enabled:
        added = sum(base.import_cassette(c) for c in sorted((HERE / "cassettes").rglob("*.jsonl"))
                    if not c.name.endswith(".evals.jsonl"))
        if added:
            print(f"reply cache: {added} replies imported from the committed cassettes", flush=True)

    def recording(cassette: Path):
        cassette.parent.mkdir(parents=True, exist_ok=True)
        cassette.write_text("")  # a fresh recording: a replay must see exactly this run's exchanges
        return RecordingEngine(base, cassette)
    return recording, getattr(base, "describe", lambda: base.model)()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--domain", required=True, choices=[*SUITES, "all"])
    p.add_argument("--instances", help="comma-separated instance names to run (default: all of the suite)")
    p.add_argument("--methods", help="comma-separated method names to run (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--replay", action="store_true", help="offline, from the committed cassettes")
    p.add_argument("--reevaluate", action="store_true", help="with --replay: run the real evaluators again")
    p.add_argument("--fresh-evaluations", action="store_true",
                   help="recording: run the evaluator on every value, even one a committed run already evaluated")
    p.add_argument("--engine", choices=["openai", "local"])
    p.add_argument("--model")
    p.add_argument("--base-url")
    p.add_argument("--model-path")
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("--work", default="/tmp/tgdomains-quality", help="where the run directories go")
    p.add_argument("--out", default=str(HERE), help="where results and plots go")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--paired", metavar="METHOD",
                   help="write paired_SUITE.md: METHOD against graph-ga seed by seed, from the results of every "
                        "recorded seed (no run)")
    opts = p.parse_args(argv)
    if opts.paired:
        for name in (SUITES if opts.domain == "all" else [opts.domain]):
            text = paired(SUITES[name], Path(opts.out), opts.paired)
            (Path(opts.out) / f"paired_{name}.md").write_text(text)
            print(text)
        return 0
    factory, engine_line = engine_factory(opts)
    work = Path(opts.work) / datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in (SUITES if opts.domain == "all" else [opts.domain]):
        suite = SUITES[name]
        wanted = set(opts.instances.split(",")) if opts.instances else None
        methods = [m for m in suite.methods if m.domain in (None, suite.domain)]
        if opts.methods:  # in the order given (a long recording runs what matters most first)
            by_name = {m.name: m for m in methods}
            methods = [by_name[n] for n in opts.methods.split(",") if n in by_name]
        results_name = results_stem(name, opts.seed)
        results_path = out / f"{results_name}.json"
        previous = json.loads(results_path.read_text()) if results_path.exists() else {}
        committed = HERE / f"{results_name}.json"
        # a replay describes the recording it replays: engine, seed and date come from the committed results
        header = json.loads(committed.read_text()).get("header") if opts.replay and committed.exists() else None
        header = header or {"engine": engine_line, "seed": opts.seed,
                            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
        runs = {(r["instance"], r["method"]): r for r in previous.get("runs", [])}
        recorded_wall = {(r["instance"], r["method"]): (r.get("wall_s"), r.get("curve_wall_s")) for r in
                         (json.loads(committed.read_text()).get("runs", []) if committed.exists() else [])}
        for args in suite.instances:
            if wanted and instance_name(args) not in wanted:
                continue
            for method in methods:
                recorded = cassette_dir(suite, args) / f"{method.name}{seed_suffix(opts.seed)}.evals.jsonl"
                if opts.replay and not recorded.exists():
                    continue  # never recorded (a declared subset): nothing to replay
                key = (instance_name(args), method.name)
                runs[key] = run_one(suite, args, method, factory, opts, work)
                wall_s, curve_wall = recorded_wall.get(key, (None, None))
                if opts.replay and wall_s is not None:
                    runs[key]["wall_s"] = wall_s  # the recording's time, not the replay's
                if opts.replay and curve_wall is not None:
                    runs[key]["curve_wall_s"] = curve_wall
                ordered = sorted(runs.values(), key=lambda r: (_order(suite, r["instance"]), _rank(suite, r)))
                if not opts.replay:  # results after every run: a long recording killed midway keeps what it did
                    results_path.write_text(json.dumps({"header": header, "runs": ordered}, indent=1) + "\n")
        ordered = sorted(runs.values(), key=lambda r: (_order(suite, r["instance"]), _rank(suite, r)))
        results_path.write_text(json.dumps({"header": header, "runs": ordered}, indent=1) + "\n")
        (out / f"{results_name}.md").write_text(markdown(suite, ordered, header))
        if suite.plots:
            plot(suite, ordered, out, opts.seed)
        print((out / f"{results_name}.md").read_text())
    return 0


def paired(suite: Suite, out: Path, method: str, baseline: str = "graph-ga") -> str:
    """`method` against `baseline` seed by seed on every instance, from the results files of every recorded seed:
    top-10 AUC and admissible best side by side, and the tally of paired wins on AUC (what decides the default)."""
    lines = [f"# {suite.name}: {method} against {baseline}, seed by seed", "",
             "| instance | seed | top-10 AUC | best | best admissible |", "|---|---|---|---|---|"]
    wins = losses = ties = 0
    aucs: dict[str, list[float]] = {method: [], baseline: []}
    for path in sorted(out.glob(f"results_{suite.name}*.json")):
        name, seed = parse_results_stem(path.stem)
        if name != suite.name:
            continue
        by = {(r["instance"], r["method"]): r for r in json.loads(path.read_text())["runs"]}
        for instance in dict.fromkeys(i for i, _ in by):
            a, b = by.get((instance, method)), by.get((instance, baseline))
            if a is None or b is None or a["top10_auc"] is None or b["top10_auc"] is None:
                continue
            aucs[method].append(a["top10_auc"])
            aucs[baseline].append(b["top10_auc"])
            wins, losses, ties = (wins + (a["top10_auc"] > b["top10_auc"]), losses + (a["top10_auc"] < b["top10_auc"]),
                                  ties + (a["top10_auc"] == b["top10_auc"]))
            lines.append(f"| {instance} | {seed} | {fmt(a['top10_auc'])} vs {fmt(b['top10_auc'])} | "
                         f"{fmt(a['best_score'])} vs {fmt(b['best_score'])} | "
                         f"{fmt(a.get('best_admissible_score'))} vs {fmt(b.get('best_admissible_score'))} |")
    means = {m: round(sum(v) / len(v), 4) if v else None for m, v in aucs.items()}
    lines += ["", f"Paired runs: {method} better {wins}, worse {losses}, the same {ties}; mean top-10 AUC "
                  f"{fmt(means[method])} against {fmt(means[baseline])}."]
    return "\n".join(lines) + "\n"


def _order(suite: Suite, instance: str) -> int:
    names = [instance_name(a) for a in suite.instances]
    return names.index(instance) if instance in names else len(names)


def _rank(suite: Suite, run: dict) -> int:
    names = [m.name for m in suite.methods]
    return names.index(run["method"]) if run["method"] in names else len(names)


if __name__ == "__main__":
    raise SystemExit(main())
