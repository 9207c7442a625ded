"""The LLM-free baseline as a strategy: Bayesian optimization (Optuna's TPE sampler) of the same hyperparameters.

`tgdomains optimize radiotherapy --strategy optuna --evaluation-budget 11` searches every structure's weight
(log-uniform in [1, 10000]) and dose level (targets: [Rx, 1.08 Rx]; other structures: [0.25 Rx, Rx]) with the same
evaluator, budgets, run directory and report as the LLM strategies. The initial step is the default weights (what
the LLM loop starts from, TPE's trial 0). Each iteration rebuilds the study from the run's evaluated steps and asks
it for `trials` new plans, seeded by the iteration, so a killed run resumes exactly.

`--strategy tpe` (the domain's default) is the same search configured as a careful user would for a small budget:
random start-up trials sized to the run's evaluation budget (`startup_trials_for`) instead of Optuna's fixed 10,
which spent a 10-evaluation budget on random search, and the multivariate TPE asked for explicitly (one joint density over all
the parameters: the weights act through their ratios, so they are not independent; Optuna 5's default, not that of
earlier versions). `optuna` keeps Optuna's defaults, as the committed quality tables recorded it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from tgdomains.strategies.base import Proposal, Strategy

if TYPE_CHECKING:
    from tgdomains.runview import RunView

_UNSCORABLE = -1e9  # what TPE is told for an invalid plan: far below any real score


@dataclass
class Optuna(Strategy):
    name: ClassVar[str] = "optuna"
    feedback: ClassVar[str] = "(optuna TPE)"  # what each step's feedback says produced it
    trials: int = field(default=1, metadata={"help": "plans asked of TPE per iteration", "min": 1})

    def width(self) -> int:
        return self.trials

    def propose(self, run: RunView, iteration: int, room: int | None) -> list[Proposal]:
        n = self.trials if room is None else max(0, min(self.trials, room))
        plans = ask_tpe(run, self.sampler(run, iteration), n)
        return [Proposal(plan, run.best.id, feedback=self.feedback) for plan in plans]

    def sampler(self, run: RunView, iteration: int) -> Any:
        import optuna

        return optuna.samplers.TPESampler(seed=run.sampler_seed(iteration))


@dataclass
class TPE(Optuna):
    """TPE configured for the run's budget: see the module docstring and `startup_trials_for`."""

    name: ClassVar[str] = "tpe"
    feedback: ClassVar[str] = "(TPE)"

    def sampler(self, run: RunView, iteration: int) -> Any:
        return configured_sampler(run, iteration)


def startup_trials_for(evaluations: int) -> int:
    """Random trials before TPE models the results, for a run of `evaluations` plans: a fifth of the budget, at
    least 3 and at most Optuna's default 10 (40 evaluations: 8; 10: 3; 300: 10). The trials an LLM proposed, and the
    start, count among them. Checked on prostate-2d at 40 evaluations on seeds 10-14 (apart from the bench's 0-4):
    8 start-up trials met every goal on 5 of 5 seeds (median 22 evaluations), 4 or 10 on 4 of 5, and the
    independent (not multivariate) TPE with 8 on 3 of 5."""
    return max(3, min(10, evaluations // 5))


def run_budget(run: RunView) -> int:
    """The evaluations the run may make: its evaluation budget, else one per iteration and the start."""
    if run.config.evaluation_budget is not None:
        return run.config.evaluation_budget
    return (run.config.iterations or 0) + 1


def configured_sampler(run: RunView, iteration: int) -> Any:
    """The TPE sampler of `tpe` (and of the LLM-guided strategy), seeded by the iteration."""
    import optuna

    return optuna.samplers.TPESampler(seed=run.sampler_seed(iteration),
                                      n_startup_trials=startup_trials_for(run_budget(run)), multivariate=True)


def ask_tpe(run: RunView, sampler: Any, n: int, clip: bool = False) -> list[str]:
    """`n` plans (canonical JSON) from a TPE study rebuilt from every evaluated step of the run. A plan outside the
    search space (an LLM's) is skipped, or with `clip` told as the nearest point of the space."""
    import optuna

    from domains.radiotherapy.hyperparameters import to_json

    case = run.instance.case
    distributions = _distributions(case)
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # restored below: logging is process-wide
    try:
        study = optuna.create_study(direction="maximize", sampler=sampler)
        for step in run.candidates:
            params = _params(step.value, distributions, clip)
            if params is not None:
                score = step.score if step.score is not None else _UNSCORABLE
                study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, value=score))
        asked = [study.ask(distributions).params for _ in range(n)]
    finally:
        optuna.logging.set_verbosity(previous)
    plans = [{s: {"weight": p[f"{s}.weight"], "dose_Gy": p[f"{s}.dose_Gy"]} for s in case.structures}
             for p in asked]
    return [to_json(plan, case) for plan in plans]


def _distributions(case: Any) -> dict[str, Any]:
    from optuna.distributions import FloatDistribution

    rx = case.prescription_Gy
    out = {}
    for s in case.structures:
        low, high = (rx, 1.08 * rx) if s in case.targets else (0.25 * rx, rx)
        out[f"{s}.weight"] = FloatDistribution(1.0, 10_000.0, log=True)
        out[f"{s}.dose_Gy"] = FloatDistribution(low, high)
    return out


def _params(value: str, distributions: dict[str, Any], clip: bool = False) -> dict[str, float] | None:
    try:
        plan = json.loads(value)
        params = {f"{s}.{k}": float(v[k]) for s, v in plan.items() for k in ("weight", "dose_Gy")}
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    if set(params) != set(distributions):
        return None
    for name, x in params.items():
        d = distributions[name]
        if not math.isfinite(x) or (not clip and not d.low - 1e-9 <= x <= d.high + 1e-9):
            return None
        params[name] = min(max(x, d.low), d.high)
    return params
