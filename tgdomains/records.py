"""The run directory and what it holds: run.json (config), steps.jsonl (one `Step` per line), best.json.

A step is appended with one write() of a whole line followed by fsync, so a SIGKILL leaves either the complete line
or a torn tail; reading drops (and truncates away) a torn tail, so a resumed run loses at most the step that was
being written, and never duplicates one. When the disk refuses a write (full, failing), the partial line is cut off
again and `RecordWriteError` says so: the file keeps only complete steps and a resumed run continues from them.

A run directory may come from someone else, so reading one trusts nothing in it: every file is opened without
following a link and only when it is a regular file of bounded size (`tgdomains.files`), every line of steps.jsonl
and the keys of run.json and best.json are checked field by field (a wrong type is a `RunDirectoryError` naming the
file, the line and the field), and nothing read is executed. What the steps *claim* (a score, `passed`) is data:
`tgdomains.run` evaluates again a recorded pass before a resumed run may stop on it.
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
from tgdomains.files import MIB, UnsafeFileError, open_regular, read_bytes

MAX_JSON_BYTES = 64 * MIB  # run.json, best.json
MAX_STEPS_BYTES = 256 * MIB  # steps.jsonl: thousands of steps with long values and evaluation details


class RecordWriteError(OSError):
    """The run directory refused a write (disk full, I/O error). Everything written before it is intact."""


class RunDirectoryError(ValueError):
    """A run directory file that tgdomains cannot use (a link, a folder, damaged or tampered content); the message
    is one line naming the file, the line and the field."""


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
    elapsed_s: float = 0.0  # the run's wall time when this step was written, every start of it together

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
        """A stored step; `index` (its line number) stands in for the id of records older than ids. Every field is
        type-checked: `ValueError` names the first wrong one."""
        if not isinstance(d, Mapping):
            raise ValueError(f"a step must be a JSON object, got {_type(d)}")
        iteration, value = _field(d, "iteration", int), _field(d, "value", str)
        step_id = _field(d, "id", int, index if index is not None else iteration)
        if index is not None and step_id != index:
            raise ValueError(f"field 'id' is {step_id}, but this is step {index} (ids count the lines from 0)")
        refs = {name: _field(d, name, int, None, optional=True) for name in ("parent", "duplicate_of")}
        for name, ref in refs.items():
            if ref is not None and not 0 <= ref < step_id:
                raise ValueError(f"field {name!r} is {ref}: it must name an earlier step (0..{step_id - 1})")
        evaluation = _evaluation(d.get("evaluation"))
        status = _field(d, "status", str)
        if status not in StepStatus._value2member_map_:
            raise ValueError(f"field 'status' is {status[:40]!r}, not one of {', '.join(s.value for s in StepStatus)}")
        usage = _field(d, "usage", Mapping, {})
        for key, number in usage.items():
            _number(number, f"usage.{key}")
        feedback = _field(d, "feedback", str, "")
        return cls(id=step_id, iteration=iteration, value=value,
                   evaluation=evaluation, status=status, parent=refs["parent"], duplicate_of=refs["duplicate_of"],
                   feedback=feedback, problem=_field(d, "problem", str, ""), usage=usage,
                   eval_s=_number(d.get("eval_s", 0.0), "eval_s"), step_s=_number(d.get("step_s", 0.0), "step_s"),
                   restart=_field(d, "restart", bool, feedback.startswith(_LEGACY_RESTART_FEEDBACK)),
                   elapsed_s=_number(d.get("elapsed_s", 0.0), "elapsed_s"))


_MISSING = object()


def _field(d: Mapping[str, Any], name: str, kind: type, default: Any = _MISSING, *, optional: bool = False) -> Any:
    """d[name] when it is a `kind` (None too when `optional`); `default` when absent; else ValueError."""
    if name not in d:
        if default is _MISSING:
            raise ValueError(f"field {name!r} is missing")
        return default
    value = d[name]
    if value is None and optional:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"field {name!r} must be {_KINDS.get(kind, kind.__name__)}, got {_type(value)}")
    return value


_KINDS = {int: "an integer", str: "a string", bool: "true or false", Mapping: "an object", list: "a list"}


def _number(value: Any, name: str) -> float:
    """A finite number (not a bool), as stored; else ValueError naming the field."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"field {name!r} must be a number, got {_type(value)}")
    try:
        if not math.isfinite(float(value)):
            raise OverflowError
    except OverflowError:
        raise ValueError(f"field {name!r} must be a finite number") from None
    return value


