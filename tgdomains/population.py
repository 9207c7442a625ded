"""Population search: several candidates per iteration, evaluated concurrently, parents drawn from a Pareto front.

A single TextGrad chain has to talk its way back from a bad edit. Here every iteration

1. takes the Pareto front of every distinct candidate evaluated so far (the domain's objectives plus the score, see
   `tgdomains.pareto`) and samples up to `population` parents from it (the best one always among them);
2. asks, for each parent, for feedback on its own evaluation (one backward call; none in one-call mode) and for
   `proposals` children (TGD steps with distinct seeds, run concurrently), plus with `merge=True` one child that
   combines the first parent with another parent shown as an example;
3. evaluates the new distinct children concurrently (a value seen before is recorded as a duplicate, never
   evaluated again) and appends every child to steps.jsonl in a fixed order, with its ``id`` (its line index),
   ``parent`` (a parent's ``id``), the ``feedback`` that produced it and its own LLM usage.

So steps.jsonl is the whole family tree, every LLM call and evaluation is counted in exactly one step, and a run
killed at any point resumes (``resume=True``) from its complete lines with the tree intact: a child only refers to
ids written before it.
"""

from __future__ import annotations

import os
import platform
import random
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tgdomains import __version__, pareto, prompts
from tgdomains.domain import Domain
from tgdomains.engines.base import Engine
from tgdomains.engines.budget import BudgetExceeded, RunEngine
from tgdomains.evaluation import Evaluation
from tgdomains.grammar import reply_format_for
from tgdomains.loss import evaluation_loss
from tgdomains.optimizer import TGD, Attempt
from tgdomains.records import RunRecord
from tgdomains.runner import (
    RunConfig,
    RunResult,
    canonical_or_raw,
    default_run_dir,
    evaluate_step,
    evaluation_of,
    finalize_safely,
    finite_or_none,
    format_score,
    open_record,
    printer,
    rank_key,
    total_usage,
)
from tgdomains.variable import Variable

_EVAL_LINE = 160  # characters of a sibling's evaluation shown in momentum: what it scored, not the whole report


@dataclass
class PopulationConfig:
    """What population search adds to RunConfig (stored beside it in run.json's config)."""

    population: int = 4  # parents per iteration, drawn from the Pareto front
    proposals: int = 2  # children per parent per iteration
    merge: bool = False  # one extra child per iteration combining two parents
    evaluation_budget: int | None = None  # distinct candidates evaluated, the initial one included

    def check(self) -> PopulationConfig:
        if self.population < 1 or self.proposals < 1:
            raise ValueError(f"population and proposals must be >= 1 (got population={self.population}, "
                             f"proposals={self.proposals})")
        if self.evaluation_budget is not None and self.evaluation_budget < 1:
            raise ValueError(f"evaluation_budget must be >= 1, got {self.evaluation_budget}")
        return self


@dataclass
class _Slot:
    """One child to propose this iteration: from which parent, with which seed, metered on its own engine."""

    index: int
    parent: dict[str, Any]
    seed: int
    meter: RunEngine
    merge_with: dict[str, Any] | None = None
    value: str = ""
    feedback: str = ""
    status: str = ""
    problem: str = ""


@dataclass
class _Setup:
    """What every proposal in a run shares (from the domain on a fresh run, from run.json on resume)."""

    role: str
    constraints: list[str]
    examples: list[str]
    context: str


