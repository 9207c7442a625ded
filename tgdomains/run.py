"""One run loop for every strategy: `Run` owns the run directory, the budgets, selection, finalize and the summary.

    result = optimize(domain, instance, engine=engine, strategy="chain", iterations=10, run_dir="runs/x")
    result = resume("runs/x", engine=engine)          # the run directory alone is enough

Every iteration the strategy proposes candidates (`tgdomains.strategies`), and the run

1. evaluates the new distinct values (concurrently when there are several; a value seen before is recorded as a
   duplicate of its first step and never scored again),
2. appends one `Step` per proposal to steps.jsonl in proposal order (one fsync'd line each, see records.py),
3. stops when the best candidate passed, or a budget is spent: iterations, evaluations, LLM calls, tokens, cost or
   wall time. LLM budgets are checked before every call, the others between iterations.

A proposal whose LLM call was refused by a spent budget is not a step; its calls still count in best.json's usage,
and a resumed run starts from that usage. Resuming replays nothing: steps are read back, and since every strategy
derives its next proposals from the steps alone (and seeds from the iteration), a killed-and-resumed run writes the
same steps as one that was never killed.

A run directory is data, never code: resuming rebuilds the instance from the arguments run.json stores
(`meta.instance_args`: the CLI's flags, or what `Domain.instance_args` gives for a Python or batch run), never from a
pickle; a domain that cannot describe its instance needs ``resume(..., instance=...)``. What the steps claim is not
believed blindly either: before a resumed run stops on a recorded ``passed`` step, that value is evaluated again, and
a pass that does not hold is replaced (in this process's memory; steps.jsonl is append-only) by the fresh verdict.
"""

from __future__ import annotations

import itertools
import os
import platform
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tgdomains import __version__, pareto, prompts
from tgdomains.domain import Domain, ParseError
from tgdomains.engines.base import BaseEngine, Engine
from tgdomains.engines.budget import Meter, RunEngine
from tgdomains.evaluation import Evaluation, format_score
from tgdomains.grammar import reply_format_for
from tgdomains.progress import RunProgress, run_progress
from tgdomains.records import RunRecord, Step, StepStatus
from tgdomains.runlock import RunLock
from tgdomains.runview import RunConfig, RunView, Setup, best_of, candidates_of
from tgdomains.strategies import make_strategy, setting_names
from tgdomains.strategies.base import Proposal, Selection, Strategy

OLD_INSTANCE_FILE = "instance.pickle"  # older versions' instance store: never read (unpickling runs code)


@dataclass
class RunResult:
    best_value: str
    best_evaluation: Evaluation
    steps: list[Step]
    run_dir: Path
    final: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, float] = field(default_factory=dict)
    stop_reason: str = ""
    strategy: str = ""

    @property
    def passed(self) -> bool:
        return self.best_evaluation.passed


class NoEngine(BaseEngine):
    """The engine of a run given none: LLM-free strategies never call it; anything else is told what is missing."""

    model = "none"

    def _complete(self, request):
        raise RuntimeError("this run has no engine (engine=None) but something asked the LLM; pass engine=...")

    def describe(self) -> str:
        return "no engine (LLM-free strategy)"


