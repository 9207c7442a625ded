"""Clinical goals from YAML, checked against a plan's dose.

A goal file is a mapping with a ``goals`` list (and optionally ``prescription_Gy``); each goal is a mapping with
``structure``, ``metric``, ``comparator`` and ``value`` (see ``goals/prostate.yaml``). Metrics: ``D<x>`` (Gy at x %
of the volume), ``V<x>`` (% of the volume at >= x Gy), ``mean``, ``max``, ``min`` (Gy), ``HI``, ``CI``. A file with
a mistake raises `GoalFileError` naming the file, the line and the field.

A goal file may come from someone else: it is read without following a link, up to MAX_GOAL_FILE_BYTES, as YAML
without aliases (`tgdomains.files.load_yaml`), and no message quotes more than a few dozen characters of it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from domains.radiotherapy import dvh

MAX_GOAL_FILE_BYTES = 256 << 10  # a goal file is a few hundred bytes; a thousand goals fit in under 100 KiB
MAX_GOALS = 1000
MAX_GOAL_FILE_VALUES = 20 * MAX_GOALS  # YAML values: 9 per goal
COMPARATORS = ("<", "<=", ">", ">=")
GOAL_FIELDS = ("structure", "metric", "comparator", "value")
_DOSE_AT_VOLUME = re.compile(r"^D(\d+(?:\.\d+)?)$")
_VOLUME_AT_DOSE = re.compile(r"^V(\d+(?:\.\d+)?)$")


class GoalFileError(ValueError):
    """A goal file that cannot be used; the message names the file, line and field."""


@dataclass(frozen=True)
class Goal:
    structure: str
    metric: str  # D95, V70, mean, max, min, HI, CI
    comparator: str
    value: float

    @property
    def unit(self) -> str:
        if self.metric.startswith("V"):
            return "%"
        if self.metric in ("HI", "CI"):
            return ""
        return "Gy"

    @property
    def name(self) -> str:
        """The metric key in evaluations: ``PTV_D95_Gy``, ``rectum_V70_pct``, ``PTV_HI``."""
        suffix = {"%": "_pct", "Gy": "_Gy", "": ""}[self.unit]
        return f"{self.structure}_{self.metric}{suffix}"

    def describe(self) -> str:
        unit = f" {self.unit}" if self.unit == "Gy" else self.unit
        return f"{self.structure} {self.metric} {self.comparator} {self.value:g}{unit}"

    def measure(self, structure_dose: np.ndarray, *, all_dose: np.ndarray, prescription_Gy: float) -> float:
        m = self.metric
        if m == "mean":
            return float(np.mean(structure_dose)) if structure_dose.size else math.nan
        if m == "max":
            return float(np.max(structure_dose)) if structure_dose.size else math.nan
        if m == "min":
            return float(np.min(structure_dose)) if structure_dose.size else math.nan
        if m == "HI":
            return dvh.homogeneity_index(structure_dose)
        if m == "CI":
            return dvh.conformity_index(structure_dose, all_dose, prescription_Gy)
        if m.startswith("D"):
            return dvh.dose_at_volume(structure_dose, float(m[1:]))
        return dvh.volume_at_dose(structure_dose, float(m[1:]))

    def met(self, measured: float) -> bool:
        if not math.isfinite(measured):
            return False
        return {
            "<": measured < self.value,
            "<=": measured <= self.value,
            ">": measured > self.value,
            ">=": measured >= self.value,
        }[self.comparator]

    def violation(self, measured: float) -> float:
        """How far the goal is missed, relative to its limit (0 when met); 1 for an unmeasurable value."""
        if not math.isfinite(measured):
            return 1.0
        if self.met(measured):
            return 0.0
        scale = max(abs(self.value), 1.0)
        return max(abs(measured - self.value) / scale, 1e-6)  # a strict bound hit exactly still counts a little


@dataclass(frozen=True)
class GoalSet:
    goals: tuple[Goal, ...]
    source: str  # file path or "<text>"
    prescription_Gy: float | None = None


def load_goals(source: str | Path, structures: Sequence[str] | None = None) -> GoalSet:
    """Goals from a YAML file path, or from YAML text when `source` contains a newline.

    With `structures`, every goal must name one of them. Raises `GoalFileError` on any mistake.
    """
    from tgdomains.files import UnsafeFileError, compose_yaml

    text, where = _read(source)
    try:
        data, root = compose_yaml(text, where, limit=MAX_GOAL_FILE_BYTES, max_nodes=MAX_GOAL_FILE_VALUES)
    except UnsafeFileError as exc:
        raise GoalFileError(str(exc)) from None
    if not isinstance(data, dict) or "goals" not in data:
        raise GoalFileError(f"{where}: expected a mapping with a 'goals' list at the top level")
    unknown_keys = sorted(str(k)[:30] for k in data if k not in ("goals", "prescription_Gy", "case"))
    if unknown_keys:
        raise GoalFileError(f"{where}: unknown top-level key(s) {', '.join(unknown_keys[:5])}"
                            f"{' ...' if len(unknown_keys) > 5 else ''}; allowed: goals, prescription_Gy, case")
    rx = data.get("prescription_Gy")
    if rx is not None and (not _is_number(rx) or not 0 < float(rx) < 1000):
        raise GoalFileError(f"{where}: prescription_Gy must be a number of Gy in (0, 1000), got {_short(rx)}")
    items = data["goals"]
    if not isinstance(items, list) or not items:
        raise GoalFileError(f"{where}: 'goals' must be a non-empty list of goals")
    if len(items) > MAX_GOALS:
        raise GoalFileError(f"{where}: {len(items)} goals, more than the {MAX_GOALS} a goal file may hold")
    lines = _item_lines(root)
    goals = []
    for i, item in enumerate(items):
        at = f"{where}, line {lines[i]}" if i < len(lines) else where
        goals.append(_goal(item, f"{at} (goal {i + 1})", structures))
    return GoalSet(goals=tuple(goals), source=where, prescription_Gy=float(rx) if rx is not None else None)


def _read(source: str | Path) -> tuple[str, str]:
    from tgdomains.files import UnsafeFileError, read_text

    if isinstance(source, str) and "\n" in source:
        return source, "<goals text>"
    path = Path(source)
    if not path.exists() and not path.is_symlink():
        raise GoalFileError(f"goal file {path} does not exist")
    try:
        return read_text(path, MAX_GOAL_FILE_BYTES, what="goal file"), str(path)
    except UnsafeFileError as exc:
        raise GoalFileError(str(exc)) from None
    except OSError as exc:
        raise GoalFileError(f"goal file {path} cannot be read: {exc.strerror or exc}") from None


def _short(value: Any, limit: int = 60) -> str:
    """A value for a message: its repr, cut to `limit` characters (a hostile file cannot make a message long)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _item_lines(root: Any) -> list[int]:
    """1-based line of each item of the top-level 'goals' sequence, from the YAML node tree."""
    import yaml

    if not isinstance(root, yaml.MappingNode):
        return []
    for key, value in root.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "goals" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def _is_number(x: Any) -> bool:
    try:
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(float(x))
    except OverflowError:  # an integer beyond any float
        return False


