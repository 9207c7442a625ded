"""The contract between the core and a domain plug-in, and how plug-ins are found.

A domain is a class registered in the entry-point group ``tgdomains.domains``. Candidate values are always text
(code, a canonical SMILES, plan hyperparameters as canonical JSON), so the core can store, compare and dedupe them
without knowing the domain.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

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


@runtime_checkable
class Domain(Protocol):
    """What the core calls on a domain plug-in. Subclass `BaseDomain`: it gives every optional method its default,
    so a new domain writes only `name`, `load`, `context`, `initial`, `parse` and `evaluate`.
    Instances are domain-defined objects with an ``id: str`` attribute (picklable: batches send them to worker
    processes). `tgdomains.run.resume` rebuilds one with `load` from the arguments run.json stores (BaseDomain's
    `instance_args` says what they are for an instance built in Python)."""

    name: str
    default_iterations: int  # what a run does when it is not told how many iterations
    default_strategy: str  # the strategy a run uses when it is not told

    def add_arguments(self, parser: argparse.ArgumentParser, *, batch: bool = False) -> None:
        """CLI flags that select instances (``--problems``, ``--target``, ``--case`` ...)."""

    def load(self, args: dict[str, Any]) -> Any:
        """One instance from parsed CLI arguments (or the same keys from Python)."""

    def load_many(self, args: dict[str, Any]) -> list[Any]:
        """Every instance a batch names."""

    def context(self, instance: Any) -> str:
        """The task as the LLM must see it (problem statement, target, case and goals). Never hidden tests."""

    def initial(self, instance: Any, engine: Engine | None = None) -> Start:
        """The first candidate (may ask `engine` for a zero-shot solution)."""

    def parse(self, raw_text: str, instance: Any) -> str:
        """A reply's candidate, canonicalised; raises ParseError naming what is wrong."""

    def evaluate(self, value: str, instance: Any) -> Evaluation:
        """Run the real tool on `value`. Must not raise for bad candidates: return Evaluation.invalid."""

    def objectives(self, instance: Any) -> dict[str, str]:
        """Metrics of this instance's evaluations that population search keeps a Pareto front over, each "max" or
        "min" (e.g. {"vina": "min", "qed": "max"}); the score is always added."""

    def candidate_from_args(self, args: dict[str, Any], instance: Any) -> str:
        """The candidate `tgdomains evaluate` scores (``--candidate FILE.py``, ``--smiles``, ``--params FILE``)."""

    def finalize(self, value: str, instance: Any) -> dict[str, Any]:
        """Extra verdicts on the final best value for the run record (e.g. hidden tests). May return {}."""

    def strategies(self) -> dict[str, type]:
        """The domain's own strategies by name (LLM-free baselines such as a GA), beside the core's."""

    def value_format(self, instance: Any) -> Any:
        """The grammar of a value for constrained decoding (`tgdomains.grammar`), or None for free text."""

    def report(self, run_dir: str, out_dir: str) -> list[str]:
        """Domain plots for `tgdomains report` (molecule grid, DVH); returns the files written."""


class BaseDomain:
    """Defaults for every optional part of the `Domain` contract. Subclass it and write the six required methods
    (`load`, `context`, `initial`, `parse`, `evaluate`, plus the class attribute `name`); `domains/template.py` is
    a complete example to copy, and `tgdomains.checks.check_domain` says whether a domain keeps the contract."""

    name: str = ""
    default_iterations: int = 10
    default_strategy: str = "chain"  # what a run uses when it is not told (the one that wins this domain's bench)

    def add_arguments(self, parser: argparse.ArgumentParser, *, batch: bool = False) -> None:
        """No flags of its own."""

    def load(self, args: dict[str, Any]) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.load(args)")

    def load_many(self, args: dict[str, Any]) -> list[Any]:
        """A batch of the one instance `load` gives."""
        return [self.load(args)]

    def instance_args(self, instance: Any) -> dict[str, Any] | None:
        """The JSON-able arguments `load` rebuilds `instance` from (stored in run.json, so that `resume(run_dir)`
        needs nothing else), or None when the instance has none (resuming it then needs ``instance=``)."""
        return None

    def context(self, instance: Any) -> str:
        raise NotImplementedError(f"{type(self).__name__}.context(instance)")

    def initial(self, instance: Any, engine: Engine | None = None) -> Start:
        raise NotImplementedError(f"{type(self).__name__}.initial(instance, engine)")

    def parse(self, raw_text: str, instance: Any) -> str:
        raise NotImplementedError(f"{type(self).__name__}.parse(raw_text, instance)")

    def evaluate(self, value: str, instance: Any) -> Evaluation:
        raise NotImplementedError(f"{type(self).__name__}.evaluate(value, instance)")

    def objectives(self, instance: Any) -> dict[str, str]:
        """Only the score."""
        return {}

    def candidate_from_args(self, args: dict[str, Any], instance: Any) -> str:
        """The initial value (with no engine: a domain whose start needs an LLM overrides this)."""
        return self.initial(instance, None).value

    def finalize(self, value: str, instance: Any) -> dict[str, Any]:
        """No extra verdicts."""
        return {}

    def strategies(self) -> dict[str, type]:
        """Only the core's."""
        return {}

    def value_format(self, instance: Any) -> Any:
        """Free text: replies are not constrained."""
        return None

    def report(self, run_dir: str, out_dir: str) -> list[str]:
        """No plots of its own (`tgdomains report` still draws the core's)."""
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
