"""An LLM-guided genetic search on mol-ga's population and operators (MolLEO-style: the LLM as one of the operators).

`tgdomains optimize molecules --strategy llm-ga --evaluation-budget 100 --llm-call-budget 20`

Iteration 1 is Graph GA's first population (random ZINC, or graph mutations of the lead for lead optimization), the
same draw as `graph-ga`'s on the same seed. Every later iteration is one generation of `offspring` children from the
`population` best distinct candidates:

- `llm_children` of them are written by the LLM: one TGD step (a single call from the parent's evaluation text:
  Vina, QED, properties, alerts) on a parent drawn by mol-ga's quantile sampling; about half are crossovers, whose
  request also shows a second parent and what it scored;
- the rest by mol-ga's graph operators (crossover and mutation), which also stand in for every LLM child that is
  unusable (no valid SMILES, a repeat) or screened out.

Every child is screened before it is docked, at no docking cost: a valid molecule, not seen in the run, meeting the
task's constraints (molecular weight, SA, PAINS, similarity to the reference) and the rule of five (at most one
Lipinski violation: the objective alone rewards long polyamine chains with QED near 0). The graph operators make
`oversample` times the children needed; those that pass are ranked by `rank` (QED, or similarity to the best) and
the top ones docked. An LLM child that was screened out is recorded as a failed step naming why, with the parent's
value, so it is never docked and a resumed run sees it.

LLM calls stay below the run's call budget: a generation asks the LLM only for as many children as can each take
their most calls (a step, a repair, two re-asks) without reaching it, so a spent budget never stops the docking
budget's generations; once it is near, the graph operators make every child. Everything is derived from the steps,
the iteration's sampler seed and the request seeds, so a killed run resumes exactly.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from domains.molecules.baselines import GraphGA
from tgdomains.domain import ParseError
from tgdomains.evaluation import format_score
from tgdomains.records import Step, StepStatus
from tgdomains.strategies.base import Proposal, Strategy
from tgdomains.strategies.tgd import tgd_child

if TYPE_CHECKING:
    from domains.molecules.evaluator import MoleculeTask
    from tgdomains.runview import RunView

_UNSCORABLE = -1000.0  # the GA's score for a molecule that cannot be scored, as in GraphGA
MAX_CALLS_PER_CHILD = 4  # one LLM child's most calls: the step, a repair, two re-asks after a repeat
MAX_LIPINSKI_VIOLATIONS = 1  # the rule of five as Lipinski stated it
RANKS = ("qed", "similarity", "none")
SCREENED = "screened out before docking"  # opens the problem of an LLM child that the screen left out
GRAPH_FEEDBACK = "(llm-ga generation {generation}: graph operators)"
MUTATION_NOTE = ("Mutation: propose one new molecule made by one or two small chemical edits of this one (add, remove "
                 "or replace an atom or group, open or close a ring) that should improve the objective.\n\n")
CROSSOVER_NOTE = ("Crossover: propose one new molecule that combines parts of this one with parts of a second molecule "
                  "from the population, {other} (score {score}; {gist}).\n\n")


@dataclass
class GuidedGA(Strategy):
    name: ClassVar[str] = "llm-ga"
    population: int = field(default=10, metadata={"help": "molecules kept as the GA's population", "min": 1})
    offspring: int = field(default=5, metadata={"help": "children per generation", "min": 1})
    llm_children: int = field(default=1, metadata={"help": "children per generation written by the LLM (one "
                                                           "call each unless repaired); the rest by graph operators"})
    crossover_share: float = field(default=0.5, metadata={"help": "share of the LLM children that are crossovers "
                                                                  "(shown a second parent)"})
    oversample: int = field(default=3, metadata={"help": "graph children made per child docked, before the screen",
                                                 "min": 1})
    rank: str = field(default="qed", metadata={"help": "how screened graph children are ranked: qed, similarity "
                                                       "(to the best) or none"})

    def check(self) -> GuidedGA:
        if self.population < 1 or self.offspring < 1 or self.oversample < 1 or self.llm_children < 0:
            raise ValueError("llm-ga needs population, offspring and oversample >= 1 and llm_children >= 0")
        if not 0 <= self.crossover_share <= 1:
            raise ValueError(f"crossover_share must lie in [0, 1], got {self.crossover_share}")
        if self.rank not in RANKS:
            raise ValueError(f"rank must be one of {', '.join(RANKS)}, got {self.rank!r}")
        return self

    def width(self) -> int:
        return max(self.population, self.offspring)

    def propose(self, run: RunView, iteration: int, room: int | None) -> list[Proposal]:
        if iteration == 1 and self.population > 1:  # Graph GA's first population, the same draw
            return GraphGA(population=self.population, offspring=self.offspring).propose(run, iteration, room)
        rng = run.rng(iteration)
        scored = [(s.score if s.score is not None else _UNSCORABLE, s.value) for s in run.candidates]
        population = heapq.nlargest(self.population, scored)
        want = self.offspring if room is None else max(0, min(self.offspring, room))
        seen = {s.value for s in run.steps}
        asked = min(self.llm_children, want)
        if room is not None:  # a failed LLM child takes a place too: near the end, only the graph operators make one
            asked = min(asked, room - want)
        llm = self._llm_children(run, iteration, population, max(0, asked), rng, seen)
        usable = [p for p in llm if p.status in (StepStatus.UPDATED, StepStatus.REPAIRED)]
        slots = want - len(usable)  # the graph operators stand in for every unusable or screened-out LLM child
        if room is not None:
            slots = min(slots, room - len(llm))  # every proposal counts against the room, a failed one too
        graph = self._graph_children(run, iteration, population, max(0, slots), rng, seen)
        return [*llm, *graph]

    # -- the LLM's children ------------------------------------------------------------------------------------

    def _llm_children(self, run: RunView, iteration: int, population: list[tuple[float, str]], count: int,
                      rng: random.Random, seen: set[str]) -> list[Proposal]:
        from mol_ga.sample_population import uniform_quantile_sampling

        count = min(count, llm_room(run))
        by_value = {s.value: s for s in run.candidates}
        slots = []
        for slot in range(count):
            first, second = uniform_quantile_sampling(population, 2, rng)
            crossover = rng.random() < self.crossover_share and second != first
            slots.append((by_value[first], by_value[second] if crossover else None, run.seed(iteration, slot)))
        children = run.map(lambda s: _llm_child(run, *s), slots, workers=1)  # one thread: replays ask in order
        return [self._screened(run, child, seen) for child in children]

    @staticmethod
    def _screened(run: RunView, child: Proposal, seen: set[str]) -> Proposal:
        """The child, or (failing the screen) a failed step with its parent's value that names what was wrong."""
        if child.status not in (StepStatus.UPDATED, StepStatus.REPAIRED):
            return child
        reason = "already proposed" if child.value in seen else screen(child.value, run.instance)
        if reason is None:
            seen.add(child.value)
            return child
        parent = run.steps[child.parent]
        return Proposal(parent.value, parent.id, feedback=child.feedback, status=StepStatus.FAILED,
                        problem=f"{SCREENED}: {child.value}: {reason}", meter=child.meter)

    # -- the graph operators' children ---------------------------------------------------------------------------

    def _graph_children(self, run: RunView, iteration: int, population: list[tuple[float, str]], count: int,
                        rng: random.Random, seen: set[str]) -> list[Proposal]:
        from mol_ga.graph_ga.gen_candidates import graph_ga_blended_generation
        from mol_ga.sample_population import uniform_quantile_sampling

        if count <= 0:
            return []
        made = count * self.oversample
        passed: list[str] = []
        for _ in range(5):  # a generation of only known or screened-out molecules is drawn again
            samples = uniform_quantile_sampling(population, 2 * made, rng)
            for raw in sorted(graph_ga_blended_generation(samples, made, rng, None)):
                try:
                    value = run.parse(raw)
                except ParseError:
                    continue
                if value not in seen and screen(value, run.instance) is None:
                    seen.add(value)
                    passed.append(value)
            if len(passed) >= count:
                break
        chosen = self._ranked(run, passed)[:count]
        seen.difference_update(set(passed) - set(chosen))  # the ones not docked may come again later
        feedback = GRAPH_FEEDBACK.format(generation=iteration - 1)
        return [Proposal(value, run.best.id, feedback=feedback) for value in chosen]

    def _ranked(self, run: RunView, values: list[str]) -> list[str]:
        from domains.molecules.chemistry import property_panel, tanimoto

        if self.rank == "qed":
            return sorted(values, key=lambda v: -property_panel(v)["qed"])  # stable: ties keep the GA's order
        if self.rank == "similarity":
            best = run.best.value
            return sorted(values, key=lambda v: -tanimoto(v, best))
        return values