def _goal(item: Any, at: str, structures: Sequence[str] | None) -> Goal:
    if not isinstance(item, dict):
        raise GoalFileError(f"{at}: a goal must be a mapping with {', '.join(GOAL_FIELDS)}, got {_short(item)}")
    missing = [f for f in GOAL_FIELDS if f not in item]
    if missing:
        raise GoalFileError(f"{at}: missing field(s) {', '.join(missing)}")
    extra = sorted(str(k)[:30] for k in item if k not in GOAL_FIELDS)
    if extra:
        raise GoalFileError(f"{at}: unknown field(s) {', '.join(extra[:5])}{' ...' if len(extra) > 5 else ''}; "
                            f"a goal has {', '.join(GOAL_FIELDS)}")
    structure, metric, comparator, value = (item[f] for f in GOAL_FIELDS)
    if not isinstance(structure, str) or not structure:
        raise GoalFileError(f"{at}: field 'structure' must be a structure name, got {_short(structure)}")
    if structures is not None and structure not in structures:
        raise GoalFileError(f"{at}: field 'structure': unknown structure {_short(structure)}; the case has "
                            f"{', '.join(structures)}")
    metric = str(metric) if isinstance(metric, str) else metric
    if not isinstance(metric, str) or not _valid_metric(metric):
        raise GoalFileError(
            f"{at}: field 'metric': {_short(metric)} is not a metric; use D<x> (e.g. D95), V<x> (e.g. V70), mean, max, "
            "min, HI or CI"
        )
    if comparator not in COMPARATORS:
        raise GoalFileError(f"{at}: field 'comparator': {_short(comparator)} is not one of {' '.join(COMPARATORS)} "
                            "(quote it in YAML)")
    if not _is_number(value):
        raise GoalFileError(f"{at}: field 'value' must be a finite number, got {_short(value)}")
    return Goal(structure=structure, metric=metric, comparator=comparator, value=float(value))


def _valid_metric(metric: str) -> bool:
    if metric in ("mean", "max", "min", "HI", "CI"):
        return True
    match = _DOSE_AT_VOLUME.match(metric)
    if match:
        return 0.0 < float(match.group(1)) <= 100.0
    match = _VOLUME_AT_DOSE.match(metric)
    return bool(match) and math.isfinite(float(match.group(1)))


@dataclass(frozen=True)
class GoalResult:
    goal: Goal
    measured: float
    met: bool
    violation: float


def check_goals(goals: GoalSet, case: Any, dose: np.ndarray) -> list[GoalResult]:
    """Every goal measured on `dose` (per voxel row of `case`)."""
    rx = goals.prescription_Gy or case.prescription_Gy
    results = []
    for goal in goals.goals:
        if goal.structure not in case.structures:
            raise GoalFileError(f"{goals.source}: goal {goal.describe()!r} names a structure the case {case.name} lacks")
        measured = goal.measure(dose[case.structures[goal.structure]], all_dose=dose, prescription_Gy=rx)
        results.append(GoalResult(goal, measured, goal.met(measured), goal.violation(measured)))
    return results
