"""Optimize many instances at once: LLM calls overlap in threads, evaluators run in worker processes, or the
whole batch runs on a Ray cluster.

Why threads for runs: an optimization spends most of its time waiting on the LLM, so N runs in N threads finish in
about the time of the slowest one. Evaluators are CPU-bound (docking, fluence optimization, sandboxed tests), so
they go to a process pool sized to the cores, shared by every run of the batch. A worker process that dies (killed,
out of memory, a C library calling exit()) breaks a ProcessPoolExecutor for everyone, so `EvaluatorPool` replaces
the pool and retries the evaluations that were in it; the other runs never notice.
"""

from __future__ import annotations

import os
import pickle
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from tgdomains.progress import BatchProgress
from tgdomains.records import RunRecord
from tgdomains.run import RunResult, default_run_dir, optimize


def optimize_many(domain, instances: list[Any], *, engine, out_dir: str | Path | None = None, workers: int = 8,
                  eval_workers: int | None = None, ray_address: str | None = None, progress: bool = True,
                  **run_kwargs: Any) -> dict[str, Any]:
    """Optimize every instance; returns the batch summary (also written to OUT/batch.json). `run_kwargs` are
    `tgdomains.run.optimize`'s settings (strategy, iterations, budgets ...), the same for every instance.
    `progress`: the runs' lines, prefixed with their instance, and a progress bar (plain lines when stderr is not a
    terminal): instances done / total, passed, the best score so far, time left."""
    out = Path(out_dir) if out_dir else default_run_dir(f"batch-{domain.name}", f"{len(instances)}")
    out.mkdir(parents=True, exist_ok=True)
    ids = [str(getattr(inst, "id", i)) for i, inst in enumerate(instances)]
    if len(set(ids)) != len(ids):
        raise ValueError("batch instances need distinct ids: " + ", ".join(sorted({i for i in ids if ids.count(i) > 1})))
    started = time.monotonic()
    if ray_address:
        results = _run_on_ray(domain, instances, engine, out, ray_address, run_kwargs)
    else:
        results = _run_locally(domain, instances, engine, out, workers, eval_workers, progress, run_kwargs)
    summary = summarize(domain.name, ids, results, time.monotonic() - started)
    RunRecord(out).write_json("batch.json", summary)
    return summary


def _run_one(domain, instance, engine, run_dir: Path, evaluate, say: Callable[[str], None] | None,
             run_kwargs: dict) -> RunResult:
    prefix = f"[{getattr(instance, 'id', '?')}] "
    lines = (lambda line: say(prefix + line)) if say is not None else False
    return optimize(domain, instance, engine=engine, run_dir=run_dir, resume=(run_dir / "run.json").exists(),
                    progress=lines, evaluate=evaluate, **run_kwargs)


def _run_locally(domain, instances, engine, out: Path, workers: int, eval_workers: int | None, progress: bool,
                 run_kwargs: dict) -> list[RunResult | Exception]:
    pool = None
    if _picklable(domain, instances):
        pool = EvaluatorPool(eval_workers or os.cpu_count() or 1, domain)
    bar = BatchProgress(len(instances), enabled=progress)
    try:
        def run(instance):
            evaluate = None
            if pool is not None:
                evaluate = lambda value: pool.evaluate(value, instance)  # noqa: E731
            try:
                result = _run_one(domain, instance, engine, out / _safe(instance), evaluate,
                                  bar.line if progress else None, run_kwargs)
            except Exception as exc:  # one instance's failure is reported, the batch goes on
                bar.instance_done(None, None)
                return exc
            bar.instance_done(result.passed, result.best_evaluation.score)
            return result

        with ThreadPoolExecutor(max_workers=max(1, workers)) as threads:
            return list(threads.map(run, instances))
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown()


class WorkerDied(RuntimeError):
    """An evaluation's worker process died on every attempt (the run records the candidate as invalid)."""


class EvaluatorPool:
    """The batch's evaluator processes, shared by its runs; a dead worker costs a retry, not the batch.

    When a worker dies, ProcessPoolExecutor fails every evaluation it holds and refuses new ones. The first run to
    see that replaces the shared pool (once per breakage), and each evaluation that was lost is retried alone, in a
    process of its own: evaluators are deterministic, so the retry equals the evaluation that was lost, and a
    candidate that kills its worker every time kills only its own process. It is then reported as `WorkerDied`,
    which the run records as an invalid candidate; the other evaluations never notice.
    """

    def __init__(self, workers: int, domain) -> None:
        self.workers, self.domain = workers, domain
        self.replaced = 0  # how many times a broken shared pool was replaced
        self._lock = threading.Lock()
        self._pool = self._new_pool(workers)

    def _new_pool(self, workers: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=workers, initializer=_hold_domain, initargs=(self.domain,))

    def evaluate(self, value: str, instance):
        pool = self._pool
        try:
            return pool.submit(_evaluate_held, value, instance).result()
        except BrokenProcessPool:
            self._replace(pool)
        alone = self._new_pool(1)
        try:
            return alone.submit(_evaluate_held, value, instance).result()
        except BrokenProcessPool as exc:
            raise WorkerDied(f"the evaluator's worker process died on this candidate twice, the second time "
                             f"alone ({exc})") from None
        finally:
            alone.shutdown(wait=False, cancel_futures=True)

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:  # others that saw the same breakage find it replaced already
                self._pool = self._new_pool(self.workers)
                self.replaced += 1
        broken.shutdown(wait=False, cancel_futures=True)

    def shutdown(self) -> None:
        self._pool.shutdown(cancel_futures=True)