def optimize(domain: Domain | str, instance: Any, *, engine: Engine | None = None,
             strategy: str | Strategy | None = None, run_dir: str | Path | None = None, resume: bool = False,
             initial_value: str | None = None, constraints: list[str] | None = None,
             examples: list[str] | None = None,
             progress: bool | Callable[[str], None] | RunProgress = True,
             evaluate: Callable[[str], Evaluation] | None = None, meta: dict[str, Any] | None = None,
             eval_workers: int | None = None, **settings: Any) -> RunResult:
    """Optimize one instance of `domain` (a `Domain` or a registered domain's name) and return its `RunResult`.

    `instance`: the domain's instance arguments as a dict (e.g. {"case": "prostate-2d"}: loaded with
    `domain.load` and kept in run.json, so `resume(run_dir)` needs nothing else) or an instance already loaded.
    `strategy`: a name from `tgdomains.strategies.names(domain)` or a Strategy object; None: the domain's
    `default_strategy`. `settings` are RunConfig's fields (iterations, seed, budgets ...) and the strategy's own
    (momentum, population ...); a setting neither knows is an error that names it.

    `engine` may be None for LLM-free strategies (graph-ga, optuna): a call would then fail with a clear error.
    `evaluate` replaces `domain.evaluate(value, instance)` (a batch passes a worker-process pool this way).
    `meta` is stored in run.json as is (the CLI keeps the instance's arguments there).
    `progress`: True shows a live status line on a terminal (plain periodic lines elsewhere), a callable gets the
    run's lines, False shows nothing (see tgdomains.progress).
    """
    if isinstance(domain, str):
        from tgdomains.domain import get_domain

        domain = get_domain(domain)
    if isinstance(instance, dict):
        meta = {**(meta or {}), "instance_args": instance}
        instance = domain.load(dict(instance))
    if strategy is None:
        strategy = domain.default_strategy
    names = {f.name for f in fields(RunConfig)}
    config = RunConfig(**{k: v for k, v in settings.items() if k in names}).check()
    rest = {k: v for k, v in settings.items() if k not in names}
    if isinstance(strategy, str):
        strategy = make_strategy(strategy, domain, **rest)
    elif rest:
        raise TypeError(f"settings {sorted(rest)} are neither RunConfig fields nor given to a Strategy object")
    run = Run(domain, instance, engine=engine or NoEngine(), strategy=strategy, config=config,
              run_dir=run_dir or default_run_dir(domain.name, str(getattr(instance, "id", "instance"))),
              resume=resume, progress=progress, evaluate=evaluate, meta=meta, eval_workers=eval_workers)
    return run.run(initial_value=initial_value, constraints=constraints, examples=examples)


def resume(run_dir: str | Path, *, engine: Engine | None = None, domain: Domain | None = None, instance: Any = None,
           strategy: str | None = None, progress: bool | Callable[[str], None] | RunProgress = True,
           evaluate: Callable[[str], Evaluation] | None = None, **overrides: Any) -> RunResult:
    """Continue the run in `run_dir` from its last complete step: domain, instance, strategy and settings come from
    the directory. `overrides` change settings (more iterations, a larger budget); another `strategy` may continue
    the record (its own settings then start from their defaults)."""
    from tgdomains.domain import get_domain

    record = RunRecord(run_dir)
    if not record.exists():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no run.json)")
    recorded = record.read_config()
    domain = domain or get_domain(recorded["domain"])
    instance = load_instance(record, domain) if instance is None else instance
    config = recorded.get("config", {})
    # records older than strategies: a population run named its population in the config
    recorded_strategy = recorded.get("strategy") or ("population" if "population" in config else "chain")
    strategy = strategy or recorded_strategy
    run_fields = {f.name for f in fields(RunConfig)}
    settings = {k: v for k, v in config.items() if k in run_fields}
    if strategy == recorded_strategy:
        own = recorded.get("strategy_settings", config)
        settings.update({k: v for k, v in own.items() if k in setting_names(strategy, domain)})
    settings.update(overrides)
    return optimize(domain, instance, engine=engine, strategy=strategy, run_dir=run_dir, resume=True,
                    progress=progress, evaluate=evaluate, meta=recorded.get("meta"), **settings)


def load_instance(record: RunRecord, domain: Domain) -> Any:
    """The instance a run directory was made for, rebuilt by `domain.load` from the arguments in run.json."""
    args = record.read_config().get("meta", {}).get("instance_args")
    if args is not None:
        return domain.load(dict(args))
    older = " (its instance.pickle is not read: unpickling a file runs code)" \
        if os.path.lexists(record.dir / OLD_INSTANCE_FILE) else ""
    raise ValueError(f"{record.dir}: run.json does not say how to rebuild the instance (the {domain.name} domain "
                     f"could not describe it){older}; pass instance= to resume()")


