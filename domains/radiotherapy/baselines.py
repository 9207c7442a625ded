"""The LLM-free baseline as a strategy: Bayesian optimization (Optuna's TPE sampler) of the same hyperparameters.

`tgdomains optimize radiotherapy --strategy optuna --evaluation-budget 11` searches every structure's weight
(log-uniform in [1, 10000]) and dose level (targets: [Rx, 1.08 Rx]; other structures: [0.25 Rx, Rx]) with the same
evaluator, budgets, run directory and report as the LLM strategies. The initial step is the default weights (what
the LLM loop starts from, TPE's trial 0). Each iteration rebuilds the study from the run's evaluated steps and asks
it for `trials` new plans, seeded by the iteration, so a killed run resumes exactly.
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
    trials: int = field(default=1, metadata={"help": "plans asked of TPE per iteration", "min": 1})

    def width(self) -> int:
        return self.trials

    def propose(self, run: RunView, iteration: int, room: int | None) -> list[Proposal]:
        import optuna

        from domains.radiotherapy.hyperparameters import to_json

        case = run.instance.case
        distributions = _distributions(case)
        previous = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # restored below: logging is process-wide
        try:
            sampler = optuna.samplers.TPESampler(seed=run.sampler_seed(iteration))
            study = optuna.create_study(direction="maximize", sampler=sampler)
            for step in run.candidates:
                params = _params(step.value, distributions)
                if params is not None:  # a plan outside the search space (e.g. from an LLM strategy) is skipped
                    score = step.score if step.score is not None else _UNSCORABLE
                    study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions,
                                                              value=score))
            n = self.trials if room is None else max(0, min(self.trials, room))
            asked = [study.ask(distributions).params for _ in range(n)]
        finally:
            optuna.logging.set_verbosity(previous)
        plans = [{s: {"weight": p[f"{s}.weight"], "dose_Gy": p[f"{s}.dose_Gy"]} for s in case.structures}
                 for p in asked]
        return [Proposal(to_json(plan, case), run.best.id, feedback="(optuna TPE)") for plan in plans]


def _distributions(case: Any) -> dict[str, Any]:
    from optuna.distributions import FloatDistribution

    rx = case.prescription_Gy
    out = {}
    for s in case.structures:
        low, high = (rx, 1.08 * rx) if s in case.targets else (0.25 * rx, rx)
        out[f"{s}.weight"] = FloatDistribution(1.0, 10_000.0, log=True)
        out[f"{s}.dose_Gy"] = FloatDistribution(low, high)
    return out


def _params(value: str, distributions: dict[str, Any]) -> dict[str, float] | None:
    try:
        plan = json.loads(value)
        params = {f"{s}.{k}": float(v[k]) for s, v in plan.items() for k in ("weight", "dose_Gy")}
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    if set(params) != set(distributions):
        return None
    for name, x in params.items():
        d = distributions[name]
        if not (math.isfinite(x) and d.low - 1e-9 <= x <= d.high + 1e-9):
            return None
        params[name] = min(max(x, d.low), d.high)
    return params
