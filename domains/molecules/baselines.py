"""The LLM-free baseline as a strategy: the Graph GA of the `mol-ga` package (its operators, not a hand-written GA).

`tgdomains optimize molecules --strategy graph-ga --evaluation-budget 11` runs it under the same budgets, run
directory and report as the LLM strategies. Iteration 1 proposes the GA's first population beside the task's start
(the initial step): random ZINC molecules, or for lead optimization graph mutations of the lead that keep its
similarity constraint (a random ZINC molecule is not an answer there). Every later iteration is one generation: the population is the
`population` best distinct candidates so far, mol-ga samples parents from it by score quantile and makes
`offspring` children by crossover and mutation; children seen before are left out. Everything is derived from the
run's steps and an iteration seed, so a killed run resumes exactly.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from tgdomains.domain import ParseError
from tgdomains.strategies.base import Proposal, Strategy

if TYPE_CHECKING:
    from tgdomains.runview import RunView

_UNSCORABLE = -1000.0  # the GA's score for a molecule that cannot be scored: far below any docked molecule's


@dataclass
class GraphGA(Strategy):
    name: ClassVar[str] = "graph-ga"
    population: int = field(default=10, metadata={"help": "molecules kept as the GA's population",
                                                         "min": 1})
    offspring: int = field(default=5, metadata={"help": "children per generation", "min": 1})

    def check(self) -> GraphGA:
        if self.population < 1 or self.offspring < 1:
            raise ValueError("graph-ga needs population >= 1 and offspring >= 1")
        return self

    def width(self) -> int:
        return max(self.population, self.offspring)

    def propose(self, run: RunView, iteration: int, room: int | None) -> list[Proposal]:
        from mol_ga.graph_ga.gen_candidates import graph_ga_blended_generation
        from mol_ga.mol_libraries import random_zinc
        from mol_ga.sample_population import uniform_quantile_sampling

        from domains.molecules.plugin import is_lead_task

        rng = run.rng(iteration)
        seen = {s.value for s in run.steps}
        if iteration == 1 and self.population > 1:
            if is_lead_task(run.instance):
                raw = lead_mutants(run.instance.start, self.population - 1, rng,
                                   run.instance.objective.min_similarity)
                feedback = "(graph-ga: starting population from mutations of the lead)"
            else:
                raw = random_zinc(self.population - 1, rng=rng)
                feedback = "(graph-ga: starting population from ZINC)"
            values = self._new(run, raw, seen)
        else:
            scored = [(s.score if s.score is not None else _UNSCORABLE, s.value) for s in run.candidates]
            population = heapq.nlargest(self.population, scored)
            feedback = f"(graph-ga generation {iteration - 1})"
            values = []
            for _ in range(5):  # a generation of only known molecules is drawn again, so the run goes on
                samples = uniform_quantile_sampling(population, 2 * self.offspring, rng)
                values = self._new(run, sorted(graph_ga_blended_generation(samples, self.offspring, rng, None)), seen)
                if values:
                    break
        if room is not None:
            values = values[:max(0, room)]
        return [Proposal(v, run.steps[0].id if iteration == 1 else run.best.id, feedback=feedback) for v in values]

    @staticmethod
    def _new(run: RunView, smiles: list[str], seen: set[str]) -> list[str]:
        """The canonical molecules among `smiles` that the run has not seen, in order (adds them to `seen`)."""
        values = []
        for raw in smiles:
            try:
                value = run.parse(raw)
            except ParseError:
                continue
            if value not in seen:
                seen.add(value)
                values.append(value)
        return values


def lead_mutants(lead: str, count: int, rng: random.Random, min_similarity: float | None) -> list[str]:
    """Up to `count` distinct molecules made from `lead` by mol-ga's graph mutations (of the lead, or of a mutant
    already found, so the population spreads a few edits out), each at least `min_similarity` similar to the lead."""
    from mol_ga.graph_ga.gen_candidates import mutate
    from rdkit import rdBase

    from domains.molecules.chemistry import SmilesError, canonical_smiles, tanimoto

    found: list[str] = []
    for _ in range(40 * count):  # a mutation fails or repeats often on a small molecule: bounded tries
        if len(found) >= count:
            break
        with rdBase.BlockLogs():  # a reaction template that does not apply logs a warning per try
            child = mutate(rng.choice([lead, *found]), rng)
        if child is None:
            continue
        try:
            child = canonical_smiles(child)
        except SmilesError:
            continue
        if child == lead or child in found:
            continue
        if min_similarity is not None and tanimoto(child, lead) < min_similarity:
            continue
        found.append(child)
    return found
