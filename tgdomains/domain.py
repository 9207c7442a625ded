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
    """What a domain plug-in provides. Instances are domain-defined objects with an ``id: str`` attribute."""

    name: str
    # Metrics that population search keeps a Pareto front over, each "max" or "min" (e.g. {"vina": "min", "qed": "max"}).
    objectives: dict[str, str]

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

    def candidate_from_args(self, args: dict[str, Any], instance: Any) -> str:
        """The candidate `tgdomains evaluate` scores (``--candidate FILE.py``, ``--smiles``, ``--params FILE``);
        optional: without it, the domain's initial value is scored."""

    def finalize(self, value: str, instance: Any) -> dict[str, Any]:
        """Extra verdicts on the final best value for the run record (e.g. hidden tests). May return {}."""

    def strategies(self) -> dict[str, type]:
        """The domain's own strategies by name (LLM-free baselines such as a GA), beside the core's."""

    def report(self, run_dir: str, out_dir: str) -> list[str]:
        """Domain plots for `tgdomains report` (molecule grid, DVH); returns the files written."""


def domain_default(domain: Any, name: str, default: Any) -> Any:
    """A declared default of a domain (``default_iterations`` ...), or `default` when it declares none."""
    return getattr(domain, name, default)


def available_domains() -> dict[str, Callable[[], Domain]]:
    """Registered domain classes by name (entry points, so the core never imports `domains`)."""
    from importlib.metadata import entry_points

    return {ep.name: ep.load for ep in entry_points(group="tgdomains.domains")}


def get_domain(name: str) -> Domain:
    found = available_domains()
    if name not in found:
        known = ", ".join(sorted(found)) or "none (is the project installed with `pip install -e .`?)"
        raise KeyError(f"unknown domain {name!r}; registered domains: {known}")
    return found[name]()()
