"""`tgdomains report RUN_DIR`: the same report for every strategy — the score trajectory, the Pareto front and the
best candidate's lineage (`figures.py`), the domain's own plots and a Markdown summary."""

from __future__ import annotations

import json
from pathlib import Path

from tgdomains.records import RunRecord, Step
from tgdomains.report.figures import plot_front, plot_lineage, plot_trajectory


def write_report(run_dir: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    record = RunRecord(run_dir)
    if not record.exists():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no run.json)")
    run, steps, best = record.read_config(), record.read_steps(repair=False), record.read_best()
    if not steps:
        raise ValueError(f"{run_dir} has no complete step yet")
    out = Path(out_dir) if out_dir else record.dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    figures = [plot_trajectory(steps, out / "score_trajectory.png", title=f"{run['domain']} / {run['instance']}")]
    figures.append(plot_front(steps, run.get("objectives") or {"score": "max"}, out / "front.png"))
    figures.append(plot_lineage(steps, out / "lineage.png"))
    figures += [Path(p) for p in _domain_figures(run["domain"], record.dir, out)]
    summary = out / "summary.md"
    summary.write_text(markdown_summary(run, steps, best, [f for f in figures if f.exists()], out))
    return [*figures, summary]


def markdown_summary(run: dict, steps: list[Step], best: dict | None, figures: list[Path], out: Path) -> str:
    lines = [f"# {run['domain']} — {run['instance']}", "",
             f"- strategy: {run.get('strategy', 'chain')}; engine: {run.get('engine', '?')}",
             f"- started: {run.get('started', '?')}; config: `{json.dumps(run.get('config', {}))}`"]
    if best:
        u = best.get("usage", {})
        lines += [f"- stopped: {best.get('stop_reason', '?')} after {u.get('iterations', '?')} iterations, "
                  f"{best.get('wall_s', '?')} s",
                  f"- LLM calls {u.get('llm_calls')}, cache hits {u.get('cache_hits')}, tokens "
                  f"{u.get('prompt_tokens', 0) + u.get('completion_tokens', 0)}, cost ${u.get('cost_usd', 0)}, "
                  f"evaluator {u.get('eval_s')} s, unusable replies {u.get('unusable_replies')}"]
    lines += ["", *[f"![{f.stem}]({f.relative_to(out) if f.is_relative_to(out) else f})" for f in figures], "",
              "| iteration | parent | status | score | passed | evaluation |", "|---|---|---|---|---|---|"]

    for s in steps:
        first = (s.evaluation.text.strip().splitlines() or [""])[0][:100].replace("|", "\\|")
        score = "invalid" if s.score is None else f"{s.score:.4g}"
        parent = "" if s.parent is None else s.parent
        status = f"{s.status} (restart)" if s.restart else s.status  # a new value from scratch, not an edit
        lines.append(f"| {s.iteration} | {parent} | {status} | {score} | {s.evaluation.passed} | {first} |")
    if best:
        lines += ["", f"## Best (iteration {best['iteration']})", "", "```", best["value"], "```", "",
                  "Evaluation:", "", "```", best["evaluation"]["text"], "```"]
        if best.get("final"):
            lines += ["", "Final verdicts: `" + json.dumps(best["final"], default=str) + "`"]
    return "\n".join(lines) + "\n"


def _domain(name: str):
    from tgdomains.domain import get_domain

    try:
        return get_domain(name)
    except KeyError:
        return None


def _domain_figures(name: str, run_dir: Path, out: Path) -> list[str]:
    domain = _domain(name)
    if domain is None:
        return []
    try:
        return list(domain.report(str(run_dir), str(out)) or [])
    except Exception as exc:  # a domain plot failing must not lose the core report
        print(f"tgdomains report: the {name} domain's plots failed: {type(exc).__name__}: {exc}")
        return []
