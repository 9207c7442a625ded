"""argparse types for numeric flags that check the range, so a bad number is refused before anything runs.

    parser.add_argument("--iterations", type=integer(minimum=0))
    parser.add_argument("--temperature", type=number(minimum=0, maximum=2))

argparse prints the ArgumentTypeError as `error: argument --iterations: must be an integer >= 0, got -3` (exit 2).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def integer(minimum: int | None = None, maximum: int | None = None) -> Callable[[str], int]:
    """An int in [minimum, maximum] (either end open when None)."""
    return _ranged(int, "an integer", minimum, maximum)


def number(minimum: float | None = None, maximum: float | None = None) -> Callable[[str], float]:
    """A finite float in [minimum, maximum] (either end open when None)."""
    return _ranged(float, "a number", minimum, maximum)


def _ranged(kind: type, noun: str, minimum: float | None, maximum: float | None) -> Callable[[str], float]:
    if minimum is not None and maximum is not None:
        wanted = f"{noun} from {minimum} to {maximum}"
    elif minimum is not None:
        wanted = f"{noun} >= {minimum}"
    elif maximum is not None:
        wanted = f"{noun} <= {maximum}"
    else:
        wanted = noun

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}") from None
        if not math.isfinite(value) or (minimum is not None and value < minimum) or \
                (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text}")
        return value

    return parse
