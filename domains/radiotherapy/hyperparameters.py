"""Plan hyperparameters: the optimized variable, as canonical JSON text.

One entry per structure of the case, each ``{"weight": w, "dose_Gy": D}``:

* for a target, the objective is ``w * mean((d - D)^2)``: hit D from both sides;
* for any other structure, ``w * mean(max(d - D, 0)^2)``: penalize dose above D.

Weights lie in [0, 10000] (0 switches the objective off), dose levels in [0, 2 x prescription] Gy. Every structure
must be present, with exactly these two fields.
"""

from __future__ import annotations

import json
import math
from typing import Any

from domains.radiotherapy.cases import Case
from domains.radiotherapy.fluence import Objective
from tgdomains.parsing import fenced_blocks

FIELDS = ("weight", "dose_Gy")
MAX_WEIGHT = 10_000.0
DEFAULT_WEIGHT = 100.0


class HyperparameterError(ValueError):
    """Hyperparameters that cannot be planned; the message says which structure and field is wrong and why."""


Hyperparameters = dict[str, dict[str, float]]


def default_hyperparameters(case: Case) -> Hyperparameters:
    """All weights 100, each structure at its case's default dose level."""
    return {s: {"weight": DEFAULT_WEIGHT, "dose_Gy": float(case.default_dose_levels_Gy[s])} for s in case.structures}


def max_dose_level(case: Case) -> float:
    return 2.0 * case.prescription_Gy


def to_json(hyperparameters: Hyperparameters, case: Case) -> str:
    """Canonical text: the case's structure order, fields in a fixed order, numbers rounded to 4 significant digits."""
    lines = []
    for s in case.structures:
        entry = hyperparameters[s]
        fields = ", ".join(f'"{f}": {_number(entry[f])}' for f in FIELDS)
        lines.append(f'  "{s}": {{{fields}}}')
    return "{\n" + ",\n".join(lines) + "\n}"


def _number(x: float) -> str:
    rounded = float(f"{float(x):.4g}")
    return str(int(rounded)) if rounded.is_integer() and abs(rounded) < 1e15 else repr(rounded)


def parse_hyperparameters(text: str, case: Case) -> Hyperparameters:
    """Hyperparameters from JSON text (bare, or inside a ```json fence), validated against `case`."""
    if not isinstance(text, str):
        raise HyperparameterError(f"expected JSON text, got {type(text).__name__}")
    data = _load_json(text)
    return validate(data, case)


def _load_json(text: str) -> Any:
    candidates = [text.strip()]
    candidates += [body.strip() for _, body in fenced_blocks(text)]
    first, last = text.find("{"), text.rfind("}")
    if 0 <= first < last:
        candidates.append(text[first : last + 1])
    error = "the text is empty" if not text.strip() else "no JSON object found"
    for candidate in candidates:
        if not candidate:
            continue
        try:
            return json.loads(candidate, parse_constant=_reject_constant)
        except HyperparameterError:
            raise
        except (json.JSONDecodeError, RecursionError, ValueError) as exc:
            error = f"not valid JSON ({exc})" if "{" in text else "no JSON object found in the text"
    raise HyperparameterError(f"{error}; reply with one JSON object mapping each structure to {{\"weight\": ..., \"dose_Gy\": ...}}")


def _reject_constant(name: str) -> float:
    raise HyperparameterError(f"{name} is not a number; every weight and dose level must be finite")


def validate(data: Any, case: Case) -> Hyperparameters:
    """Check structure names, fields and ranges; return plain floats."""
    names = list(case.structures)
    if not isinstance(data, dict):
        raise HyperparameterError(f"expected a JSON object keyed by structure ({', '.join(names)}), got {type(data).__name__}")
    unknown = [str(k) for k in data if k not in case.structures]
    if unknown:
        raise HyperparameterError(f"unknown structure(s) {_listed(unknown)}; the case has {', '.join(names)}")
    missing = [s for s in names if s not in data]
    if missing:
        raise HyperparameterError(f"missing structure(s) {', '.join(missing)}; give every structure a weight and dose_Gy")
    top_dose = max_dose_level(case)
    out: Hyperparameters = {}
    for s in names:
        entry = data[s]
        if not isinstance(entry, dict):
            raise HyperparameterError(f"{s}: expected {{\"weight\": ..., \"dose_Gy\": ...}}, got {entry!r:.60}")
        missing_fields = [f for f in FIELDS if f not in entry]
        if missing_fields:
            raise HyperparameterError(f"{s}: missing field(s) {', '.join(missing_fields)}")
        extra = [str(k) for k in entry if k not in FIELDS]
        if extra:
            raise HyperparameterError(f"{s}: unknown field(s) {_listed(extra, quote=False)}; allowed: {', '.join(FIELDS)}")
        values = {}
        for f, hi in (("weight", MAX_WEIGHT), ("dose_Gy", top_dose)):
            x = entry[f]
            if isinstance(x, bool) or not isinstance(x, (int, float)):
                raise HyperparameterError(f"{s}.{f}: expected a number, got {x!r:.60}")
            try:
                x = float(x)
            except OverflowError:
                raise HyperparameterError(f"{s}.{f}: the number is too large; allowed range 0..{hi:g}") from None
            if math.isnan(x) or math.isinf(x):
                raise HyperparameterError(f"{s}.{f}: {x} is not a finite number")
            if x < 0:
                raise HyperparameterError(f"{s}.{f}: {x:g} is negative; allowed range 0..{hi:g}")
            if x > hi:
                raise HyperparameterError(f"{s}.{f}: {x:g} is above the allowed maximum {hi:g}")
            values[f] = x
        out[s] = values
    if not any(out[t]["weight"] > 0 for t in case.targets):
        raise HyperparameterError(f"every target ({', '.join(case.targets)}) has weight 0: the plan would deliver no dose")
    return out


def _listed(names: list[str], *, quote: bool = True, most: int = 8) -> str:
    """Names for an error message that goes back to the LLM: at most `most`, each cut to 40 characters, so a reply
    naming 10,000 made-up structures gets a message of a few hundred characters, not one that quotes it whole."""
    shown = [repr(n[:40]) if quote else n[:40] for n in names[:most]]
    return ", ".join(shown) + (f" ... ({len(names)} in all)" if len(names) > most else "")


def objectives_for(hyperparameters: Hyperparameters, case: Case) -> list[Objective]:
    """The fluence objectives the hyperparameters stand for (see the module docstring)."""
    return [
        Objective(
            structure=s,
            kind="squared_deviation" if s in case.targets else "squared_overdose",
            weight=hp["weight"],
            dose_Gy=hp["dose_Gy"],
        )
        for s, hp in hyperparameters.items()
    ]