def _evaluation(data: Any) -> Evaluation:
    """A stored evaluation, type-checked (score and metrics: finite numbers or null)."""
    if not isinstance(data, Mapping):
        raise ValueError(f"field 'evaluation' must be an object, got {_type(data)}")
    score = data.get("score")
    if score is not None:
        _number(score, "evaluation.score")
    metrics = _field(data, "metrics", Mapping, {})
    for key, number in metrics.items():
        if number is not None:
            _number(number, f"evaluation.metrics.{key}")
    for name, kind in (("passed", bool), ("valid", bool), ("text", str), ("details", Mapping)):
        if name in data:
            _field(data, name, kind)
    return Evaluation.from_dict(data)


def _type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}.get(
        type(value), type(value).__name__)


# run.json keys a resumed run or a report reads, with their types (others are kept as they are)
_CONFIG_KEYS: dict[str, type] = {"domain": str, "instance": str, "strategy": str, "config": Mapping,
                                 "strategy_settings": Mapping, "meta": Mapping, "role_description": str,
                                 "constraints": list, "examples": list, "objectives": Mapping}
_BEST_KEYS: dict[str, type] = {"id": int, "value": str, "usage": Mapping, "stop_reason": str, "strategy": str,
                               "front": list, "final": Mapping}


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
        """run.json, its known keys type-checked (`RunDirectoryError` names the first wrong one)."""
        path = self.dir / "run.json"
        config = self._read_json(path)
        if config is None:
            raise FileNotFoundError(f"{self.dir} is not a run directory (no run.json)")
        if "domain" not in config:
            raise RunDirectoryError(f"{path}: the key 'domain' is missing")
        self._check_keys(path, config, _CONFIG_KEYS)
        for name in ("constraints", "examples"):
            if not all(isinstance(item, str) for item in config.get(name, [])):
                raise RunDirectoryError(f"{path}: key {name!r} must be a list of strings")
        if "meta" in config and "instance_args" in config["meta"] and \
                not isinstance(config["meta"]["instance_args"], Mapping):
            raise RunDirectoryError(f"{path}: key 'meta.instance_args' must be an object")
        return config

    def append_step(self, step: Step) -> None:
        line = (json.dumps(step.to_dict(), ensure_ascii=False, default=_jsonable) + "\n").encode("utf-8", "backslashreplace")
        fd = self._open(self.steps_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
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
        return [self._step(d, i) for i, d in enumerate(self._complete_lines(repair))]

    def read_step_dicts(self, repair: bool = True) -> list[dict[str, Any]]:
        """steps.jsonl's complete lines as stored (for tools that read the file's JSON as is), each checked as
        `read_steps` checks it."""
        dicts = self._complete_lines(repair)
        for i, d in enumerate(dicts):
            self._step(d, i)
        return dicts

    def _step(self, d: Any, index: int) -> Step:
        try:
            return Step.from_dict(d, index)
        except (ValueError, TypeError, OverflowError) as exc:
            raise RunDirectoryError(f"{self.steps_path}, line {index + 1}: {exc}") from None

    def _complete_lines(self, repair: bool) -> list[Any]:
        """The JSON of every complete line; a torn tail is dropped (and with `repair` cut off the file)."""
        if not os.path.lexists(self.steps_path):
            return []
        fd = self._open(self.steps_path, os.O_RDWR if repair else os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            if size > MAX_STEPS_BYTES:
                raise RunDirectoryError(f"{self.steps_path} is {size:,} bytes, over the limit of {MAX_STEPS_BYTES:,}")
            raw = os.pread(fd, size, 0)  # a regular file: one read returns it whole
            steps, good_bytes = [], 0
            lines = raw.splitlines(keepends=True)
            for number, line in enumerate(lines, 1):
                if not line.endswith(b"\n"):
                    break
                try:
                    steps.append(json.loads(line, parse_constant=_refuse_constant))
                except (ValueError, RecursionError):  # JSONDecodeError, a bad encoding, NaN, an over-long integer
                    if number < len(lines):  # not a torn tail: cutting here would drop the complete steps after it
                        raise RunDirectoryError(f"{self.steps_path}: line {number} of {len(lines)} is not JSON (the "
                                                "file was damaged outside tgdomains); it was left as it is") from None
                    break
                good_bytes += len(line)
            if repair and good_bytes < len(raw):
                os.ftruncate(fd, good_bytes)
            return steps
        finally:
            os.close(fd)

    def write_best(self, best: dict[str, Any]) -> None:
        self._write_atomic(self.dir / "best.json", best)

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        """Another JSON file of the run directory (batch.json ...), written the same atomic way."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self._write_atomic(self.dir / name, data)

    def read_best(self) -> dict[str, Any] | None:
        """best.json (its known keys type-checked), or None when the run has not written one yet."""
        path = self.dir / "best.json"
        best = self._read_json(path)
        if best is not None:
            self._check_keys(path, best, _BEST_KEYS)
            for key, number in best.get("usage", {}).items():
                self._check(path, _number, number, f"usage.{key}")
            if "wall_s" in best:
                self._check(path, _number, best["wall_s"], "wall_s")
        return best

    def _read_json(self, path: Path) -> dict[str, Any] | None:
        """A JSON object file of the run directory (None when absent), read without following a link."""
        if not os.path.lexists(path):
            return None
        try:
            data = json.loads(read_bytes(path, MAX_JSON_BYTES, what="run directory file"),
                              parse_constant=_refuse_constant)
        except UnsafeFileError as exc:
            raise RunDirectoryError(str(exc)) from None
        except (ValueError, RecursionError) as exc:
            raise RunDirectoryError(f"{path}: not JSON ({str(exc)[:120]})") from None
        if not isinstance(data, dict):
            raise RunDirectoryError(f"{path}: expected a JSON object, got {_type(data)}")
        return data

    @staticmethod
    def _check_keys(path: Path, data: Mapping[str, Any], kinds: dict[str, type]) -> None:
        for name, kind in kinds.items():
            if name in data:
                RunRecord._check(path, _field, data, name, kind, optional=name == "strategy")

    @staticmethod
    def _check(path: Path, check: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return check(*args, **kwargs)
        except ValueError as exc:
            raise RunDirectoryError(f"{path}: {str(exc).replace('field', 'key', 1)}") from None

    def _open(self, path: Path, flags: int) -> int:
        try:
            return open_regular(path, flags, what="run directory file")
        except UnsafeFileError as exc:
            raise RunDirectoryError(str(exc)) from None

    def _write_atomic(self, path: Path, data: dict[str, Any]) -> None:
        """Write PATH.tmp, fsync, rename over PATH: a reader sees the old file or the new one, never half of one.
        The temporary file is always a new one (a leftover, or a link planted under its name, is removed first),
        and the rename replaces a link at PATH itself, never the file it points to."""
        tmp = path.with_suffix(path.suffix + ".tmp")
        text = json.dumps(data, indent=2, ensure_ascii=False, default=_jsonable)
        for where in (tmp, path):
            if os.path.isdir(where) and not os.path.islink(where):
                raise RunDirectoryError(f"run directory file {where} is a folder, not a file")
        try:
            if os.path.lexists(tmp):
                os.unlink(tmp)
            fd = self._open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            with open(fd, "w", encoding="utf-8", errors="backslashreplace") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise RecordWriteError(exc.errno, f"cannot write {path}: {exc.strerror or exc}; the steps are intact: "
                                   f"free some space (or fix the disk) and continue with --resume {self.dir}") from exc


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


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
