"""What makes one molecule better than another: the paper's Vina + (1 − QED), weights, and optional constraints.

Sign convention: the paper minimises ``objective = vina_weight * Vina + qed_weight * (1 − QED)`` (Vina in kcal/mol,
more negative binds better). Our `Evaluation.score` is higher-is-better, so

    score = −objective − constraint_penalty × (number of violated constraints)

e.g. Vina −9.0 kcal/mol and QED 0.8 give objective −8.8 and score 8.8. A user's target score is in the same units
(``target_score=9`` asks for Vina + (1 − QED) ≤ −9 with every constraint met).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Objective:
    vina_weight: float = 1.0
    qed_weight: float = 1.0
    mw_min: float | None = None  # g/mol
    mw_max: float | None = None
    sa_max: float | None = None  # SA score runs from 1 (easy to make) to 10 (very hard)
    forbid_pains: bool = False
    reference: str | None = None  # SMILES the molecule must stay similar to
    min_similarity: float | None = None  # Tanimoto (Morgan r=2) to `reference`, from 0 to 1
    constraint_penalty: float = 1.0  # subtracted from the score per violated constraint
    target_score: float | None = None  # passed when score >= this with no violation; None: never passed

    def checked(self) -> Objective:
        """This objective, or ValueError naming the bad setting."""
        for name in ("vina_weight", "qed_weight", "constraint_penalty"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.mw_min is not None and self.mw_max is not None and self.mw_min > self.mw_max:
            raise ValueError(f"MW window is empty: mw_min {self.mw_min} > mw_max {self.mw_max}")
        if self.sa_max is not None and not 1 <= self.sa_max <= 10:
            raise ValueError(f"sa_max must lie in [1, 10] (the SA score's range), got {self.sa_max}")
        if self.min_similarity is not None:
            if not 0 <= self.min_similarity <= 1:
                raise ValueError(f"min_similarity must lie in [0, 1], got {self.min_similarity}")
            if not self.reference:
                raise ValueError("min_similarity needs a reference SMILES")
        if self.target_score is not None and not math.isfinite(self.target_score):
            raise ValueError(f"target_score must be finite, got {self.target_score}")
        return self

    def value(self, vina: float, qed: float) -> float:
        """The paper's objective (lower is better)."""
        return self.vina_weight * vina + self.qed_weight * (1.0 - qed)

    def violations(self, metrics: dict[str, float]) -> list[str]:
        """Each violated constraint as one sentence with the numbers, worst first by convention of listing."""
        found = []
        mw = metrics["mw"]
        if self.mw_min is not None and mw < self.mw_min:
            found.append(f"MW {mw:.1f} g/mol is below the minimum {self.mw_min:g} g/mol")
        if self.mw_max is not None and mw > self.mw_max:
            found.append(f"MW {mw:.1f} g/mol is above the maximum {self.mw_max:g} g/mol")
        if self.sa_max is not None and metrics["sa"] > self.sa_max:
            found.append(f"SA score {metrics['sa']:.2f} is above the ceiling {self.sa_max:g} (harder to synthesize)")
        if self.forbid_pains and metrics["pains_alerts"] > 0:
            found.append(f"{int(metrics['pains_alerts'])} PAINS alert(s), and PAINS are not allowed")
        similarity = metrics.get("similarity_to_reference")
        if self.min_similarity is not None and similarity is not None and similarity < self.min_similarity:
            found.append(f"Tanimoto similarity to the reference is {similarity:.2f}, below the minimum "
                         f"{self.min_similarity:g}")
        return found

    def score(self, vina: float, qed: float, n_violations: int) -> float:
        return -self.value(vina, qed) - self.constraint_penalty * n_violations

    def describe(self) -> list[str]:
        """The objective and constraints as sentences for the task context and the optimizer's constraints."""
        lines = [f"minimise {self.vina_weight:g} × Vina score (kcal/mol) + {self.qed_weight:g} × (1 − QED)"]
        if self.mw_min is not None or self.mw_max is not None:
            low = f"{self.mw_min:g}" if self.mw_min is not None else "0"
            high = f"{self.mw_max:g}" if self.mw_max is not None else "∞"
            lines.append(f"molecular weight between {low} and {high} g/mol")
        if self.sa_max is not None:
            lines.append(f"synthetic accessibility (SA) score at most {self.sa_max:g}")
        if self.forbid_pains:
            lines.append("no PAINS substructure alerts")
        if self.min_similarity is not None:
            lines.append(f"Tanimoto similarity at least {self.min_similarity:g} to {self.reference}")
        return lines

    def to_dict(self) -> dict[str, object]:
        return asdict(self)
