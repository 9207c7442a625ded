"""The LLM-free baseline: Bayesian optimization (Optuna's TPE sampler) of the same hyperparameters.

It searches every structure's weight (log-uniform in [1, 10000]) and dose level (targets: [Rx, 1.08 Rx]; other
structures: [0.25 Rx, Rx]), scores each trial with the same evaluator as the LLM loop, starts from the same default
weights (trial 0) and stops when every goal passes or after `n_trials` evaluations: 11 by default, the budget of
the LLM loop (the initial value plus 10 iterations).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tgdomains.evaluation import Evaluation


@dataclass
class BaselineResult:
    best_value: str
    best_evaluation: Evaluation
    history: list[dict[str, Any]] = field(default_factory=list)  # per trial: value, score, passed, goals_passed

    @property
    def evaluations(self) -> int:
        return len(self.history)


def optuna_search(instance: Any, *, n_trials: int = 11, seed: int = 0, goals: str | None = None) -> BaselineResult:
    """TPE search on `instance` (a `RadiotherapyInstance`, or a case name / .npz path with optional `goals` file)."""
    import optuna

    from domains.radiotherapy.hyperparameters import default_hyperparameters, to_json
    from domains.radiotherapy.plugin import RadiotherapyDomain, RadiotherapyInstance

    if n_trials < 1:
        raise ValueError(f"n_trials must be at least 1, got {n_trials}")
    domain = RadiotherapyDomain()
    if not isinstance(instance, RadiotherapyInstance):
        instance = domain.load({"case": str(instance), "goals": goals})
    case = instance.case
    rx = case.prescription_Gy
    start = default_hyperparameters(case)

    def suggest(trial: optuna.Trial) -> dict[str, dict[str, float]]:
        hp = {}
        for s in case.structures:
            low, high = (rx, 1.08 * rx) if s in case.targets else (0.25 * rx, rx)
            hp[s] = {
                "weight": trial.suggest_float(f"{s}.weight", 1.0, 10_000.0, log=True),
                "dose_Gy": trial.suggest_float(f"{s}.dose_Gy", low, high),
            }
        return hp

    history: list[dict[str, Any]] = []
    best: tuple[str, Evaluation] | None = None

    def objective(trial: optuna.Trial) -> float:
        nonlocal best
        value = to_json(suggest(trial), case)
        ev = domain.evaluate(value, instance)
        history.append({"trial": trial.number, "value": value, "score": ev.score, "passed": ev.passed,
                        "goals_passed": ev.metrics.get("goals_passed", 0.0)})
        if best is None or ev.better_than(best[1]):
            best = (value, ev)
        if ev.passed:
            trial.study.stop()
        return ev.score if math.isfinite(ev.score) else -1e9

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.enqueue_trial(
        {f"{s}.{f}": start[s][f] for s in case.structures for f in ("weight", "dose_Gy")}, skip_if_exists=True
    )
    study.optimize(objective, n_trials=n_trials)
    assert best is not None
    return BaselineResult(best_value=best[0], best_evaluation=best[1], history=history)
