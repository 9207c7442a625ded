"""The radiotherapy domain plug-in: treatment-plan hyperparameters tuned against clinical goals.

The variable is the JSON text of `hyperparameters.py` (a weight and a dose level per structure); evaluating it runs
the fluence optimizer on the case and checks the dose against the goal file (`evaluator.py`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from domains.radiotherapy.evaluator import PlanEvaluator, RadiotherapyInstance
from tgdomains.domain import Domain, ParseError, Start
from tgdomains.evaluation import Evaluation

DEFAULT_CASE = "prostate-2d"


class RadiotherapyDomain(Domain):
    name = "radiotherapy"
    default_iterations = 10
    # TPE sized to the budget: it met every goal in fewer evaluations than the LLM-guided TPE and won more paired
    # seeds at 10 and 20 evaluations (bench/quality/radiotherapy-bo.md); the chain stays one `--strategy` away
    default_strategy = "tpe"

    def __init__(self) -> None:
        # Loaded cases by specification, so that instances unpickled in a worker process load theirs once.
        self._loaded: dict[tuple[str, str], Any] = {}

    def __getstate__(self) -> dict[str, Any]:  # sent to worker processes without the loaded matrices
        return {**self.__dict__, "_loaded": {}}

    # -- instances --------------------------------------------------------------------------------------------

    def add_arguments(self, parser: argparse.ArgumentParser, *, batch: bool = False) -> None:
        if batch:
            parser.add_argument("--cases", nargs="+", default=[DEFAULT_CASE], metavar="CASE",
                                help="cases to optimize: prostate-2d, prostate, tg119 or PATH.npz (space- or comma-separated)")
        else:
            parser.add_argument("--case", default=DEFAULT_CASE,
                                help="prostate-2d (default, seconds) | prostate (3-D) | tg119 (needs pyRadPlan) | PATH.npz")
            parser.add_argument("--params", metavar="FILE.json",
                                help="hyperparameters to evaluate / start from (default: every weight 100)")
        parser.add_argument("--goals", metavar="FILE.yaml", help="clinical goals (default: the case's own goal file)")
        parser.add_argument("--examples", metavar="FILE.json",
                            help="example plans for the optimizer: a JSON list of hyperparameter objects")

    def load(self, args: dict[str, Any]) -> RadiotherapyInstance:
        """An instance from the keys ``case``, ``goals``, ``params``, ``examples`` (file paths; all optional)."""
        instance = RadiotherapyInstance(
            case_spec=str(args.get("case") or DEFAULT_CASE),
            goals_file=str(args.get("goals") or ""),
            params=_read_params(args["params"]) if args.get("params") else None,
            examples=_read_examples(args["examples"]) if args.get("examples") else [],
        )
        instance.evaluator  # noqa: B018 - load the case and goals now, so a typo fails here, not mid-run
        try:
            if instance.params is not None:
                instance.params = self.parse(instance.params, instance)
        except ParseError as exc:
            raise ValueError(f"--params {args['params']}: {exc}") from None
        try:
            instance.examples = [self.parse(e, instance) for e in instance.examples]
        except ParseError as exc:
            raise ValueError(f"--examples {args['examples']}: {exc}") from None
        return instance

    def instance_args(self, instance: RadiotherapyInstance) -> dict[str, Any]:
        """The case and goal file that `load` rebuilds `instance` from (for resume; a resumed run reads its start
        value and example plans from its own record, so `params` and `examples` are not needed again)."""
        return {"case": instance.case_spec, "goals": instance.goals_file or None}

    def load_many(self, args: dict[str, Any]) -> list[RadiotherapyInstance]:
        specs = args.get("cases") or [args.get("case") or DEFAULT_CASE]
        if isinstance(specs, str):
            specs = [specs]
        names = [s.strip() for spec in specs for s in str(spec).split(",") if s.strip()]
        return [self.load({**args, "case": name, "params": None}) for name in names]

    def candidate_from_args(self, args: dict[str, Any], instance: RadiotherapyInstance) -> str:
        """The value `tgdomains evaluate` scores: ``--params`` if given, else the default weights."""
        return instance.params if instance.params is not None else self.initial(instance).value

    # -- the variable -----------------------------------------------------------------------------------------

    def context(self, instance: RadiotherapyInstance) -> str:
        case = instance.case
        goals = instance.evaluator.goals
        unit = "cm2" if len(case.voxel_size_mm) == 2 else "cc"
        sizes = ", ".join(
            f"{s} {case.volume_cc(s) * (10 if unit == 'cm2' else 1):.1f} {unit}{' (target)' if s in case.targets else ''}"
            for s in case.structures
        )
        overlaps = [
            f"{case.overlap_pct(t, s):.1f}% of the {t} overlaps the {s} ({case.overlap_pct(s, t):.1f}% of the {s})"
            for t in case.targets
            for s in case.structures
            if s not in case.targets and s.lower() != "body" and case.overlap_pct(t, s) > 0
        ]
        return "\n".join(
            [
                f"Radiotherapy inverse planning: {case.description}.",
                f"Structures: {sizes}.",
                ("Overlaps: " + "; ".join(overlaps) + ".") if overlaps else "The target overlaps no organ at risk.",
                "A fluence optimizer (L-BFGS-B over the beamlet intensities) minimizes the weighted sum of one "
                "objective per structure, each averaged over the structure's voxels: for a target, "
                "weight x mean((dose - dose_Gy)^2); for any other structure, weight x mean(max(dose - dose_Gy, 0)^2). "
                "Only the ratios of the weights matter; dose_Gy sets where each objective starts to push. "
                "Voxels shared by a target and an organ get both pulls, so the weights decide the compromise there.",
                "Clinical goals to meet (all must pass): " + "; ".join(g.describe() for g in goals.goals) + ".",
                "D<x> is the dose (Gy) received by at least x% of the structure; V<x> the % of the structure "
                "receiving at least x Gy.",
            ]
        )

    def initial(self, instance: RadiotherapyInstance, engine: Any = None) -> Start:
        from domains.radiotherapy.hyperparameters import (
            MAX_WEIGHT,
            default_hyperparameters,
            max_dose_level,
            to_json,
        )

        case = instance.case
        value = instance.params or to_json(default_hyperparameters(case), case)
        return Start(
            value=value,
            role_description=(
                "treatment-plan hyperparameters: a JSON object giving each structure an objective weight and a "
                "dose level (Gy) for the fluence optimizer"
            ),
            constraints=[
                "Reply with one JSON object with exactly these keys: " + ", ".join(case.structures) + "; each value "
                '{"weight": w, "dose_Gy": d} and nothing else.',
                f"Every weight is a number in [0, {MAX_WEIGHT:g}] and every dose_Gy a number in "
                f"[0, {max_dose_level(case):g}]; at least one target keeps a positive weight.",
            ],
            examples=[self._example(e, instance) for e in instance.examples],
        )

    def _example(self, value: str, instance: RadiotherapyInstance) -> str:
        ev = self.evaluate(value, instance)
        failed = [g["goal"] + f" (measured {g['measured']:.1f})" for g in ev.details.get("goals", []) if not g["met"]]
        verdict = "meets every goal" if ev.passed else "fails " + "; ".join(failed)
        return f"Example plan on this case: {' '.join(value.split())} -> {verdict} (score {ev.score:.3f})."

    def value_format(self, instance: RadiotherapyInstance) -> Any:
        """The plan's JSON for constrained decoding: this case's structures, weights and dose levels in bounds."""
        from domains.radiotherapy.value_format import value_format

        return value_format(instance.case)

    def parse(self, raw_text: str, instance: RadiotherapyInstance) -> str:
        from domains.radiotherapy.hyperparameters import HyperparameterError, parse_hyperparameters, to_json

        try:
            return to_json(parse_hyperparameters(raw_text, instance.case), instance.case)
        except HyperparameterError as exc:
            raise ParseError(str(exc)) from None

    def objectives(self, instance: RadiotherapyInstance) -> dict[str, str]:
        """Coverage of the first target against the mean dose of the organ the goals guard most (the most goals;
        ties: the larger overlap with the target): the rectum on the prostate cases, the core on TG-119. Every
        metric named exists on this case."""
        case = instance.case
        target = case.targets[0]
        organs = [s for s in case.structures if s not in case.targets and s.lower() != "body"]
        objectives = {f"{target}_D95_Gy": "max"}
        if organs:
            goals = [g.structure for g in instance.evaluator.goals.goals]
            organ = max(organs, key=lambda s: (goals.count(s), case.overlap_pct(target, s), -organs.index(s)))
            objectives[f"{organ}_mean_Gy"] = "min"
        return objectives

    def evaluator(self, instance: RadiotherapyInstance) -> PlanEvaluator:
        """The instance's loaded case and goals: loaded once per specification in this process."""
        key = (instance.case_spec, instance.goals_file)
        if instance.loaded is None and key in self._loaded:
            instance.loaded = self._loaded[key]
        evaluator = instance.evaluator
        self._loaded.setdefault(key, evaluator)
        return evaluator

    def evaluate(self, value: str, instance: RadiotherapyInstance) -> Evaluation:
        try:
            return self.evaluator(instance).evaluate(value)
        except Exception as exc:  # the evaluator must not raise: a failed plan is an invalid candidate
            return Evaluation.invalid(f"planning failed: {type(exc).__name__}: {exc}")

    def finalize(self, value: str, instance: RadiotherapyInstance) -> dict[str, Any]:
        ev = self.evaluate(value, instance)
        return {
            "passed": ev.passed,
            "goals_passed": int(ev.metrics.get("goals_passed", 0)),
            "goals_total": int(ev.metrics.get("goals_total", 0)),
            "failed_goals": [g["goal"] for g in ev.details.get("goals", []) if not g["met"]],
            "case": instance.case_spec,
            "goals_file": ev.details.get("goals_file", ""),
        }

    # -- extras -----------------------------------------------------------------------------------------------

    def strategies(self) -> dict[str, type]:
        """The LLM-free baselines (`--strategy optuna`: Optuna's defaults; `tpe`: configured for the budget) and
        the LLM-guided Bayesian optimization (`guided-tpe`), run as strategies."""
        from domains.radiotherapy.baselines import TPE, Optuna
        from domains.radiotherapy.guided import GuidedTPE

        return {s.name: s for s in (Optuna, TPE, GuidedTPE)}

    def report(self, run_dir: str, out_dir: str) -> list[str]:
        from domains.radiotherapy.report import write_report

        return write_report(run_dir, out_dir)


def _read_params(path: str) -> str:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"--params {path}: no such file")
    return p.read_text()


def _read_examples(path: str) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"--examples {path}: no such file")
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"--examples {path}: not valid JSON ({exc})") from None
    if not isinstance(data, list):
        raise ValueError(f"--examples {path}: expected a JSON list of hyperparameter objects")
    return [json.dumps(item) for item in data]
