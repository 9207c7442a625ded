"""Every seed a run sends or draws with, derived in one place from the run's seed, the iteration and a slot.

A seed depends only on these numbers, never on timing or on how many calls came before, so a killed-and-resumed run
sends the same requests as one that was never killed, and recorded cassettes replay byte for byte.
"""

from __future__ import annotations

_RUN = 100_003  # run seeds far apart: run seed s uses s * _RUN + ..., so two runs never share a request seed
_SLOTS = 1_000  # requests of one iteration that have a slot (samples, population children) are slot apart
_SAMPLER = 1_000_003  # the strategies' own random draws, apart from every request seed


def request_seed(run_seed: int, iteration: int, slot: int | None = None) -> int:
    """The seed of the request a strategy sends at `iteration`: the iteration's one request (slot None: a chain
    step, a reflexion), or request `slot` of several (zero-shot samples, population children)."""
    base = run_seed * _RUN
    return base + iteration if slot is None else base + iteration * _SLOTS + slot


def sampler_seed(run_seed: int, iteration: int) -> int:
    """The seed of a strategy's random draws at `iteration` (parents, a GA's operators, a TPE sampler)."""
    return run_seed * _SAMPLER + iteration


def retry_seed(seed: int, attempt: int) -> int:
    """The seed of the `attempt`-th re-ask of a request sent with `seed` (a repeat, an unusable reply)."""
    return seed * 31 + attempt