def _llm_child(run: RunView, parent: Step, other: Step | None, seed: int) -> Proposal:
    """One TGD step on `parent` from its evaluation text (one call), a mutation, or a crossover shown `other`."""
    if other is None:
        note = MUTATION_NOTE
    else:
        gist = " ".join(other.evaluation.text.split())[:160]
        note = CROSSOVER_NOTE.format(other=other.value, score=format_score(other.score), gist=gist)
    return tgd_child(run, parent, feedback="", meter=run.meter(), seed=seed, momentum=0, memory=[], one_call=True,
                     note=note)


def llm_room(run: RunView) -> int:
    """How many LLM children this generation may ask for without the call budget being reached (a run stops when
    it is): each may take `MAX_CALLS_PER_CHILD` calls."""
    budget = run.config.llm_call_budget
    if budget is None:
        return 1 << 30
    spent = sum(int(s.usage.get("llm_calls", 0) + s.usage.get("cache_hits", 0)) for s in run.steps)
    return max(0, (budget - 1 - spent) // MAX_CALLS_PER_CHILD)


def screen(smiles: str, task: MoleculeTask) -> str | None:
    """Why `smiles` (canonical, valid) should not be docked for `task`, or None: the task's constraints that need
    no docking (MW, SA, PAINS, similarity to the reference) and the rule of five."""
    from domains.molecules.chemistry import SmilesError, property_panel, tanimoto

    try:
        metrics = property_panel(smiles)
    except SmilesError as error:
        return str(error)
    objective = task.objective
    if objective.reference:
        metrics["similarity_to_reference"] = tanimoto(smiles, objective.reference)
    violations = objective.violations(metrics)
    if violations:
        return violations[0]
    if metrics["lipinski_violations"] > MAX_LIPINSKI_VIOLATIONS:
        return (f"{int(metrics['lipinski_violations'])} Lipinski rule-of-five violations (MW {metrics['mw']:.0f}, "
                f"logP {metrics['logp']:.1f}, HBD {int(metrics['hbd'])}, HBA {int(metrics['hba'])})")
    return None