def optimize_population(domain: Domain, instance: Any, *, engine: Engine, population: int = 4, proposals: int = 2,
                        merge: bool = False, evaluation_budget: int | None = None,
                        run_dir: str | Path | None = None, resume: bool = False, initial_value: str | None = None,
                        constraints: list[str] | None = None, examples: list[str] | None = None,
                        progress: bool | Callable[[str], None] = True,
                        evaluate: Callable[[str], Evaluation] | None = None, meta: dict[str, Any] | None = None,
                        workers: int | None = None, eval_workers: int | None = None,
                        **config: Any) -> RunResult:
    """Population search on `instance` of `domain` with `engine`; the same arguments and RunResult as
    `tgdomains.runner.optimize`, plus:

    population, proposals, merge: parents per iteration, children per parent, one merge child per iteration.
    evaluation_budget: stop once this many distinct candidates have been evaluated (the initial one included);
        an iteration proposes no more children than the budget has left.
    workers / eval_workers: threads for LLM calls / evaluations (default: one per child / one per CPU core).
        Evaluators that hold the GIL should come in through `evaluate` backed by worker processes, as batches do.

    `config` takes RunConfig's fields: iterations, momentum (past attempts of the parent's own line shown to the
    optimizer), one_call, seed, temperature, max_tokens, token_budget, cost_budget, time_budget_s.
    `accept_only_improvements` is accepted and ignored: the front decides which candidates live on.
    """
    cfg = RunConfig(**config)
    pop = PopulationConfig(population, proposals, merge, evaluation_budget).check()
    say = printer(progress)
    instance_id = str(getattr(instance, "id", "instance"))
    record, steps = open_record(run_dir or default_run_dir(domain.name, instance_id), resume)
    objectives = pareto.with_score(getattr(domain, "objectives", None) or {})
    run_engine = RunEngine(engine, cfg.token_budget, cfg.cost_budget, cfg.llm_call_budget)
    score_candidate = evaluate or (lambda value: domain.evaluate(value, instance))
    started = time.monotonic()

    if steps:  # a resumed run has already spent part of its budget
        run_engine.restore(total_usage(steps))
        run_json = record.read_config()
        setup = _Setup(run_json["role_description"], run_json["constraints"], run_json["examples"],
                       domain.context(instance))
        first_seen: dict[str, int] = {}
        for i, step in enumerate(steps):  # a single-chain record (no ids) continues as a population
            step.setdefault("id", i)
            step.setdefault("duplicate_of", first_seen.get(step["value"]))
            first_seen.setdefault(step["value"], step["id"])
        say(f"resuming {record.dir}: {len(steps)} complete steps, iteration {steps[-1]['iteration']}")
    else:
        start = domain.initial(instance, run_engine)
        value = start.value if initial_value is None else canonical_or_raw(domain, initial_value, instance)
        setup = _Setup(start.role_description, start.constraints + list(constraints or []),
                       start.examples + list(examples or []), domain.context(instance))
        record.write_config({
            "domain": domain.name, "instance": instance_id, "config": {**asdict(cfg), **asdict(pop)},
            "objectives": objectives, "engine": getattr(engine, "describe", lambda: repr(engine))(),
            "model": engine.model, "role_description": setup.role, "constraints": setup.constraints,
            "examples": setup.examples,
            "versions": {"tgdomains": __version__, "python": platform.python_version(), "prompts": prompts.VERSIONS},
            "started": datetime.now(timezone.utc).isoformat(), "meta": meta or {},
        })
        first = evaluate_step(0, value, None, "", "initial", "", score_candidate, run_engine, {})
        _commit(record, steps, first, None)
        say(_line(first, cfg.iterations))

    seen = {s["value"]: s for s in steps if s.get("duplicate_of") is None}
    slots_per_iteration = pop.population * pop.proposals + (1 if pop.merge and pop.population > 1 else 0)
    llm_pool = ThreadPoolExecutor(max_workers=workers or slots_per_iteration, thread_name_prefix="tg-llm")
    eval_pool = ThreadPoolExecutor(max_workers=eval_workers or min(slots_per_iteration, os.cpu_count() or 1),
                                   thread_name_prefix="tg-eval")
    stop_reason = ""
    try:
        while True:
            candidates = [s for s in steps if s.get("duplicate_of") is None]
            best = max(candidates, key=rank_key)
            iteration = steps[-1]["iteration"] + 1
            evaluations = len(candidates)
            stop_reason = _stop_reason(best, iteration, evaluations, started, cfg, pop, run_engine)
            if stop_reason:
                break
            rng = random.Random(cfg.seed * 1_000_003 + iteration)  # per iteration: a resumed run draws the same
            parents = _select_parents(candidates, best, objectives, pop.population, rng)
            slots = _plan_slots(parents, pop, cfg, iteration, run_engine, rng)
            if pop.evaluation_budget is not None:  # never ask for children the budget cannot evaluate
                slots = slots[:pop.evaluation_budget - evaluations]
            t0 = time.monotonic()
            _propose(slots, setup, steps, cfg, domain, instance, llm_pool)
            if run_engine.exhausted():  # children that never reached the LLM are not candidates
                slots = [s for s in slots if s.meter.usage.calls + s.meter.usage.cache_hits > 0]
            _evaluate_and_commit(slots, iteration, steps, seen, record, score_candidate, eval_pool, t0,
                                 lambda step: say(_line(step, cfg.iterations)))
    finally:
        llm_pool.shutdown(wait=True, cancel_futures=True)
        eval_pool.shutdown(wait=True, cancel_futures=True)

    candidates = [s for s in steps if s.get("duplicate_of") is None]
    best = max(candidates, key=rank_key)
    front = [candidates[i]["id"] for i in pareto.pareto_front([c["evaluation"] for c in candidates], objectives)]
    final = finalize_safely(domain, best["value"], instance)
    usage = total_usage(steps)
    record.write_best({"id": best["id"], "iteration": best["iteration"], "value": best["value"],
                       "evaluation": best["evaluation"], "final": final, "stop_reason": stop_reason, "usage": usage,
                       "front": front, "wall_s": round(time.monotonic() - started, 3)})
    say(f"stopped: {stop_reason}; best #{best['id']} (iteration {best['iteration']}) "
        f"score={format_score(best['evaluation']['score'])} passed={best['evaluation']['passed']}; front {front}; "
        f"{usage['evaluations']} evaluations, {usage['llm_calls']} LLM calls, {usage['cache_hits']} cache hits, "
        f"{usage['prompt_tokens'] + usage['completion_tokens']} tokens, ${usage['cost_usd']:.4f}, "
        f"evaluator {usage['eval_s']:.1f} s; unusable replies {usage['unusable_replies']}; run dir {record.dir}")
    return RunResult(best["value"], evaluation_of(best), steps, record.dir, final, usage, stop_reason)


