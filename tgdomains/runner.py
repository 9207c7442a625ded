"""Optimize one instance: evaluate -> loss -> backward -> step -> parse -> evaluate, with a run directory.

The loop keeps the best candidate (passed first, then score), stops when the evaluation says `passed` or a budget
is spent, and records every evaluated candidate in steps.jsonl so that `resume=True` continues a killed run from its
last complete step.
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tgdomains import __version__, prompts
from tgdomains.domain import Domain, ParseError
from tgdomains.engines.base import Engine
from tgdomains.engines.budget import BudgetExceeded, RunEngine
from tgdomains.evaluation import Evaluation
from tgdomains.grammar import reply_format_for
from tgdomains.loss import evaluation_loss
from tgdomains.optimizer import TGD, Attempt
from tgdomains.records import RunRecord
from tgdomains.variable import Variable


@dataclass
class RunConfig:
    iterations: int = 10
    momentum: int = 3
    one_call: bool = False
    accept_only_improvements: bool = False
    seed: int = 0
    temperature: float = 0.0
    max_tokens: int | None = None
    token_budget: int | None = None
    cost_budget: float | None = None
    time_budget_s: float | None = None
    evaluation_budget: int | None = None  # distinct candidates evaluated, the initial one included
    llm_call_budget: int | None = None  # every request counts: feedback, steps, repairs (cache hits too)


@dataclass
class RunResult:
    best_value: str
    best_evaluation: Evaluation
    steps: list[dict[str, Any]]
    run_dir: Path
    final: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, float] = field(default_factory=dict)
    stop_reason: str = ""

    @property
    def passed(self) -> bool:
        return self.best_evaluation.passed


def optimizer_for(run_kwargs: dict[str, Any]) -> Callable[..., RunResult]:
    """The loop a run's settings ask for: population search when they name a population, else the chain."""
    if "population" in run_kwargs:
        from tgdomains.population import optimize_population  # imported here: population imports this module

        return optimize_population
    return optimize


def open_record(run_dir: str | Path, resume: bool) -> tuple[RunRecord, list[dict[str, Any]]]:
    """The run directory and its complete steps; refuses to append to an existing run unless resuming."""
    record = RunRecord(run_dir)
    steps = record.read_steps() if record.exists() else []
    if steps and not resume:
        raise FileExistsError(f"{record.dir} already holds a run; pass resume=True (--resume) to continue it, "
                              "or choose another run directory")
    return record, steps


def default_run_dir(domain_name: str, instance_id: str) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(instance_id))[:60]
    return Path("runs") / f"{domain_name}-{safe}-{stamp}"