# The domain object of a batch's worker process, set by the pool's initializer when the process starts (never in the
# calling process): a domain may keep what it loaded (a case's matrices) across the evaluations it serves.
_held_domain = None


def _hold_domain(domain) -> None:
    global _held_domain
    _held_domain = domain


def _evaluate_held(value: str, instance):
    return _held_domain.evaluate(value, instance)


def _run_on_ray(domain, instances, engine, out: Path, address: str, run_kwargs: dict) -> list[RunResult | Exception]:
    try:
        import ray
    except ImportError:
        raise ImportError("--ray-address needs Ray: pip install 'tgdomains[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=None if address == "local" else address, ignore_reinit_error=True,
                 log_to_driver=False, include_dashboard=False)

    @ray.remote
    def remote_run(domain, instance, engine, run_dir, run_kwargs):
        try:
            return _run_one(domain, instance, engine, Path(run_dir), None, None, run_kwargs)
        except Exception as exc:
            return exc

    # Each task gets its own copy of the engine; run directories must be on storage every node sees.
    refs = [remote_run.remote(domain, inst, engine, str((out / _safe(inst)).resolve()), run_kwargs)
            for inst in instances]
    return ray.get(refs)


def summarize(domain_name: str, ids: list[str], results: list[RunResult | Exception], wall_s: float) -> dict:
    rows = []
    for instance_id, r in zip(ids, results, strict=True):
        if isinstance(r, Exception):
            rows.append({"instance": instance_id, "error": f"{type(r).__name__}: {r}"})
            continue
        rows.append({"instance": instance_id, "passed": r.passed, "score": r.best_evaluation.score,
                     "iterations": r.usage.get("iterations"), "llm_calls": r.usage.get("llm_calls"),
                     "tokens": r.usage.get("prompt_tokens", 0) + r.usage.get("completion_tokens", 0),
                     "cost_usd": r.usage.get("cost_usd"), "final": r.final, "run_dir": str(r.run_dir),
                     "best_value": r.best_value, "stop_reason": r.stop_reason})
    done = [r for r in rows if "error" not in r]
    overall: dict[str, Any] = {"instances": len(rows), "errors": len(rows) - len(done),
                               "completion_rate": sum(r["passed"] for r in done) / len(rows) if rows else 0.0,
                               "wall_s": round(wall_s, 2)}
    # Domain verdicts that are rates (hidden_pass_rate ...) are averaged, and "all passed" counted.
    for key in sorted({k for r in done for k, v in r["final"].items() if isinstance(v, (int, float))}):
        values = [r["final"][key] for r in done if isinstance(r["final"].get(key), (int, float))]
        overall[f"mean_{key}"] = sum(values) / len(values)
        if key.endswith("_rate"):  # hidden_pass_rate -> hidden_completion_rate: problems fully solved
            name = key.removesuffix("_rate").removesuffix("_pass")
            overall[f"{name}_completion_rate"] = sum(v == 1.0 for v in values) / len(rows)
    return {"domain": domain_name, "overall": overall, "instances": rows}


def print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{summary['domain']} batch")
    extra = sorted({k for r in summary["instances"] for k, v in r.get("final", {}).items()
                    if isinstance(v, (int, float))})
    for col in ["instance", "passed", "score", "iters", "LLM calls", "tokens", *extra]:
        table.add_column(col)
    for r in summary["instances"]:
        if "error" in r:
            table.add_row(r["instance"], "error", r["error"][:60])
            continue
        table.add_row(r["instance"], "yes" if r["passed"] else "no", f"{r['score']:.4g}", str(r["iterations"]),
                      str(r["llm_calls"]), str(r["tokens"]), *[_fmt(r["final"].get(k)) for k in extra])
    console = Console()
    console.print(table)
    console.print(" ".join(f"{k}={_fmt(v)}" for k, v in summary["overall"].items()))


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _safe(instance) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(getattr(instance, "id", "instance")))[:80]


def _picklable(*objs) -> bool:
    try:
        pickle.dumps(objs)
        return True
    except Exception:
        return False