# -- one iteration --------------------------------------------------------------------------------------------


def _stop_reason(best: dict, iteration: int, evaluations: int, started: float, cfg: RunConfig,
                 pop: PopulationConfig, run_engine: RunEngine) -> str:
    if best["evaluation"]["passed"]:
        return "passed"
    if iteration > cfg.iterations:
        return f"iteration budget ({cfg.iterations}) reached"
    if pop.evaluation_budget is not None and evaluations >= pop.evaluation_budget:
        return f"evaluation budget ({pop.evaluation_budget}) reached"
    if cfg.time_budget_s is not None and time.monotonic() - started >= cfg.time_budget_s:
        return f"time budget ({cfg.time_budget_s} s) reached"
    return run_engine.exhausted() or ""


def _select_parents(candidates: list[dict], best: dict, objectives: dict[str, str], k: int,
                    rng: random.Random) -> list[dict]:
    """Up to `k` parents from the Pareto front of the distinct candidates; the best always among them. When no
    candidate is valid yet (an invalid start), the best one is still improved from its error text."""
    vectors = [pareto.objective_vector(c["evaluation"], objectives) for c in candidates]
    front = pareto.front_of(vectors)
    if not front:
        return [best]
    by_id = {c["id"]: c for c in candidates}
    ids = pareto.sample_parents([candidates[i]["id"] for i in front], [vectors[i] for i in front], k, rng,
                                keep=[best["id"]])
    return [by_id[i] for i in ids]


