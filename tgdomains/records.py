"""The run directory and what it holds: run.json (config), steps.jsonl (one `Step` per line), best.json.

A step is appended with one write() of a whole line followed by fsync, so a SIGKILL leaves either the complete line
or a torn tail; reading drops (and truncates away) a torn tail, so a resumed run loses at most the step that was
being written, and never duplicates one. When the disk refuses a write (full, failing), the partial line is cut off
again and `RecordWriteError` says so: the file keeps only complete steps and a resumed run continues from them.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from tgdomains.evaluation import Evaluation


class RecordWriteError(OSError):
    """The run directory refused a write (disk full, I/O error). Everything written before it is intact."""


class StepStatus(str, Enum):
    """How a step's value came about (stored as its plain string, so old records read the same)."""

    INITIAL = "initial"  # the run's first value
    UPDATED = "updated"  # a usable LLM reply (or a baseline's proposal)
    REPAIRED = "repaired"  # usable after one repair request
    FAILED = "failed"  # no usable reply: the parent's value is kept, `problem` says why
    UNCHANGED = "unchanged"  # a usable reply that repeated its parent's value
    DUPLICATE = "duplicate"  # a usable reply that repeated an earlier candidate: not evaluated again

    def __str__(self) -> str:
        return self.value


# steps recorded before `Step.restart` was stored (older run directories) said so only in their feedback,
# which began with this (frozen: the text those files hold, whatever the chain writes now)
_LEGACY_RESTART_FEEDBACK = "(restart from the "


@dataclass(frozen=True)
class Step:
    """One line of steps.jsonl: a candidate, where it came from, what it scored and what it cost.

    `id` is the line index; `parent` is the id of an earlier step, so the file is a family tree.
    `duplicate_of` names the earlier step whose evaluation this one reuses (the value was seen before).
    """

    id: int
    iteration: int
    value: str
    evaluation: Evaluation
    status: StepStatus
    parent: int | None = None
    duplicate_of: int | None = None
    feedback: str = ""  # what produced this value (the parent's feedback, a critique, a reflection)
    problem: str = ""  # why a reply was unusable
    usage: Mapping[str, float] = field(default_factory=dict)  # LLM usage of this step alone
    eval_s: float = 0.0
    step_s: float = 0.0
    restart: bool = False  # a new value written from scratch instead of an edit of its parent (the chain's restart)
    elapsed_s: float = 0.0  # the run's wall time when this step was written, every session of it together

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", StepStatus(self.status))
        object.__setattr__(self, "usage", MappingProxyType(dict(self.usage)))

    @property
    def evaluated(self) -> bool:
        """A distinct candidate that the evaluator scored (not a repeat of an earlier one)."""
        return self.duplicate_of is None and self.status is not StepStatus.DUPLICATE

    @property
    def score(self) -> float | None:
        """The score, None when the candidate was invalid (as stored)."""
        return self.evaluation.score if math.isfinite(self.evaluation.score) else None

    def rank(self) -> tuple:
        """Selection order: passed first, then score; ties go to the earliest step."""
        return (self.evaluation.passed, self.evaluation.score, -self.iteration, -self.id)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id, "iteration": self.iteration, "parent": self.parent, "duplicate_of": self.duplicate_of,
            "value": self.value, "evaluation": self.evaluation.to_dict(), "feedback": self.feedback,
            "status": self.status.value, "problem": self.problem, "usage": dict(self.usage),
            "eval_s": self.eval_s, "step_s": self.step_s, "elapsed_s": self.elapsed_s,
        }
        if self.restart:
            d["restart"] = True
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], index: int | None = None) -> Step:
        """A stored step; `index` (its line number) stands in for the id of records older than ids."""
        return cls(id=d.get("id", index if index is not None else d["iteration"]), iteration=d["iteration"],
                   value=d["value"], evaluation=Evaluation.from_dict(d["evaluation"]), status=d["status"],
                   parent=d.get("parent"), duplicate_of=d.get("duplicate_of"), feedback=d.get("feedback", ""),
                   problem=d.get("problem", ""), usage=d.get("usage", {}), eval_s=d.get("eval_s", 0.0),
                   step_s=d.get("step_s", 0.0),
                   restart=d.get("restart", d.get("feedback", "").startswith(_LEGACY_RESTART_FEEDBACK)),
                   elapsed_s=d.get("elapsed_s", 0.0))


