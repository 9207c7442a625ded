"""The contract between the core and a domain plug-in, and how plug-ins are found.

A domain is a class registered in the entry-point group ``tgdomains.domains``. Candidate values are always text
(code, a canonical SMILES, plan hyperparameters as canonical JSON), so the core can store, compare and dedupe them
without knowing the domain.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tgdomains.evaluation import Evaluation

if TYPE_CHECKING:
    from tgdomains.engines.base import Engine


class ParseError(ValueError):
    """A raw LLM reply (or user input) that is not a usable candidate; the message says why, for the repair prompt."""


@dataclass
class Start:
    """What `Domain.initial` returns: the first value and how the optimizer must treat it."""

    value: str
    role_description: str
    constraints: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)  # in-context examples for the optimizer prompt


class Domain:
    """The contract between the core and a domain plug-in, with a default for every optional part. A domain
    subclasses it and writes `name`, `load`, `context`, `initial`, `parse` and `evaluate`; `domains/template.py` is
    a complete example to copy, and `tgdomains.checks.check_domain` says whether a domain keeps the contract.

    Instances are domain-defined objects with an ``id: str`` attribute (picklable: batches send them to worker
    processes). `tgdomains.run.resume` rebuilds one with `load` from the arguments run.json stores (`instance_args`
    says what they are for an instance built in Python)."""

    name: str = ""
    default_iterations: int = 10  # what a run does when it is not told how many iterations
    default_strategy: str = "chain"  # what a run uses when it is not told (the one that wins this domain's bench)

    # -- required ----------------------------------------------------------------------------------------------

    def load(self, args: dict[str, Any]) -> Any:
        """One instance from parsed CLI arguments (or the same keys from Python)."""
        raise NotImplementedError(f"{type(self).__name__}.load(args)")

    def context(self, instance: Any) -> str:
        """The task as the LLM must see it (problem statement, target, case and goals). Never hidden tests."""
        raise NotImplementedError(f"{type(self).__name__}.context(instance)")

    def initial(self, instance: Any, engine: Engine | None = None) -> Start:
        """The first candidate (may ask `engine` for a zero-shot solution)."""
        raise NotImplementedError(f"{type(self).__name__}.initial(instance, engine)")

    def parse(self, raw_text: str, instance: Any) -> str:
        """A reply's candidate, canonicalised; raises ParseError naming what is wrong."""
        raise NotImplementedError(f"{type(self).__name__}.parse(raw_text, instance)")

    def evaluate(self, value: str, instance: Any) -> Evaluation:
        """Run the real tool on `value`. Must not raise for bad candidates: return Evaluation.invalid."""
        raise NotImplementedError(f"{type(self).__name__}.evaluate(value, instance)")

    # -- optional, with defaults -------------------------------------------------------------------------------

    def add_arguments(self, parser: argparse.ArgumentParser, *, batch: bool = False) -> None:
        """CLI flags that select instances (``--problems``, ``--target``, ``--case`` ...). None by default."""

    def load_many(self, args: dict[str, Any]) -> list[Any]:
        """Every instance a batch names: by default the one instance `load` gives."""
        return [self.load(args)]

    def instance_args(self, instance: Any) -> dict[str, Any] | None:
        """The JSON-able arguments `load` rebuilds `instance` from (stored in run.json, so that `resume(run_dir)`
        needs nothing else), or None (the default) when the domain cannot say (resuming then needs ``instance=``)."""
        return None

    def objectives(self, instance: Any) -> dict[str, str]:
        """Metrics of this instance's evaluations that population search keeps a Pareto front over, each "max" or
        "min" (e.g. {"vina": "min", "qed": "max"}); the score is always added. By default only the score."""
        return {}

    def candidate_from_args(self, args: dict[str, Any], instance: Any) -> str:
        """The candidate `tgdomains evaluate` scores (``--candidate FILE.py``, ``--smiles``, ``--params FILE``). By
        default the initial value with no engine: a domain whose start needs an LLM overrides this."""
        return self.initial(instance, None).value

    def finalize(self, value: str, instance: Any) -> dict[str, Any]:
        """Extra verdicts on the final best value for the run record (e.g. hidden tests). None by default."""
        return {}

    def strategies(self) -> dict[str, type]:
        """The domain's own strategies by name (LLM-free baselines such as a GA), beside the core's."""
        return {}

    def value_format(self, instance: Any) -> Any:
        """The grammar of a value for constrained decoding (`tgdomains.grammar`); None (the default): free text."""
        return None

    def report(self, run_dir: str, out_dir: str) -> list[str]:
        """Domain plots for `tgdomains report` (molecule grid, DVH); returns the files written. None by default
        (`tgdomains report` still draws the core's)."""
        return []


def available_domains() -> dict[str, Callable[[], Domain]]:
    """Registered domain classes by name (entry points, so the core never imports `domains`)."""
    from importlib.metadata import entry_points

    return {ep.name: ep.load for ep in entry_points(group="tgdomains.domains")}


def get_domain(name: str, **settings: Any) -> Domain:
    """The registered domain `name`, constructed with `settings` (its constructor's keyword arguments)."""
    found = available_domains()
    if name not in found:
        known = ", ".join(sorted(found)) or "none (is the project installed with `pip install -e .`?)"
        raise KeyError(f"unknown domain {name!r}; registered domains: {known}")
    return found[name]()(**settings)