def instance_args(domain: Domain, instance: Any) -> dict[str, Any] | None:
    """What `domain.load` rebuilds `instance` from (stored in run.json for resume), or None if the domain can't say."""
    describe = getattr(domain, "instance_args", None)
    return describe(instance) if describe is not None else None


def default_run_dir(domain_name: str, instance_id: str) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(instance_id))[:60]
    return Path("runs") / f"{domain_name}-{safe}-{stamp}"


class Run:
    """One optimization: the only code that opens and writes its run directory. Strategies see it through `view`
    (a read-only `RunView`)."""

    def __init__(self, domain: Domain, instance: Any, *, engine: Engine, strategy: Strategy, config: RunConfig,
                 run_dir: str | Path, resume: bool = False,
                 progress: bool | Callable[[str], None] | RunProgress = True,
                 evaluate: Callable[[str], Evaluation] | None = None, meta: dict[str, Any] | None = None,
                 eval_workers: int | None = None) -> None:
        self.domain, self.instance, self.strategy = domain, instance, strategy
        if config.iterations is None:
            config = replace(config, iterations=domain.default_iterations)
        self.config = config
        self.engine = RunEngine(engine, config.token_budget, config.cost_budget, config.llm_call_budget)
        self.record = RunRecord(run_dir)
        self.progress = run_progress(progress)
        self.say = self.progress.line
        self.iteration = 0  # the iteration being proposed (what the progress status names)
        self._proposal_numbers = itertools.count(1)
        # One writer per run directory, from before the steps are read until the run ends (see runlock.py).
        self.lock = RunLock(self.record.dir).acquire()
        try:
            self.steps: list[Step] = self.record.read_steps() if self.record.exists() else []
        except BaseException:
            self.lock.release()
            raise
        if self.steps and not resume:
            self.lock.release()
            raise FileExistsError(f"{self.record.dir} already holds a run; pass resume=True (--resume) to continue "
                                  "it, or choose another run directory")
        if self.lock.taken_over:
            held = self.lock.taken_over
            self.say(f"took over the lock of {self.record.dir} from pid {held.get('pid')} on {held.get('host')} "
                     f"(started {held.get('started')}), which ended without releasing it")
        self.meta = meta or {}
        self._score = evaluate or (lambda value: domain.evaluate(value, instance))
        self._eval_workers = eval_workers
        self._pool: ThreadPoolExecutor | None = None
        self._seen = {s.value: s for s in self.steps if s.evaluated}
        self._unrecorded: dict[str, float] = {}  # calls of proposals that a spent budget cut short (no step)
        self.view: RunView | None = None  # once the setup is known (`_start` / `_resume`)
        self.started = time.monotonic()
        self.spent_before = 0.0  # wall time of the earlier starts of a resumed run (the time budget counts it)

    def elapsed(self) -> float:
        """The run's wall time so far, every start of it together (what the time budget limits)."""
        return self.spent_before + time.monotonic() - self.started

    @property
    def candidates(self) -> list[Step]:
        return candidates_of(self.steps)

    @property
    def best(self) -> Step:
        return best_of(self.steps)

    def meter(self) -> Meter:
        watch = self.progress.watcher(self.iteration, next(self._proposal_numbers), self.config.iterations)
        return Meter(self.engine, watch=watch)

    def _open_view(self, setup: Setup) -> None:
        # the reply format is the same for every optimizer request of the run: built once, here
        self.view = RunView(self.domain, self.instance, self.config, setup, self.steps, self.meter,
                            reply_format_for(self.domain, self.instance))

    # -- the loop -----------------------------------------------------------------------------------------------

    def run(self, *, initial_value: str | None = None, constraints: list[str] | None = None,
            examples: list[str] | None = None) -> RunResult:
        try:
            if self.steps:
                self._resume()
            else:
                self._start(initial_value, constraints or [], examples or [])
            stop_reason = self._loop()
            return self._finish(stop_reason)
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
            self.progress.close()
            self.lock.release()

    def _start(self, initial_value: str | None, constraints: list[str], examples: list[str]) -> None:
        meter = self.meter()
        start = self.domain.initial(self.instance, meter)
        value = start.value if initial_value is None else canonical_or_raw(self.domain, initial_value, self.instance)
        setup = Setup(start.role_description, start.constraints + constraints, start.examples + examples,
                      self.domain.context(self.instance))
        self._open_view(setup)
        self.record.write_config({
            "domain": self.domain.name, "instance": str(getattr(self.instance, "id", "instance")),
            "strategy": self.strategy.name, "config": {**asdict(self.config), **self.strategy.settings()},
            "strategy_settings": self.strategy.settings(), "objectives": self.view.objectives,
            "engine": getattr(self.engine, "describe", lambda: repr(self.engine))(), "model": self.engine.model,
            "role_description": setup.role, "constraints": setup.constraints, "examples": setup.examples,
            "versions": {"tgdomains": __version__, "python": platform.python_version(), "prompts": prompts.VERSIONS},
            "started": datetime.now(timezone.utc).isoformat(), "meta": self._meta_with_instance_args(),
        })
        self.commit([Proposal(value, None, status=StepStatus.INITIAL, meter=meter)], 0, time.monotonic())

    def _resume(self) -> None:
        run_json = self.record.read_config()
        self._open_view(Setup(run_json.get("role_description", ""), run_json.get("constraints", []),
                              run_json.get("examples", []), self.domain.context(self.instance)))
        spent = total_usage(self.steps)
        best_json = self.record.read_best() or {}
        # best.json's wall_s covers finalize too; steps killed after it carry a later elapsed_s
        self.spent_before = max(self.steps[-1].elapsed_s, best_json.get("wall_s", 0.0))
        recorded = best_json.get("usage", {})
        if recorded.get("llm_calls", 0) + recorded.get("cache_hits", 0) > spent["llm_calls"] + spent["cache_hits"]:
            spent = {**spent, **{k: recorded[k] for k in _LLM_KEYS if k in recorded}}  # calls no step holds
        self.engine.restore(spent)
        self.say(f"resuming {self.record.dir}: {len(self.steps)} complete steps, iteration {self.steps[-1].iteration}")
        self._check_recorded_pass()

    def _check_recorded_pass(self) -> None:
        """Evaluate the best recorded step again when it claims `passed` (a run directory may come from someone
        else): until one pass holds, a pass that does not is replaced, in this process, by the fresh verdict."""
        while self.best.evaluation.passed:
            claimed = self.best
            fresh = self._evaluate(claimed.value)
            if fresh.passed:
                return
            why = fresh.text.strip().splitlines()[0][:120] if fresh.text.strip() else "no text"
            self.say(f"step #{claimed.id} is recorded as passed, but evaluated again it is not ({why}); the "
                     "recorded verdict is not believed")
            self.steps[:] = [replace(s, evaluation=fresh) if claimed.id in (s.id, s.duplicate_of) else s
                             for s in self.steps]  # in place: the strategies' view holds this list
            self._seen = {s.value: s for s in self.steps if s.evaluated}

    def _loop(self) -> str:
        while True:
            iteration = self.steps[-1].iteration + 1
            stop_reason = self.stop_reason(iteration)
            if stop_reason:
                return stop_reason
            room = None
            if self.config.evaluation_budget is not None:
                room = self.config.evaluation_budget - len(self.candidates)
            t0 = time.monotonic()
            self.iteration, self._proposal_numbers = iteration, itertools.count(1)
            proposals = self.strategy.propose(self.view, iteration, room)
            if room is not None:
                proposals = proposals[:room]  # never ask the evaluator for more than the budget has left
            kept = [p for p in proposals if not p.refused]
            for p in proposals:
                if p.refused and p.meter is not None:
                    _add(self._unrecorded, p.meter.usage.snapshot())
            if not kept:
                return self.engine.exhausted() or f"the {self.strategy.name} strategy has nothing left to propose"
            self.commit(kept, iteration, t0)
            self.progress.iteration_done(self)

    def stop_reason(self, iteration: int) -> str:
        cfg = self.config
        if self.best.evaluation.passed and (self.view is None or self.strategy.settled(self.view)):
            return "passed"
        if iteration > cfg.iterations:
            return f"iteration budget ({cfg.iterations}) reached"
        if cfg.evaluation_budget is not None and len(self.candidates) >= cfg.evaluation_budget:
            return f"evaluation budget ({cfg.evaluation_budget}) reached"
        if cfg.time_budget_s is not None and self.elapsed() >= cfg.time_budget_s:
            return f"time budget ({cfg.time_budget_s} s) reached"
        return self.engine.exhausted() or ""

    def commit(self, proposals: list[Proposal], iteration: int, t0: float) -> list[Step]:
        """Evaluate the new distinct values (concurrently), then append one step per proposal in order, each as soon
        as it and those before it are done: ids stay deterministic and a kill loses only what was in flight."""
        pending: dict[str, Future | None] = {}
        futures: list[Future | None] = []
        for p in proposals:
            if p.value in self._seen or p.value in pending:
                futures.append(None)
            else:
                pending[p.value] = future = self._submit(p.value)
                futures.append(future)
        written = []
        for p, future in zip(proposals, futures, strict=True):
            eval_t0 = time.monotonic()
            original = None if future is not None else self._seen[p.value]
            if future is not None:
                timed = future.result()
                evaluation, eval_s = timed.evaluation, timed.eval_s
            else:
                evaluation, eval_s = original.evaluation, time.monotonic() - eval_t0
            status = p.status
            if original is not None and status is StepStatus.UPDATED:
                status = StepStatus.DUPLICATE
            step = Step(id=len(self.steps), iteration=iteration, value=p.value, evaluation=evaluation, status=status,
                        parent=p.parent, duplicate_of=None if original is None else original.id, feedback=p.feedback,
                        problem=p.problem, usage=p.meter.usage.snapshot() if p.meter is not None else {},
                        eval_s=round(eval_s, 4), step_s=round(time.monotonic() - t0, 4), restart=p.restart,
                        elapsed_s=round(self.elapsed(), 3))
            self.record.append_step(step)
            self.steps.append(step)
            self._seen.setdefault(step.value, step)
            written.append(step)
            self.say(progress_line(step, self.config.iterations))
        self.strategy.observe(self.view, written)
        return written

    def _submit(self, value: str) -> Future:
        """Score one value; inline for the first of an iteration when nothing else is pending (the chain's case)."""
        if self._pool is None:
            workers = self._eval_workers or min(self.strategy.width(), os.cpu_count() or 1)
            if workers <= 1:
                return _done(self._evaluate, value)
            self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tg-eval")
        return self._pool.submit(_timed, self._evaluate, value)

    def _evaluate(self, value: str) -> Evaluation:
        try:
            evaluation = self._score(value)
        except Exception as exc:  # a domain evaluator must not raise, but if it does the run goes on
            evaluation = Evaluation.invalid(f"the evaluator failed: {type(exc).__name__}: {exc}")
        return Evaluation.from_dict(evaluation.to_dict())  # as stored, so a resumed run compares equal

    def _finish(self, stop_reason: str) -> RunResult:
        best, selection = self._selected()
        final = finalize_safely(self.domain, best.value, self.instance)
        if selection is not None:
            final = {**final, "selection": selection.report}
        usage = total_usage(self.steps)
        _add(usage, self._unrecorded)
        usage["cost_usd"] = round(usage["cost_usd"], 6)
        candidates = self.candidates
        front = [candidates[i].id
                 for i in pareto.pareto_front([c.evaluation for c in candidates], self.view.objectives)]
        self.record.write_best({"id": best.id, "iteration": best.iteration, "value": best.value,
                                "evaluation": best.evaluation.to_dict(), "final": final, "stop_reason": stop_reason,
                                "usage": usage, "front": front, "strategy": self.strategy.name,
                                **({"selection": selection.report} if selection is not None else {}),
                                "wall_s": round(self.elapsed(), 3)})
        self.say(f"stopped: {stop_reason}; best #{best.id} (iteration {best.iteration}) "
                 f"score={format_score(best.score)} passed={best.evaluation.passed}; "
                 f"{usage['evaluations']} evaluations, {usage['llm_calls']} LLM calls, {usage['cache_hits']} cache "
                 f"hits, {usage['prompt_tokens'] + usage['completion_tokens']} tokens, ${usage['cost_usd']:.4f}, "
                 f"evaluator {usage['eval_s']:.1f} s; unusable replies {usage['unusable_replies']}; "
                 f"run dir {self.record.dir}")
        return RunResult(best.value, best.evaluation, list(self.steps), self.record.dir, final, usage, stop_reason,
                         self.strategy.name)

    def _selected(self) -> tuple[Step, Selection | None]:
        """The run's result: the strategy's choice when it makes one (an evaluated step), else the best by rank."""
        selection = self.strategy.select(self.view) if self.view is not None else None
        if selection is None:
            return self.best, None
        chosen = self.steps[selection.step] if 0 <= selection.step < len(self.steps) else None
        if chosen is None or not chosen.evaluated:  # a strategy bug: the run's record still ends with its best
            self.say(f"the {self.strategy.name} strategy selected step {selection.step}, which is not an evaluated "
                     f"candidate of this run; the best by rank (#{self.best.id}) is the result")
            return self.best, None
        return chosen, selection

    def _meta_with_instance_args(self) -> dict[str, Any]:
        """run.json's meta: the caller's, plus the domain's description of the instance when the caller gave none."""
        if "instance_args" in self.meta:
            return self.meta
        args = instance_args(self.domain, self.instance)
        return self.meta if args is None else {**self.meta, "instance_args": args}


