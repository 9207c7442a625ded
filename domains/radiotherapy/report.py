"""Plots of a radiotherapy run directory: DVH with the goals marked, a dose slice with contours, the goals table
(Markdown) and the weight trajectory. The dose slice re-plans the best value (a plan takes seconds); everything
else comes from ``steps.jsonl``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from tgdomains.records import RunRecord, Step


def _steps(run_dir: Path) -> list[dict[str, Any]]:
    """The run's steps as stored (a torn last line from a kill is skipped, never repaired here)."""
    record = RunRecord(run_dir)
    if not record.steps_path.is_file():
        raise FileNotFoundError(f"{run_dir} has no steps.jsonl: not a run directory")
    steps = record.read_step_dicts(repair=False)
    if not steps:
        raise ValueError(f"{record.steps_path} holds no complete step")
    return steps


def _best(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's own selection (`Step.rank`): passed first, then score, ties to the earliest."""
    return max(steps, key=lambda d: Step.from_dict(d).rank())


def write_report(run_dir: str | Path, out_dir: str | Path) -> list[str]:
    """Write dvh.png, dose_slice.png, goals.md and weights.png for the run; returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    run_dir, out = Path(run_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    steps = _steps(run_dir)
    best = _best(steps)
    first = steps[0]
    written = [str(_goals_table(first, best, out / "goals.md"))]
    if best["evaluation"].get("valid", True) and best["evaluation"].get("details", {}).get("dvh_curves"):
        written.append(str(_dvh_plot(first, best, out / "dvh.png")))
        written.append(str(_dose_slice(best, out / "dose_slice.png")))
    written.append(str(_weights_plot(steps, out / "weights.png")))
    return written


def _goals_table(first: dict, best: dict, path: Path) -> Path:
    start = {g["name"]: g for g in first["evaluation"].get("details", {}).get("goals", [])}
    goals = best["evaluation"].get("details", {}).get("goals", [])
    lines = [
        f"# Clinical goals: initial plan vs best plan (iteration {best['iteration']})",
        "",
        "| goal | initial | best | met |",
        "|---|---:|---:|:---:|",
    ]
    for g in goals:
        before = start.get(g["name"], {}).get("measured")
        lines.append(
            f"| {g['goal']} | {_fmt(before)} | {_fmt(g['measured'])} | {'yes' if g['met'] else '**no**'} |"
        )
    ev = best["evaluation"]
    score = "invalid" if ev.get("score") is None else f"{ev['score']:.4f}"
    lines += ["", f"Score {score}; passed: {ev.get('passed')}.", "", "Best hyperparameters:", "",
              "```json", best["value"], "```", ""]
    path.write_text("\n".join(lines))
    return path


def _fmt(x: Any) -> str:
    return "-" if x is None else f"{x:.2f}"


def _dvh_plot(first: dict, best: dict, path: Path) -> Path:
    import matplotlib.pyplot as plt

    details = best["evaluation"]["details"]
    fig, ax = plt.subplots(figsize=(8, 5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    initial_curves = first["evaluation"].get("details", {}).get("dvh_curves", {})
    for i, (structure, (doses, volumes)) in enumerate(details["dvh_curves"].items()):
        color = colors[i % len(colors)]
        ax.plot(doses, volumes, color=color, label=structure)
        if structure in initial_curves:
            ax.plot(*initial_curves[structure], color=color, linestyle=":", linewidth=1)
        for g in details["goals"]:
            if g["structure"] != structure:
                continue
            if g["metric"].startswith("V"):
                x, y = float(g["metric"][1:]), g["limit"]
            elif g["metric"].startswith("D") and g["metric"][1:].replace(".", "", 1).isdigit():
                x, y = g["limit"], float(g["metric"][1:])
            else:
                continue
            ax.plot(x, y, marker="v" if g["comparator"].startswith("<") else "^", color=color,
                    markeredgecolor="black" if g["met"] else "red", markersize=8, linestyle="none")
    ax.set_xlabel("dose (Gy)")
    ax.set_ylabel("volume (%)")
    ax.set_title(f"DVH, best plan (solid) vs initial (dotted); goal markers red where missed — {details['case']}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _dose_slice(best: dict, path: Path) -> Path:
    import matplotlib.pyplot as plt

    from domains.radiotherapy.cases import load_case
    from domains.radiotherapy.fluence import single_blas_thread
    from domains.radiotherapy.planning import plan

    details = best["evaluation"]["details"]
    case = load_case(details["case"])
    with single_blas_thread():
        result = plan(case, best["value"])
    dose = case.dose_grid(result.dose)
    masks = {s: case.mask_grid(s) for s in case.structures}
    if dose.ndim == 3:  # the axial slice with the most target voxels
        target = masks[case.targets[0]]
        k = int(np.argmax(target.sum(axis=(1, 2))))
        dose, masks = dose[k], {s: m[k] for s, m in masks.items()}
    elif dose.ndim == 1:
        raise ValueError("the case has no grid to draw a slice on")
    fig, ax = plt.subplots(figsize=(8, 6))
    image = ax.imshow(dose, origin="lower", cmap="jet", vmin=0, vmax=max(float(dose.max()), 1e-6))
    fig.colorbar(image, ax=ax, label="dose (Gy)")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (s, mask) in enumerate(masks.items()):
        if mask.any():
            ax.contour(mask.astype(float), levels=[0.5], colors=[colors[i % len(colors)]], linewidths=1.2)
            ax.plot([], [], color=colors[i % len(colors)], label=s)
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title(f"dose of the best plan — {case.name}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _weights_plot(steps: list[dict], path: Path) -> Path:
    import matplotlib.pyplot as plt

    series: dict[str, dict[str, list[tuple[int, float]]]] = {"weight": {}, "dose_Gy": {}}
    for step in steps:
        try:
            value = json.loads(step["value"])
        except (json.JSONDecodeError, TypeError):
            continue
        if not isinstance(value, dict):
            continue
        for s, entry in value.items():
            if isinstance(entry, dict):
                for f in series:
                    if isinstance(entry.get(f), (int, float)):
                        series[f].setdefault(s, []).append((step["iteration"], float(entry[f])))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    for s, points in series["weight"].items():
        top.plot(*zip(*points, strict=False), marker="o", label=s)
    for s, points in series["dose_Gy"].items():
        bottom.plot(*zip(*points, strict=False), marker="o", label=s)
    top.set_yscale("symlog", linthresh=1.0)
    top.set_ylabel("weight")
    bottom.set_ylabel("dose level (Gy)")
    bottom.set_xlabel("iteration")
    bottom.xaxis.get_major_locator().set_params(integer=True)
    top.legend(fontsize=8)
    top.set_title("hyperparameter trajectory")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
