"""The one thing every domain evaluator returns: `Evaluation`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class Evaluation:
    """The verdict of a real tool on one candidate.

    score:   one float, higher is better (each domain documents its scale).
    metrics: plain-named numbers (``vina``, ``qed``, ``visible_pass_rate``, ``PTV_D95_Gy`` ...).
    passed:  the instance's goal is met (all visible tests pass, every clinical goal passes, ...).
    valid:   the candidate could be evaluated at all (False for a syntax error, an invalid SMILES ...).
    text:    what an LLM reads as the loss: concrete, short, numbers with units, worst problems first.
    details: anything JSON-able for reports (per-test results, DVH curves, docking poses ...).
    """

    score: float
    metrics: Mapping[str, float] = field(default_factory=dict)
    passed: bool = False
    valid: bool = True
    text: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Frozen dataclass: freeze the mappings too, so a cached Evaluation cannot be edited by a caller.
        object.__setattr__(self, "score", float(self.score))
        object.__setattr__(self, "metrics", MappingProxyType({k: float(v) for k, v in dict(self.metrics).items()}))
        object.__setattr__(self, "details", MappingProxyType(dict(self.details)))

    def __reduce__(self):  # mapping proxies cannot be pickled; evaluations cross process boundaries
        return (Evaluation, (self.score, dict(self.metrics), self.passed, self.valid, self.text, dict(self.details)))

    @classmethod
    def invalid(cls, reason: str, *, score: float = -math.inf, details: Mapping[str, Any] | None = None) -> Evaluation:
        """A candidate that could not be evaluated; `reason` becomes the loss text."""
        return cls(score=score, metrics={}, passed=False, valid=False, text=reason, details=details or {})

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": finite_or_none(self.score),
            "metrics": {k: finite_or_none(v) for k, v in self.metrics.items()},
            "passed": self.passed,
            "valid": self.valid,
            "text": self.text,
            "details": _plain(self.details),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evaluation:
        score = data.get("score")
        return cls(
            score=-math.inf if score is None else score,
            metrics={k: (math.nan if v is None else v) for k, v in data.get("metrics", {}).items()},
            passed=bool(data.get("passed", False)),
            valid=bool(data.get("valid", True)),
            text=data.get("text", ""),
            details=data.get("details", {}),
        )


def finite_or_none(x: float) -> float | None:
    """JSON has no infinities: an invalid candidate's -inf score is stored (and shown to the LLM) as null."""
    return x if math.isfinite(x) else None


def format_score(x: float | None) -> str:
    """A score for a progress line or a prompt: 4 significant digits, "invalid" for None or -inf."""
    return "invalid" if x is None or not math.isfinite(x) else f"{x:.4g}"


def _plain(obj: Any) -> Any:
    """Mapping proxies and tuples to plain JSON types."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
