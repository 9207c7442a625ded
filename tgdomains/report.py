"""`tgdomains report RUN_DIR`: a trajectory plot, the domain's own plots and a Markdown summary."""

from __future__ import annotations

import json
from pathlib import Path

from tgdomains.records import RunRecord


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
    if "population" in run.get("config", {}):
        from tgdomains.plots_population import plot_front, plot_lineage

        objectives = run.get("objectives") or _objectives(run["domain"])
        if objectives:
            figures.append(Path(plot_front(steps, objectives, out / "front.png") or out / "front.png"))
        figures.append(Path(plot_lineage(steps, out / "lineage.png") or out / "lineage.png"))
    figures += [Path(p) for p in _domain_figures(run["domain"], record.dir, out)]
    summary = out / "summary.md"
    summary.write_text(markdown_summary(run, steps, best, [f for f in figures if f.exists()], out))
    return [*figures, summary]


def plot_trajectory(steps: list[dict], path: Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    its = [s["iteration"] for s in steps]
    scores = [s["evaluation"]["score"] for s in steps]
    fig, ax = plt.subplots(figsize=(7, 4))
    valid = [(i, sc) for i, sc in zip(its, scores, strict=True) if sc is not None]
    best, best_line = None, []
    for sc in scores:
        if sc is not None and (best is None or sc > best):
            best = sc
        best_line.append(best)
    if valid:
        ax.plot(*zip(*valid, strict=True), "o", color="tab:blue", label="candidate")
    ax.step(its, [b if b is not None else float("nan") for b in best_line], where="post", color="tab:green",
            label="best so far")
    for s in steps:
        if s["evaluation"]["passed"]:
            ax.plot(s["iteration"], s["evaluation"]["score"], "*", color="gold", markersize=16, markeredgecolor="k")
        if s["evaluation"]["score"] is None:
            ax.axvline(s["iteration"], color="tab:red", alpha=0.3)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("iteration")
    ax.set_ylabel("score (higher is better)")
    ax.set_title(title + "   (★ passed, red: invalid candidate)")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def save_figure(fig, path: Path) -> Path:
    """Every report figure is written the same way, and closed so long batches do not pile up figures."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def markdown_summary(run: dict, steps: list[dict], best: dict | None, figures: list[Path], out: Path) -> str:
    lines = [f"# {run['domain']} — {run['instance']}", "",
             f"- engine: {run.get('engine', '?')}",
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
        ev = s["evaluation"]
        first = (ev["text"].strip().splitlines() or [""])[0][:100].replace("|", "\\|")
        score = "invalid" if ev["score"] is None else f"{ev['score']:.4g}"
        lines.append(f"| {s['iteration']} | {s.get('parent', '')} | {s['status']} | {score} | {ev['passed']} | "
                     f"{first} |")
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


def _objectives(name: str) -> dict[str, str]:
    domain = _domain(name)
    return dict(getattr(domain, "objectives", {}) or {}) if domain else {}


def _domain_figures(name: str, run_dir: Path, out: Path) -> list[str]:
    domain = _domain(name)
    if domain is None or not hasattr(domain, "report"):
        return []
    try:
        return list(domain.report(str(run_dir), str(out)) or [])
    except Exception as exc:  # a domain plot failing must not lose the core report
        print(f"tgdomains report: the {name} domain's plots failed: {type(exc).__name__}: {exc}")
        return []
