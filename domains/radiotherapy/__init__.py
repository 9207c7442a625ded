"""Radiotherapy: treatment-plan hyperparameters tuned against clinical goals with textual gradients.

    from domains import radiotherapy
    case = radiotherapy.load_case("prostate-2d")           # or "prostate", "tg119", "my_case.npz"
    p = radiotherapy.plan(case, radiotherapy.default_hyperparameters(case))
    radiotherapy.dvh_metrics(p.structure_dose("PTV"))      # {"D95": ..., "D2": ..., "HI": ...}
    goals = radiotherapy.load_goals(case.default_goals, case.structure_names)
    result = radiotherapy.optimize("prostate-2d", engine=my_engine)   # tgdomains.runner.RunResult

Names are loaded on first use, so `import domains.radiotherapy` stays fast.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "Case": "cases",
    "load_case": "cases",
    "prostate_case": "cases",
    "load_npz_case": "cases",
    "save_npz_case": "cases",
    "BUILTIN_CASES": "cases",
    "plan": "planning",
    "Plan": "planning",
    "dvh_metrics": "dvh",
    "dose_at_volume": "dvh",
    "volume_at_dose": "dvh",
    "load_goals": "goals",
    "check_goals": "goals",
    "Goal": "goals",
    "GoalSet": "goals",
    "GoalFileError": "goals",
    "default_hyperparameters": "hyperparameters",
    "parse_hyperparameters": "hyperparameters",
    "HyperparameterError": "hyperparameters",
    "to_json": "hyperparameters",
    "Objective": "fluence",
    "fluence_optimize": "fluence",
    "PlanEvaluator": "evaluator",
    "evaluate_plan": "evaluator",
    "RadiotherapyDomain": "plugin",
    "Optuna": "baselines",
}

__all__ = [*_EXPORTS, "optimize"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f"domains.radiotherapy.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'domains.radiotherapy' has no attribute {name!r}")


def optimize(case: str = "prostate-2d", *, engine: Any = None, goals: str | None = None, params: str | None = None,
             strategy: str | None = None, **settings: Any) -> Any:
    """Optimize the plan hyperparameters of `case` (name or .npz path) with any strategy (default: the domain's
    `default_strategy`); returns `tgdomains.run.RunResult`. `goals` is a YAML goal file (default: the case's),
    `params` a JSON file to start from; `settings` go to `tgdomains.run.optimize` (run_dir, iterations (default
    10), budgets, examples ...).
    """
    from domains.radiotherapy.plugin import RadiotherapyDomain
    from tgdomains.run import optimize as run

    domain = RadiotherapyDomain()
    args = {"case": case, "goals": goals, "params": params}
    return run(domain, domain.load(args), engine=engine, strategy=strategy or domain.default_strategy,
               meta={"instance_args": args}, **settings)
