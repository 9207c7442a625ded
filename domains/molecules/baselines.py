"""LLM-free baseline on the same docking budget: the Graph GA of the `mol-ga` package (not a hand-written GA)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from domains.molecules.evaluator import MoleculeEvaluator, MoleculeTask

# Score given to the GA for a molecule that cannot be scored: far below any docked molecule's score.
_UNSCORABLE = -1000.0


@dataclass
class GraphGAResult:
    best_smiles: str
    best_score: float
    docking_calls: int  # distinct molecules scored, the start population included
    history: list[dict[str, Any]] = field(default_factory=list)  # every scored molecule, in scoring order


def graph_ga(
    task: MoleculeTask, *, docking_budget: int = 11, population: int = 10, offspring: int = 5, seed: int = 0,
) -> GraphGAResult:
    """Run mol-ga's Graph GA from the task's start plus random ZINC molecules until `docking_budget` molecules
    have been scored (11 = the start + 10 TextGrad iterations). Extra offspring beyond the budget are not scored."""
    from mol_ga import default_ga
    from mol_ga.mol_libraries import random_zinc

    if docking_budget < 2 or population < 1 or offspring < 1:
        raise ValueError("graph_ga needs docking_budget >= 2, population >= 1 and offspring >= 1")
    rng = random.Random(seed)
    evaluator = MoleculeEvaluator(task)
    history: list[dict[str, Any]] = []

    def score_batch(smiles_list: list[str]) -> list[float]:
        room = max(0, docking_budget - len(history))
        evaluations = evaluator.evaluate_many(smiles_list[:room])
        scores = []
        for smiles, evaluation in zip(smiles_list[:room], evaluations, strict=True):
            history.append({"smiles": smiles, "score": evaluation.score, "valid": evaluation.valid,
                            "vina": evaluation.metrics.get("vina"), "qed": evaluation.metrics.get("qed")})
            scores.append(evaluation.score if math.isfinite(evaluation.score) else _UNSCORABLE)
        return scores + [_UNSCORABLE] * (len(smiles_list) - room)  # over budget: never docked

    start_population = [task.start, *random_zinc(min(population, docking_budget) - 1, rng=rng)]
    generations = max(0, math.ceil((docking_budget - len(start_population)) / offspring))
    default_ga(
        starting_population_smiles=start_population, scoring_function=score_batch, max_generations=generations,
        offspring_size=offspring, population_size=population, rng=rng,
    )
    scored = [h for h in history if math.isfinite(h["score"])]
    best = max(scored, key=lambda h: h["score"]) if scored else {"smiles": task.start, "score": -math.inf}
    return GraphGAResult(best["smiles"], best["score"], len(history), history)
