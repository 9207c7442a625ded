"""The run directory: run.json (config), steps.jsonl (one line per evaluated candidate), best.json.

A step is appended with one write() of a whole line followed by fsync, so a SIGKILL leaves either the complete line
or a torn tail; reading drops (and truncates away) a torn tail, so a resumed run loses at most the step that was
being written, and never duplicates one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


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

    def append_step(self, step: dict[str, Any]) -> None:
        line = (json.dumps(step, ensure_ascii=False, default=_jsonable) + "\n").encode("utf-8", "backslashreplace")
        fd = os.open(self.steps_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def read_steps(self, repair: bool = True) -> list[dict[str, Any]]:
        """Every complete step; a torn last line (killed mid-write) is dropped and, with `repair`, cut off."""
        if not self.steps_path.exists():
            return []
        raw = self.steps_path.read_bytes()
        steps, good_bytes = [], 0
        for line in raw.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break
            try:
                steps.append(json.loads(line))
            except json.JSONDecodeError:
                break
            good_bytes += len(line)
        if repair and good_bytes < len(raw):
            with open(self.steps_path, "r+b") as f:
                f.truncate(good_bytes)
        return steps

    def write_best(self, best: dict[str, Any]) -> None:
        self._write_atomic(self.dir / "best.json", best)

    def read_best(self) -> dict[str, Any] | None:
        path = self.dir / "best.json"
        return json.loads(path.read_text()) if path.exists() else None

    @staticmethod
    def _write_atomic(path: Path, data: dict[str, Any]) -> None:
        tmp = path.with_suffix(path.suffix + ".tmp")
        with open(tmp, "w", encoding="utf-8", errors="backslashreplace") as f:
            json.dump(data, f, indent=2, ensure_ascii=False, default=_jsonable)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


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
