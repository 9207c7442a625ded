"""The code domain's plot for `tgdomains report`: visible pass rate and program length over a run's iterations."""

from __future__ import annotations

from pathlib import Path

from tgdomains.records import RunRecord


def write_report(run_dir: str | Path, out_dir: str | Path) -> list[str]:
    """Write code_progress.png into `out_dir`; returns its path (none for a run with no steps)."""
    steps = RunRecord(run_dir).read_steps(repair=False)
    if not steps:
        return []
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    its = [s.iteration for s in steps]
    metrics = [s.evaluation.metrics for s in steps]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(its, [m.get("visible_pass_rate", 0.0) for m in metrics], "o-", label="visible pass rate")
    ax.set_xlabel("iteration")
    ax.set_ylabel("visible pass rate")
    ax.set_ylim(-0.05, 1.05)
    lines = ax.twinx()
    lines.plot(its, [m.get("code_lines", 0) for m in metrics], "s--", color="tab:gray", label="code lines")
    lines.set_ylabel("code lines")
    fig.legend(loc="lower right")
    fig.tight_layout()
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    path = str(Path(out_dir) / "code_progress.png")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [path]
