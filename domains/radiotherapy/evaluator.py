"""Judge a hyperparameter candidate: plan it, measure the DVH, check the clinical goals, write the loss text.

Score (higher is better): ``-(sum of relative goal violations) - 0.01 * (mean dose of the primary organs at risk /
prescription)``. A violation is ``|measured - limit| / max(|limit|, 1)`` for a missed goal and 0 for a met one, so
a plan with PTV D95 = 74.1 Gy against ">= 78" adds 0.05 and a rectum V70 of 26 % against "< 20" adds 0.3. The second
term (at most about 0.01) only breaks ties: between plans that meet the same goals, the one sparing the rectum and
bladder more wins. ``passed`` is every goal met.

`RadiotherapyInstance` is the domain's instance type; `PlanEvaluator` scores values for one loaded case and goal
set. numpy and the planning code load inside the functions that use them, so importing this module (the plug-in
does) stays fast.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tgdomains.evaluation import Evaluation

if TYPE_CHECKING:
    from domains.radiotherapy.case import Case
    from domains.radiotherapy.goals import GoalResult, GoalSet
    from domains.radiotherapy.planning import Plan

TIE_BREAK = 0.01


@dataclass
class RadiotherapyInstance:
    """One planning task: a case and its goal file (plus an optional starting value and example plans).

    It travels to worker processes as its specification only; the loaded case and goals (`evaluator`) are loaded
    on first use in each process and kept on the object, never pickled."""

    case_spec: str
    goals_file: str = ""  # empty: the case's default goals
    params: str | None = None  # hyperparameter JSON text to start from / to evaluate
    examples: list[str] = field(default_factory=list)  # hyperparameter JSON texts shown as example plans
    loaded: Any = field(default=None, repr=False, compare=False)  # the PlanEvaluator, once loaded

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "loaded": None}

    @property
    def id(self) -> str:
        stem = Path(self.case_spec).stem if self.case_spec.endswith(".npz") else self.case_spec
        return stem if not self.goals_file else f"{stem}+{Path(self.goals_file).stem}"

    @property
    def evaluator(self) -> PlanEvaluator:
        if self.loaded is None:
            from domains.radiotherapy.cases import load_case
            from domains.radiotherapy.goals import load_goals

            case = load_case(self.case_spec)
            goals_file = self.goals_file or case.default_goals
            if not goals_file:
                raise ValueError(f"case {case.name} has no default goals: pass --goals FILE.yaml")
            goals = load_goals(goals_file, case.structure_names)
            self.loaded = PlanEvaluator(case, goals, case_spec=self.case_spec, goals_file=goals_file)
        return self.loaded

    @property
    def case(self) -> Case:
        return self.evaluator.case


class PlanEvaluator:
    """Evaluates candidates for one case and goal set, remembering every evaluation by its canonical text, so a
    candidate is never planned twice.

    Every plan starts from the same uniform fluence, so a value's evaluation never depends on what was evaluated
    before. (Warm-starting from the default plan's fluence, which `plan(..., x0=...)` supports, did not save
    iterations here: on prostate-2d 137-266 iterations warm against 127-249 cold for four random weight sets.)
    """

    def __init__(self, case: Case, goals: GoalSet, *, case_spec: str | None = None, goals_file: str | None = None):
        self.case = case
        self.goals = goals
        self.case_spec = case_spec or case.name
        self.goals_file = goals_file or goals.source
        self._memo: dict[str, Evaluation] = {}

    def evaluate(self, value: str) -> Evaluation:
        from domains.radiotherapy.fluence import single_blas_thread
        from domains.radiotherapy.hyperparameters import HyperparameterError, parse_hyperparameters, to_json
        from domains.radiotherapy.planning import plan

        try:
            hp = parse_hyperparameters(value, self.case)
        except HyperparameterError as exc:
            return Evaluation.invalid(f"Invalid hyperparameters, no plan was made: {exc}")
        key = to_json(hp, self.case)
        if key not in self._memo:
            with single_blas_thread():  # small vectors: extra BLAS threads only fight over a shared machine
                start = time.perf_counter()
                result = plan(self.case, hp)
                self._memo[key] = evaluate_plan(
                    result, self.goals, seconds=time.perf_counter() - start,
                    case_spec=self.case_spec, goals_file=self.goals_file,
                )
        return self._memo[key]


def evaluate_plan(
    result: Plan, goals: GoalSet, *, seconds: float = math.nan, case_spec: str | None = None, goals_file: str | None = None
) -> Evaluation:
    """The Evaluation of a finished plan against `goals` (see the module docstring for the score)."""
    import numpy as np

    from domains.radiotherapy import dvh
    from domains.radiotherapy.goals import check_goals

    case = result.case
    rx = goals.prescription_Gy or case.prescription_Gy
    checked = check_goals(goals, case, result.dose)
    violation = sum(r.violation for r in checked)
    oars = [s for s in case.primary_oars if s in case.structures]
    oar_mean = float(np.mean([result.structure_dose(s).mean() for s in oars])) if oars else 0.0
    score = -violation - TIE_BREAK * oar_mean / rx
    if not math.isfinite(score) or not np.isfinite(result.dose).all():  # never a valid score: NaN compares as nothing
        return Evaluation.invalid(f"the plan's dose on case {case.name} is not finite (NaN or infinite values): the "
                                  "case's dose-influence matrix or the optimizer produced an unusable dose")
    passed = all(r.met for r in checked)

    metrics: dict[str, float] = {r.goal.name: r.measured for r in checked}
    table = _dvh_table(result, rx)
    for s, row in table.items():
        metrics[f"{s}_mean_Gy"] = row["mean"]
        metrics[f"{s}_max_Gy"] = row["max"]
    for t in case.targets:
        for key in ("D95", "D98", "D2"):
            metrics[f"{t}_{key}_Gy"] = table[t][key]
        metrics[f"{t}_HI"] = table[t]["HI"]
        metrics[f"{t}_CI"] = table[t]["CI"]
    metrics["goals_passed"] = float(sum(r.met for r in checked))
    metrics["goals_total"] = float(len(checked))
    metrics["total_violation"] = violation
    metrics["fluence_objective"] = result.optimization.objective_value
    metrics["fluence_iterations"] = float(result.optimization.iterations)
    top = max(1.15 * rx, float(result.dose.max()) if result.dose.size else rx)
    details: dict[str, Any] = {
        "case": case_spec or case.name,
        "goals_file": goals_file or goals.source,
        "prescription_Gy": rx,
        "goals": [
            {
                "name": r.goal.name,
                "goal": r.goal.describe(),
                "structure": r.goal.structure,
                "metric": r.goal.metric,
                "comparator": r.goal.comparator,
                "limit": r.goal.value,
                "measured": _round(r.measured),
                "met": r.met,
                "violation": _round(r.violation),
            }
            for r in checked
        ],
        "dvh_table": {s: {k: _round(v) for k, v in row.items()} for s, row in table.items()},
        "dvh_curves": {s: dvh.dvh_curve(result.structure_dose(s), top) for s in case.structures},
        "hyperparameters": result.hyperparameters,
        "fluence": {
            "iterations": result.optimization.iterations,
            "objective": result.optimization.objective_value,
            "converged": result.optimization.converged,
            "seconds": _round(seconds),
        },
    }
    return Evaluation(
        score=score,
        metrics=metrics,
        passed=passed,
        valid=True,
        text=loss_text(result, checked, table, rx),
        details=details,
    )


def _round(x: float) -> float:
    return round(float(x), 4) if math.isfinite(x) else x


def _dvh_table(result: Plan, rx: float) -> dict[str, dict[str, float]]:
    from domains.radiotherapy import dvh

    case = result.case
    table = {}
    for s in case.structures:
        is_target = s in case.targets
        table[s] = dvh.dvh_metrics(
            result.structure_dose(s),
            prescription_Gy=rx if is_target else None,
            all_dose=result.dose if is_target else None,
        )
    return table


def loss_text(result: Plan, checked: list[GoalResult], table: dict[str, dict[str, float]], rx: float) -> str:
    """The DVH table against the goals, failures worst first, and the trade-off the plan shows."""
    case = result.case
    failed = sorted((r for r in checked if not r.met), key=lambda r: -r.violation)
    lines = [
        f"Plan on case {case.name} (prescription {rx:g} Gy): "
        + (f"{len(failed)} of {len(checked)} clinical goals FAIL." if failed else f"all {len(checked)} clinical goals are met.")
    ]
    if failed:
        lines.append("Failing goals, worst first:")
        for r in failed:
            lines.append(f"  - {_goal_line(r)}")
    met = [r for r in checked if r.met]
    if met:
        lines.append("Met goals (margin to the limit):")
        for r in met:
            lines.append(f"  - {_goal_line(r)}")
    lines.append("DVH table (Gy):")
    lines.append(f"  {'structure':<16}{'mean':>7}{'max':>7}{'D98':>7}{'D95':>7}{'D50':>7}{'D2':>7}")
    for s, row in table.items():
        lines.append(
            f"  {s:<16}{row['mean']:7.1f}{row['max']:7.1f}{row['D98']:7.1f}{row['D95']:7.1f}{row['D50']:7.1f}{row['D2']:7.1f}"
        )
    lines.append(tradeoff(result, checked))
    return "\n".join(lines)


def _goal_line(r: GoalResult) -> str:
    g = r.goal
    unit = " Gy" if g.unit == "Gy" else g.unit
    gap = abs(r.measured - g.value) if math.isfinite(r.measured) else math.nan
    if r.met:
        how = f"margin {gap:.1f}{unit}"
    else:
        how = f"{'short' if g.comparator in ('>', '>=') else 'over'} by {gap:.1f}{unit}"
    return f"{g.structure} {g.metric} = {r.measured:.1f}{unit} (goal {g.comparator} {g.value:g}{unit}): {how}"


def tradeoff(result: Plan, checked: list[GoalResult]) -> str:
    """One or two sentences on what pulls against what in this plan."""
    case = result.case
    target_fail = [r for r in checked if not r.met and r.goal.structure in case.targets]
    oar_fail = [r for r in checked if not r.met and r.goal.structure not in case.targets]
    overlaps = [
        f"{case.overlap_pct(t, s):.0f}% of the {t} lies inside the {s}"
        for t in case.targets
        for s in case.primary_oars
        if s in case.structures and case.overlap_pct(t, s) > 0
    ]
    where = f" ({'; '.join(overlaps)})" if overlaps else ""
    hp = result.hyperparameters
    if target_fail and oar_fail:
        return (
            "Trade-off: target coverage and organ sparing both fail; the weights pull against each other where the "
            f"target meets the organs{where}. Raising one side's weight alone will worsen the other."
        )
    if target_fail:
        organs = sorted({r.goal.structure for r in checked if r.goal.structure not in case.targets and r.met})
        return (
            f"Trade-off: the target is under-covered while the organ goals ({', '.join(organs)}) are met with margin; "
            "that margin can be spent on coverage (more target weight or a higher target dose level, or less "
            f"weight / higher dose levels on the organs near the target{where})."
        )
    if oar_fail:
        names = sorted({r.goal.structure for r in oar_fail})
        weights = ", ".join(f"{s} weight {hp[s]['weight']:g} at {hp[s]['dose_Gy']:g} Gy" for s in names if s in hp)
        return (
            f"Trade-off: the target goals are met but {', '.join(names)} goals fail ({weights}); the target has room "
            f"to give up some dose where it meets these organs{where}."
        )
    return "All goals are met; lower organ doses further only if the target goals keep their margin."