def _plan_slots(parents: list[dict], pop: PopulationConfig, cfg: RunConfig, iteration: int,
                run_engine: RunEngine, rng: random.Random) -> list[_Slot]:
    """Every child of this iteration, in the order they are recorded. Seeds depend only on the run seed, the
    iteration and the slot, so a resumed run asks exactly what an uninterrupted one would have asked."""
    base = cfg.seed * 100_003 + iteration * 1_000
    slots = [_Slot(p * pop.proposals + j, parent, base + p * pop.proposals + j,
                   RunEngine(run_engine))
             for p, parent in enumerate(parents) for j in range(pop.proposals)]
    if pop.merge and len(parents) > 1:  # the best parent, shown another front member's strengths
        primary = max(parents, key=rank_key)
        other = rng.choice([p for p in parents if p is not primary])
        slots.append(_Slot(len(slots), primary, base + len(slots), RunEngine(run_engine), merge_with=other))
    return slots


def _propose(slots: list[_Slot], setup: _Setup, steps: list[dict], cfg: RunConfig, domain: Domain, instance: Any,
             pool: ThreadPoolExecutor) -> None:
    """Fill every slot's value, status and feedback: one backward call per parent (metered on its first child),
    then all TGD steps at once."""
    first_slot: dict[int, _Slot] = {}
    for slot in slots:
        first_slot.setdefault(slot.parent["id"], slot)
    feedback: dict[int, str | None] = {}
    if not cfg.one_call:
        done = {pid: pool.submit(_feedback, s.parent, s.meter, s.seed, setup) for pid, s in first_slot.items()}
        feedback = {pid: f.result() for pid, f in done.items()}
    futures = [pool.submit(_step, slot, feedback.get(slot.parent["id"], ""), setup, steps, cfg, domain, instance)
               for slot in slots]
    for f in futures:
        f.result()


def _feedback(parent: dict, meter: RunEngine, seed: int, setup: _Setup) -> str | None:
    """The parent's feedback from its own evaluation; None when the LLM budget is spent before the call."""
    x = Variable(parent["value"], setup.role, requires_grad=True)
    ev = evaluation_of(parent)
    try:
        evaluation_loss(x, ev, setup.context).backward(meter, seed=seed)
    except BudgetExceeded:
        return None
    except Exception as exc:  # the endpoint died: step with the evaluation itself rather than lose the iteration
        return f"(no feedback: {type(exc).__name__}: {exc}) Evaluation:\n{ev.text}"
    return x.feedback()


def _step(slot: _Slot, feedback: str | None, setup: _Setup, steps: list[dict], cfg: RunConfig, domain: Domain,
          instance: Any) -> None:
    parent = slot.parent
    if feedback is None:  # the budget ran out before this parent got feedback: nothing to step from
        slot.value, slot.status, slot.problem = parent["value"], "failed", "LLM budget spent"
        return
    examples = list(setup.examples)
    if slot.merge_with is not None:
        other = slot.merge_with
        examples.append(_merge_example(other))
        if not cfg.one_call:
            feedback = (f"{feedback}\n\nAlso combine this variable's strengths with those of the other candidate "
                        f"shown under examples (candidate #{other['id']}): keep what each does well.")
    x = Variable(parent["value"], setup.role, requires_grad=True)
    opt = TGD([x], slot.meter, constraints=setup.constraints, examples=examples, momentum=cfg.momentum,
              context=setup.context, validate=lambda raw: domain.parse(raw, instance), one_call=cfg.one_call,
              temperature=cfg.temperature, max_tokens=cfg.max_tokens, seed=slot.seed,
              reply_format=reply_format_for(domain, instance))
    for attempt in _memory(parent, steps, cfg.momentum):
        opt.remember(x, attempt)
    if not cfg.one_call:
        x.gradients = [feedback]
    ev = evaluation_of(parent)
    opt.step(score=finite_or_none(ev.score), evaluation_text=ev.text)
    report = opt.report(x)
    slot.value, slot.feedback, slot.problem = x.value, report.feedback, report.problem
    slot.status = "unchanged" if report.status == "updated" and x.value == parent["value"] else report.status


