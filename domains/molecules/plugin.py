"""The molecules domain as a tgdomains plug-in: CLI flags, tasks, the LLM-facing text, parse, evaluate, report."""

from __future__ import annotations

import argparse
from typing import Any

from domains.molecules.chemistry import (
    LEAD_MIN_SIMILARITY,
    LEADS,
    SmilesError,
    canonical_smiles,
    extract_smiles,
    property_panel,
    resolve_start,
)
from domains.molecules.docking import (
    BACKENDS,
    DEFAULT_BACKEND,
    DEFAULT_EXHAUSTIVENESS,
    DEFAULT_SEED,
    DEFAULT_TARGET,
    DEFAULT_TIME_LIMIT_S,
    DockingSettings,
    check_target,
)
from domains.molecules.evaluator import MoleculeEvaluator, MoleculeTask
from domains.molecules.objective import Objective
from tgdomains.argtypes import integer, number
from tgdomains.domain import Domain, ParseError, Start
from tgdomains.evaluation import Evaluation


class MoleculesDomain(Domain):
    """Optimize one SMILES for AutoDock Vina binding to a DOCKSTRING target and drug-likeness (QED)."""

    name = "molecules"
    default_iterations = 10
    # mol-ga's Graph GA beat every LLM method on every instance at equal dockings (bench/quality: mean best 8.55 and
    # 8.92 against the chain's 3.70 and 4.28 over two seeds), and needs no LLM
    default_strategy = "graph-ga"

    def __init__(self) -> None:
        self._pool = None  # docking worker processes, started on the first docking and shared by every evaluation

    def __getstate__(self) -> dict[str, Any]:  # a copy in another process starts its own workers
        return {**self.__dict__, "_pool": None}

    def _workers(self):
        if self._pool is None:
            from domains.molecules.worker_pool import WorkerPool

            self._pool = WorkerPool()
        return self._pool

    def objectives(self, instance: MoleculeTask) -> dict[str, str]:
        return {"vina": "min", "qed": "max"}

    def add_arguments(self, parser: argparse.ArgumentParser, *, batch: bool = False) -> None:
        group = parser.add_argument_group("molecules")
        if batch:
            group.add_argument("--targets", default=DEFAULT_TARGET,
                               help="comma-separated DOCKSTRING targets (default %(default)s)")
            group.add_argument("--starts", default="benzene",
                               help="comma-separated starts: acetamide, pentane, benzene, a lead "
                                    f"({', '.join(LEADS)}) or SMILES (default %(default)s)")
        else:
            group.add_argument("--target", default=DEFAULT_TARGET, help="DOCKSTRING target (default %(default)s)")
            group.add_argument("--start", default="benzene",
                               help=f"start molecule: acetamide, pentane, benzene, a lead ({', '.join(LEADS)}) or "
                                    "any SMILES (default %(default)s)")
            group.add_argument("--smiles", default=None, help="the molecule `evaluate` scores (default: the start)")
        group.add_argument("--backend", choices=BACKENDS, default=DEFAULT_BACKEND,
                           help="docking backend (default %(default)s, the published pipeline)")
        group.add_argument("--exhaustiveness", type=integer(1, 64), default=DEFAULT_EXHAUSTIVENESS,
                           help="Vina search effort (default %(default)s, as published)")
        group.add_argument("--docking-seed", type=integer(), default=DEFAULT_SEED,
                           help="seed for 3D embedding and the Vina search (default %(default)s, dockstring's)")
        group.add_argument("--target-score", type=number(), default=None,
                           help="stop when score = −(Vina + (1 − QED)) reaches this, e.g. 9 (default: never)")
        group.add_argument("--docking-cache", default=None,
                           help="docking cache directory (default $TGDOMAINS_CACHE_DIR/docking, i.e. ~/.cache/tgdomains/docking)")
        group.add_argument("--docking-workers", type=integer(1), default=None, help="docking processes (default: CPU cores)")
        group.add_argument("--docking-time-limit", type=number(1), default=DEFAULT_TIME_LIMIT_S, metavar="SECONDS",
                           help="stop one molecule's docking after this long and score it invalid (default %(default)g)")
        group.add_argument("--vina-weight", type=number(0), default=1.0, help="weight of the Vina term (default 1)")
        group.add_argument("--qed-weight", type=number(0), default=1.0, help="weight of the 1 − QED term (default 1)")
        group.add_argument("--mw-min", type=number(0), default=None, help="constraint: lowest molecular weight, g/mol")
        group.add_argument("--mw-max", type=number(0), default=None, help="constraint: highest molecular weight, g/mol")
        group.add_argument("--sa-max", type=number(1, 10), default=None, help="constraint: highest SA score (1-10)")
        group.add_argument("--no-pains", action="store_true", help="constraint: no PAINS alerts")
        group.add_argument("--reference", default=None, help="constraint: SMILES the molecule must stay similar to")
        group.add_argument("--min-similarity", type=number(0, 1), default=None,
                           help="constraint: lowest Tanimoto similarity to --reference")
        group.add_argument("--lead", action="store_true",
                           help="lead optimization: improve the start and stay similar to it (--reference defaults to "
                                f"the start, --min-similarity to {LEAD_MIN_SIMILARITY:g}); on for a named lead")

    def load(self, args: dict[str, Any]) -> MoleculeTask:
        return self._task(args, args.get("target", DEFAULT_TARGET), args.get("start", "benzene"))

    def load_many(self, args: dict[str, Any]) -> list[MoleculeTask]:
        targets = _split(args.get("targets") or args.get("target") or DEFAULT_TARGET)
        starts = _split(args.get("starts") or args.get("start") or "benzene")
        return [self._task(args, target, start) for target in targets for start in starts]

    def _task(self, args: dict[str, Any], target: str, start: str) -> MoleculeTask:
        try:
            start_smiles = resolve_start(start)
        except SmilesError as error:
            raise ValueError(f"--start {start!r} is not a usable molecule: {error}") from None
        reference, min_similarity = args.get("reference"), args.get("min_similarity")
        if args.get("lead") or start.strip().lower() in LEADS:  # lead optimization: stay close to the lead
            reference = reference or start_smiles
            min_similarity = LEAD_MIN_SIMILARITY if min_similarity is None else min_similarity
        if reference:
            try:
                reference = canonical_smiles(reference)
            except SmilesError as error:
                raise ValueError(f"--reference {reference!r} is not a usable molecule: {error}") from None
        objective = Objective(
            vina_weight=args.get("vina_weight", 1.0), qed_weight=args.get("qed_weight", 1.0),
            mw_min=args.get("mw_min"), mw_max=args.get("mw_max"), sa_max=args.get("sa_max"),
            forbid_pains=bool(args.get("no_pains", False)), reference=reference,
            min_similarity=min_similarity, target_score=args.get("target_score"),
        ).checked()
        docking = DockingSettings(
            backend=args.get("backend", DEFAULT_BACKEND), exhaustiveness=args.get("exhaustiveness", DEFAULT_EXHAUSTIVENESS),
            seed=args.get("docking_seed", DEFAULT_SEED), cache_dir=args.get("docking_cache"),
            workers=args.get("docking_workers"), time_limit_s=args.get("docking_time_limit", DEFAULT_TIME_LIMIT_S),
        ).checked()
        return MoleculeTask(target=check_target(target), start=start_smiles, objective=objective, docking=docking,
                            smiles=args.get("smiles"))

    def instance_args(self, instance: MoleculeTask) -> dict[str, Any] | None:
        """The keys `load` rebuilds `instance` from (stored in run.json for resume); None for a task built in Python
        with a setting `load` has no key for."""
        objective, docking = instance.objective, instance.docking
        if objective.constraint_penalty != Objective().constraint_penalty or not docking.use_cache:
            return None
        return {"target": instance.target, "start": instance.start, "backend": docking.backend,
                "exhaustiveness": docking.exhaustiveness, "docking_seed": docking.seed,
                "docking_cache": docking.cache_dir, "docking_workers": docking.workers,
                "docking_time_limit": docking.time_limit_s, "vina_weight": objective.vina_weight,
                "qed_weight": objective.qed_weight, "mw_min": objective.mw_min, "mw_max": objective.mw_max,
                "sa_max": objective.sa_max, "no_pains": objective.forbid_pains, "reference": objective.reference,
                "min_similarity": objective.min_similarity, "target_score": objective.target_score}

    def candidate_from_args(self, args: dict[str, Any], instance: MoleculeTask) -> str:
        """The molecule `tgdomains evaluate` scores: --smiles as given (evaluate reports it if invalid)."""
        return args.get("smiles") or instance.start

    def context(self, instance: MoleculeTask) -> str:
        goals = "; ".join(instance.objective.describe())
        target_line = (f" Stop when the score −(objective) reaches {instance.objective.target_score:g}."
                       if instance.objective.target_score is not None else "")
        if is_lead_task(instance):
            return (
                f"Lead optimization: improve the lead molecule {instance.start}, written as SMILES, for binding the "
                f"protein target {instance.target} (a DOCKSTRING target, scored by AutoDock Vina docking into its "
                f"binding pocket) and drug-likeness (QED), while keeping it similar to the lead. Goals: {goals}."
                f"{target_line} Only the elements C, N, O, S, P, F, Cl, Br, I (and H) are allowed; one connected "
                f"molecule, at most 70 heavy atoms."
            )
        return (
            f"Design a small drug-like molecule, written as one SMILES string, that binds the protein target "
            f"{instance.target} (a DOCKSTRING target, scored by AutoDock Vina docking into its binding pocket) and is "
            f"drug-like (QED). Goals: {goals}.{target_line} Only the elements C, N, O, S, P, F, Cl, Br, I (and H) "
            f"are allowed; one connected molecule, at most 70 heavy atoms. The starting molecule was {instance.start}."
        )

    def initial(self, instance: MoleculeTask, engine: Any = None) -> Start:
        return Start(
            value=instance.start,
            role_description=f"a SMILES string of a drug-like small molecule to be docked into {instance.target}",
            constraints=[
                "The value must be exactly one valid SMILES string of a single connected molecule.",
                *[f"Goal: {line}." for line in instance.objective.describe()[1:]],
            ],
        )

    def value_format(self, instance: MoleculeTask) -> Any:
        """One SMILES line for constrained decoding (bracket atoms outside the organic subset, no bare H)."""
        from domains.molecules.value_format import value_format

        return value_format()

    def parse(self, raw_text: str, instance: MoleculeTask) -> str:
        try:
            return canonical_smiles(extract_smiles(raw_text))
        except SmilesError as error:
            raise ParseError(str(error)) from None

    def evaluator(self, instance: MoleculeTask) -> MoleculeEvaluator:
        """An evaluator for the task, docking on the domain's worker processes."""
        return MoleculeEvaluator(instance, pool=self._workers())

    def evaluate(self, value: str, instance: MoleculeTask) -> Evaluation:
        return self.evaluator(instance).evaluate(value)

    def finalize(self, value: str, instance: MoleculeTask) -> dict[str, Any]:
        try:
            return {"smiles": canonical_smiles(value), "properties": property_panel(value)}
        except SmilesError as error:
            return {"smiles": value, "error": str(error)}

    def strategies(self) -> dict[str, type]:
        """The LLM-free baseline (`--strategy graph-ga`) and the LLM-guided GA on its operators (`--strategy llm-ga`)."""
        from domains.molecules.baselines import GraphGA
        from domains.molecules.guided_ga import GuidedGA

        return {GraphGA.name: GraphGA, GuidedGA.name: GuidedGA}

    def report(self, run_dir: str, out_dir: str) -> list[str]:
        from domains.molecules.report import write_report

        return write_report(run_dir, out_dir)


def is_lead_task(instance: MoleculeTask) -> bool:
    """Whether `instance` is lead optimization: its similarity constraint is to its own start."""
    objective = getattr(instance, "objective", None)
    return (objective is not None and objective.min_similarity is not None
            and objective.reference == getattr(instance, "start", None))


def _split(text: str) -> list[str]:
    return [part.strip() for part in str(text).split(",") if part.strip()]