class RunRecord:
    def __init__(self, run_dir: str | Path) -> None:
        self.dir = Path(run_dir)

    @property
    def steps_path(self) -> Path:
        return self.dir / "steps.jsonl"

    def exists(self) -> bool:
        return (self.dir / "run.json").exists()

    def write_config(self, config: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._write_atomic(self.dir / "run.json", config)

    def read_config(self) -> dict[str, Any]:
        return json.loads((self.dir / "run.json").read_text())

    def append_step(self, step: Step) -> None:
        line = (json.dumps(step.to_dict(), ensure_ascii=False, default=_jsonable) + "\n").encode("utf-8", "backslashreplace")
        fd = os.open(self.steps_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.lseek(fd, 0, os.SEEK_END)
            try:
                rest = memoryview(line)
                while rest:  # a nearly full disk may take part of the line
                    rest = rest[os.write(fd, rest):]
                os.fsync(fd)
            except OSError as exc:
                try:
                    os.ftruncate(fd, size)  # a partial line followed by later ones would be corruption
                except OSError:
                    pass  # then it is a torn tail, which reading cuts off
                raise RecordWriteError(exc.errno, f"cannot write step {step.id} to {self.steps_path}: "
                                       f"{exc.strerror or exc}; the {step.id} steps before it are intact: free some "
                                       f"space (or fix the disk) and continue with --resume {self.dir}") from exc
        finally:
            os.close(fd)

    def read_steps(self, repair: bool = True) -> list[Step]:
        """Every complete step; a torn last line (killed mid-write) is dropped and, with `repair`, cut off."""
        return [Step.from_dict(d, i) for i, d in enumerate(self.read_step_dicts(repair))]

    def read_step_dicts(self, repair: bool = True) -> list[dict[str, Any]]:
        """steps.jsonl's complete lines as stored (for tools that read the file's JSON as is)."""
        if not self.steps_path.exists():
            return []
        raw = self.steps_path.read_bytes()
        steps, good_bytes = [], 0
        lines = raw.splitlines(keepends=True)
        for number, line in enumerate(lines, 1):
            if not line.endswith(b"\n"):
                break
            try:
                steps.append(json.loads(line))
            except json.JSONDecodeError:
                if number < len(lines):  # not a torn tail: cutting here would drop the complete steps after it
                    raise ValueError(f"{self.steps_path}: line {number} of {len(lines)} is not JSON (the file was "
                                     "damaged outside tgdomains); it was left as it is") from None
                break
            good_bytes += len(line)
        if repair and good_bytes < len(raw):
            with open(self.steps_path, "r+b") as f:
                f.truncate(good_bytes)
        return steps

    def write_best(self, best: dict[str, Any]) -> None:
        self._write_atomic(self.dir / "best.json", best)

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        """Another JSON file of the run directory (batch.json ...), written the same atomic way."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self._write_atomic(self.dir / name, data)

    def write_file(self, name: str, data: bytes) -> None:
        """A binary file of the run directory (instance.pickle), written atomically."""
        self._replace(self.dir / name, lambda f: f.write(data), "wb")

    def read_best(self) -> dict[str, Any] | None:
        path = self.dir / "best.json"
        return json.loads(path.read_text()) if path.exists() else None

    def _write_atomic(self, path: Path, data: dict[str, Any]) -> None:
        self._replace(path, lambda f: json.dump(data, f, indent=2, ensure_ascii=False, default=_jsonable), "w")

    def _replace(self, path: Path, write: Any, mode: str) -> None:
        """Write PATH.tmp, fsync, rename over PATH: a reader sees the old file or the new one, never half of one."""
        tmp = path.with_suffix(path.suffix + ".tmp")
        try:
            with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8", "errors": "backslashreplace"})) as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise RecordWriteError(exc.errno, f"cannot write {path}: {exc.strerror or exc}; the steps are intact: "
                                   f"free some space (or fix the disk) and continue with --resume {self.dir}") from exc


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    return str(obj)