def _merge_example(other: dict) -> str:
    ev = other["evaluation"]
    return (f"Another candidate (#{other['id']}, score {format_score(ev['score'])}) to take strengths from:\n"
            f"{other['value']}\nIts evaluation:\n{ev['text'].strip()[:1500]}")


def _memory(parent: dict, steps: list[dict], momentum: int) -> list[Attempt]:
    """Momentum for one parent, oldest first: its own line of ancestors (each with the feedback that led on), then
    the children it already had (with what they scored), so a parent drawn again does not repeat itself."""
    if momentum <= 0:
        return []
    lineage, node = [], parent
    while node.get("parent") is not None and len(lineage) < momentum:
        above = steps[node["parent"]]
        lineage.append(Attempt(above["value"], above["evaluation"]["score"], node["feedback"]))
        node = above
    lineage.reverse()
    children = [Attempt(s["value"], s["evaluation"]["score"],
                        "(its evaluation) " + " ".join(s["evaluation"]["text"].split())[:_EVAL_LINE])
                for s in steps if s.get("parent") == parent["id"] and s.get("duplicate_of") is None]
    return (lineage + children)[-momentum:]


def _evaluate_and_commit(slots: list[_Slot], iteration: int, steps: list[dict], seen: dict[str, dict],
                         record: RunRecord, score_candidate: Callable[[str], Evaluation], pool: ThreadPoolExecutor,
                         t0: float, announce: Callable[[dict], None]) -> None:
    """Evaluate the new distinct values concurrently; append every child in slot order as soon as it and the
    children before it are done (ids stay deterministic, and a kill loses only what was still in flight)."""
    pending: dict[str, int] = {}  # value -> slot that evaluates it in this iteration
    futures: list[Future | None] = []
    for slot in slots:
        fresh = slot.value not in seen and slot.value not in pending
        if fresh:
            pending[slot.value] = slot.index
            futures.append(pool.submit(evaluate_step, iteration, slot.value, slot.parent["id"], slot.feedback,
                                       slot.status, slot.problem, score_candidate, slot.meter, {}, None, t0))
        else:
            futures.append(None)
    for slot, future in zip(slots, futures, strict=True):
        if future is not None:
            step, original = future.result(), None
        else:  # seen before, or proposed by an earlier slot of this iteration (already committed: lower index)
            original = seen[slot.value]
            step = evaluate_step(iteration, slot.value, slot.parent["id"], slot.feedback, slot.status,
                                  slot.problem, score_candidate, slot.meter, {}, original, t0)
        if slot.merge_with is not None:
            step["merge_with"] = slot.merge_with["id"]
        _commit(record, steps, step, original)
        seen.setdefault(step["value"], step)
        announce(step)


def _commit(record: RunRecord, steps: list[dict], step: dict, duplicate_of: dict | None) -> None:
    step["id"] = len(steps)
    step["duplicate_of"] = None if duplicate_of is None else duplicate_of["id"]
    record.append_step(step)
    steps.append(step)


def _line(step: dict, iterations: int) -> str:
    ev = step["evaluation"]
    first = ev["text"].strip().splitlines()[0][:80] if ev["text"].strip() else ""
    origin = "" if step["parent"] is None else f" <- #{step['parent']}"
    if step.get("merge_with") is not None:
        origin += f" + #{step['merge_with']}"
    extra = f" [{step['status']}{': ' + step['problem'][:80] if step['problem'] else ''}]" \
        if step["status"] not in ("updated", "initial") else ""
    return (f"iter {step['iteration']}/{iterations} #{step['id']}{origin} score={format_score(ev['score'])} "
            f"passed={ev['passed']}{extra} | {first}")


__all__ = ["PopulationConfig", "optimize_population"]
