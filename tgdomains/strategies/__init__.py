"""Strategies: what proposes the next candidates of a run. The run loop itself is `tgdomains.run.Run`.

A strategy is a dataclass whose fields are its settings (stored in run.json, so a resumed run rebuilds it) with one
method that matters, `propose(run, iteration, room)`: the candidates of one iteration, each a `Proposal` metered on
its own `run.meter()`. `run` is a read-only `tgdomains.runview.RunView` (steps, best, setup, config, the reply
format); a strategy keeps no other state, so a run killed at any point and resumed proposes exactly what it would
have. Seeds come from `run.seed(iteration, slot)` and `run.sampler_seed(iteration)` for the same reason.

    chain        TGD on the latest candidate (the best after a worse step): feedback, then a step; a new value
                 from the best's evaluation after an edit that did not improve
    population   Pareto-front parents, `proposals` TGD children each (Pareto front search)
    zero-shot    independent solutions from the task alone, `samples` per iteration (best-of-N sampling)
    reflexion    reflect on the latest evaluation and write a corrected value (one call per iteration)

Domains add their own (LLM-free baselines: molecules' `graph-ga`, radiotherapy's `optuna`) through
`Domain.strategies()`; they run under the same budgets and write the same run directory.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from tgdomains.strategies.base import Proposal, Strategy


def core_strategies() -> dict[str, type[Strategy]]:
    from tgdomains.strategies.sampling import Reflexion, ZeroShot
    from tgdomains.strategies.tgd import Chain, Population

    return {s.name: s for s in (Chain, Population, ZeroShot, Reflexion)}


def available(domain: Any = None) -> dict[str, type[Strategy]]:
    """Every strategy name a run on `domain` can use: the core's, then the domain's own."""
    found = core_strategies()
    if domain is not None:
        found.update(domain.strategies())
    return found


def names(domain: Any = None) -> list[str]:
    return sorted(available(domain))


def setting_names(name: str, domain: Any = None) -> set[str]:
    return {f.name for f in fields(_lookup(name, domain))}


def make_strategy(name: str, domain: Any = None, **settings: Any) -> Strategy:
    """The strategy called `name` with `settings`; a setting it does not have is an error that names it."""
    cls = _lookup(name, domain)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise TypeError(f"strategy {name!r} has no setting {', '.join(unknown)}; its settings: "
                        f"{', '.join(sorted(known)) or 'none'}")
    strategy = cls(**settings)
    check = getattr(strategy, "check", None)
    return check() if callable(check) else strategy


def _lookup(name: str, domain: Any) -> type[Strategy]:
    found = available(domain)
    if name not in found:
        where = f" for the {domain.name} domain" if domain is not None else ""
        raise ValueError(f"unknown strategy {name!r}{where}; choose one of: {', '.join(sorted(found))}")
    return found[name]


__all__ = ["Proposal", "Strategy", "available", "make_strategy", "names", "setting_names"]