def optimize(domain: Domain, instance: Any, *, engine: Engine, run_dir: str | Path | None = None,
             resume: bool = False, initial_value: str | None = None, constraints: list[str] | None = None,
             examples: list[str] | None = None, progress: bool | Callable[[str], None] = True,
             evaluate: Callable[[str], Evaluation] | None = None, meta: dict[str, Any] | None = None,
             **config: Any) -> RunResult:
    """Optimize `instance` of `domain` with `engine`. `config` takes RunConfig's fields (iterations, momentum,
    one_call, accept_only_improvements, seed, token_budget, cost_budget, time_budget_s ...).

    `evaluate` replaces `domain.evaluate(value, instance)` (a batch passes a worker-process pool this way).
    `meta` is stored in run.json as is (the CLI keeps the instance's arguments there, so `--resume` needs only
    the run directory).
    """
    cfg = RunConfig(**config)
    say = printer(progress)
    instance_id = str(getattr(instance, "id", "instance"))
    record, steps = open_record(run_dir or default_run_dir(domain.name, instance_id), resume)
    run_engine = RunEngine(engine, cfg.token_budget, cfg.cost_budget, cfg.llm_call_budget)
    score_candidate = evaluate or (lambda value: domain.evaluate(value, instance))
    context = domain.context(instance)
    started = time.monotonic()

    if steps:  # a resumed run has already spent part of its budget
        run_engine.restore(total_usage(steps))
        run_json = record.read_config()
        start_role = run_json["role_description"]
        all_constraints = run_json["constraints"]
        all_examples = run_json["examples"]
        say(f"resuming {record.dir}: {len(steps)} complete steps")
    else:
        start = domain.initial(instance, run_engine)
        value = start.value if initial_value is None else canonical_or_raw(domain, initial_value, instance)
        start_role = start.role_description
        all_constraints = start.constraints + list(constraints or [])
        all_examples = start.examples + list(examples or [])
        record.write_config({
            "domain": domain.name, "instance": instance_id, "config": asdict(cfg),
            "engine": getattr(engine, "describe", lambda: repr(engine))(), "model": engine.model,
            "role_description": start_role, "constraints": all_constraints, "examples": all_examples,
            "versions": {"tgdomains": __version__, "python": platform.python_version(), "prompts": prompts.VERSIONS},
            "started": datetime.now(timezone.utc).isoformat(), "meta": meta or {},
        })
        steps.append(evaluate_step(0, value, None, "", "initial", "", score_candidate, run_engine, {}))
        record.append_step(steps[0])
        say(_line(steps[0], cfg.iterations))

    x = Variable(steps[-1]["value"], start_role, requires_grad=True)
    opt = TGD([x], run_engine, constraints=all_constraints, examples=all_examples, momentum=cfg.momentum,
              context=context, validate=lambda raw: domain.parse(raw, instance), one_call=cfg.one_call,
              temperature=cfg.temperature, max_tokens=cfg.max_tokens, reply_format=reply_format_for(domain, instance))
    for step in steps[1:]:  # momentum as it was before the kill
        parent = steps[step["parent"]]
        opt.remember(x, Attempt(parent["value"], parent["evaluation"]["score"], step["feedback"]))
    seen: dict[str, dict] = {}
    for s in steps:  # the first step with a value is the one later duplicates point to, resumed or not
        seen.setdefault(s["value"], s)
    current = _current(steps, cfg)
    stop_reason = ""
    unrecorded: dict[str, float] = {}  # calls of an iteration that a spent budget cut short (no step holds them)

    while True:
        best = max(steps, key=rank_key)
        if evaluation_of(best).passed:
            stop_reason = "passed"
            break
        iteration = steps[-1]["iteration"] + 1
        if iteration > cfg.iterations:
            stop_reason = f"iteration budget ({cfg.iterations}) reached"
            break
        if cfg.time_budget_s is not None and time.monotonic() - started >= cfg.time_budget_s:
            stop_reason = f"time budget ({cfg.time_budget_s} s) reached"
            break
        if run_engine.exhausted():
            stop_reason = run_engine.exhausted() or ""
            break
        if cfg.evaluation_budget is not None and total_usage(steps)["evaluations"] >= cfg.evaluation_budget:
            stop_reason = f"evaluation budget ({cfg.evaluation_budget}) reached"
            break
        before = run_engine.usage.snapshot()
        t0 = time.monotonic()
        x.value = current["value"]
        opt.zero_grad()
        opt.seed = cfg.seed * 100_003 + iteration  # every iteration its own seed: replays and caches stay exact
        ev = evaluation_of(current)
        try:
            if not cfg.one_call:
                evaluation_loss(x, ev, context).backward(run_engine, seed=opt.seed)
        except BudgetExceeded as exc:
            stop_reason = str(exc)
            unrecorded = _delta(run_engine.usage.snapshot(), before)
            break
        except Exception as exc:  # the endpoint died during backward: step with no feedback rather than crash
            x.gradients = [f"(no feedback: {type(exc).__name__}: {exc}) Evaluation:\n{ev.text}"]
        opt.step(score=finite_or_none(ev.score), evaluation_text=ev.text)
        report = opt.report(x)
        if report.status == "failed" and run_engine.exhausted():
            stop_reason = run_engine.exhausted() or ""
            unrecorded = _delta(run_engine.usage.snapshot(), before)
            break
        value = x.value
        status = report.status if report.status != "updated" or value != current["value"] else "unchanged"
        step = evaluate_step(iteration, value, current["iteration"], report.feedback, status, report.problem,
                              score_candidate, run_engine, before, seen.get(value), t0)
        if cfg.accept_only_improvements and not evaluation_of(step).better_than(ev) and step["status"] != "initial":
            step["rejected"] = True
        steps.append(step)
        seen.setdefault(value, step)
        record.append_step(step)
        say(_line(step, cfg.iterations))
        current = _current(steps, cfg)

    best = max(steps, key=rank_key)
    final = finalize_safely(domain, best["value"], instance)
    usage = total_usage(steps)
    for k, v in unrecorded.items():
        usage[k] = round(usage[k] + v, 6) if k == "cost_usd" else usage[k] + v
    record.write_best({"iteration": best["iteration"], "value": best["value"], "evaluation": best["evaluation"],
                       "final": final, "stop_reason": stop_reason, "usage": usage,
                       "wall_s": round(time.monotonic() - started, 3)})
    say(f"stopped: {stop_reason}; best at iteration {best['iteration']} score={format_score(best['evaluation']['score'])} "
        f"passed={best['evaluation']['passed']}; {usage['llm_calls']} LLM calls, {usage['cache_hits']} cache hits, "
        f"{usage['prompt_tokens'] + usage['completion_tokens']} tokens, ${usage['cost_usd']:.4f}, "
        f"evaluator {usage['eval_s']:.1f} s; unusable replies {usage['unusable_replies']}; run dir {record.dir}")
    return RunResult(best["value"], evaluation_of(best), steps, record.dir, final, usage, stop_reason)