# -- helpers --------------------------------------------------------------------------------------------------

_LLM_KEYS = ("llm_calls", "cache_hits", "prompt_tokens", "completion_tokens", "cost_usd", "llm_failures")


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


def total_usage(steps: list[Step]) -> dict[str, float]:
    total: dict[str, float] = {k: sum(s.usage.get(k, 0) for s in steps) for k in _LLM_KEYS}
    total["cost_usd"] = round(total["cost_usd"], 6)
    total["eval_s"] = round(sum(s.eval_s for s in steps), 3)
    total["evaluations"] = sum(1 for s in steps if s.evaluated)
    total["unusable_replies"] = sum(1 for s in steps if s.status in (StepStatus.FAILED, StepStatus.REPAIRED))
    total["iterations"] = max(s.iteration for s in steps)
    return total


def _add(total: dict[str, float], more: dict[str, float]) -> None:
    for k, v in more.items():
        total[k] = total.get(k, 0) + v


def _timed(fn: Callable[[str], Evaluation], value: str) -> Evaluation:
    t0 = time.monotonic()
    result = fn(value)
    return _Timed(result, time.monotonic() - t0)


class _Timed:
    """A finished evaluation and how long it took (what a Future of `_submit` returns)."""

    def __init__(self, evaluation: Evaluation, eval_s: float) -> None:
        self.evaluation, self.eval_s = evaluation, eval_s


def _done(fn: Callable[[str], Evaluation], value: str) -> Future:
    future: Future = Future()
    future.set_result(_timed(fn, value))
    return future


def progress_line(step: Step, iterations: int | None) -> str:
    ev = step.evaluation
    first = ev.text.strip().splitlines()[0][:80] if ev.text.strip() else ""
    origin = "" if step.parent is None else f" <- #{step.parent}"
    extra = f" [{step.status}{': ' + step.problem[:80] if step.problem else ''}]" \
        if step.status not in (StepStatus.UPDATED, StepStatus.INITIAL) else ""
    return (f"iter {step.iteration}/{iterations} #{step.id}{origin} score={format_score(step.score)} "
            f"passed={ev.passed}{extra} | {first}")