# -- helpers --------------------------------------------------------------------------------------------------


def finalize_safely(domain: Domain, value: str, instance: Any) -> dict[str, Any]:
    """The domain's extra verdicts on the best value; a failing verdict is recorded, never loses the run."""
    try:
        return domain.finalize(value, instance) or {}
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def canonical_or_raw(domain: Domain, value: str, instance: Any) -> str:
    """A user's starting value, canonicalised when the domain can; kept raw (and scored invalid) when not."""
    try:
        return domain.parse(value, instance)
    except ParseError:
        return value


def evaluate_step(iteration: int, value: str, parent: int | None, feedback: str, status: str, problem: str,
                   score_candidate: Callable[[str], Evaluation], engine: RunEngine, usage_before: dict,
                   duplicate_of: dict | None = None, t0: float | None = None) -> dict[str, Any]:
    eval_t0 = time.monotonic()
    duplicate_id = None
    if duplicate_of is not None:  # the same candidate is never scored twice
        evaluation = duplicate_of["evaluation"]
        duplicate_id = duplicate_of.get("id", duplicate_of["iteration"])
        status = "duplicate" if status == "updated" else status
    else:
        try:
            evaluation = score_candidate(value).to_dict()
        except Exception as exc:  # a domain evaluator must not raise, but if it does the run goes on
            evaluation = Evaluation.invalid(f"the evaluator failed: {type(exc).__name__}: {exc}").to_dict()
    eval_s = time.monotonic() - eval_t0
    after = engine.usage.snapshot()
    return {
        "id": iteration, "iteration": iteration, "parent": parent, "duplicate_of": duplicate_id, "value": value,
        "evaluation": evaluation, "feedback": feedback, "status": status, "problem": problem,
        "usage": {k: after[k] - usage_before.get(k, 0) for k in after},
        "eval_s": round(eval_s, 4), "step_s": round(time.monotonic() - (t0 or eval_t0), 4),
    }


def _delta(after: dict, before: dict) -> dict:
    return {k: after[k] - before.get(k, 0) for k in after}


def evaluation_of(step: dict) -> Evaluation:
    return Evaluation.from_dict(step["evaluation"])


def rank_key(step: dict) -> tuple:
    ev = step["evaluation"]
    score = ev["score"] if ev["score"] is not None else -math.inf
    return (bool(ev["passed"]), score, -step["iteration"])  # ties: the earliest


def _current(steps: list[dict], cfg: RunConfig) -> dict:
    """The candidate the next iteration improves: the last one, or the best when the gate rejects worse ones."""
    if cfg.accept_only_improvements:
        return max(steps, key=rank_key)
    return steps[-1]


def finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def total_usage(steps: list[dict]) -> dict[str, float]:
    keys = ["llm_calls", "cache_hits", "prompt_tokens", "completion_tokens", "cost_usd", "llm_failures"]
    total = {k: sum(s.get("usage", {}).get(k, 0) for s in steps) for k in keys}
    total["cost_usd"] = round(total["cost_usd"], 6)
    total["eval_s"] = round(sum(s.get("eval_s", 0.0) for s in steps), 3)
    # A step that reuses an earlier candidate's evaluation (duplicate, unchanged, failed) is no evaluation.
    total["evaluations"] = sum(1 for s in steps if s.get("duplicate_of") is None and s["status"] != "duplicate")
    total["unusable_replies"] = sum(1 for s in steps if s["status"] in ("failed", "repaired"))
    total["iterations"] = max(s["iteration"] for s in steps)
    return total


def format_score(x: float | None) -> str:
    return "invalid" if x is None else f"{x:.4g}"


def _line(step: dict, iterations: int) -> str:
    ev = step["evaluation"]
    first = ev["text"].strip().splitlines()[0][:90] if ev["text"].strip() else ""
    extra = f" [{step['status']}{': ' + step['problem'][:80] if step['problem'] else ''}]" \
        if step["status"] not in ("updated", "initial") else ""
    return (f"iter {step['iteration']}/{iterations} score={format_score(ev['score'])} passed={ev['passed']}"
            f"{extra} | {first}")


def printer(progress: bool | Callable[[str], None]) -> Callable[[str], None]:
    if callable(progress):
        return progress
    if not progress:
        return lambda line: None
    import sys

    return lambda line: print(line, file=sys.stderr, flush=True)
