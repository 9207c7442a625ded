"""The ArithmeticDomain, except that scoring one chosen value SIGKILLs the process doing it, once.

The kill happens inside `evaluate`, i.e. in whatever process evaluates: a batch's evaluator worker, a Ray worker.
A marker file makes it happen once per marker, so the retried evaluation (a fresh worker) goes through.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from arithmetic_domain import ArithmeticDomain  # noqa: E402


class KillingDomain(ArithmeticDomain):
    def __init__(self, kill_on: str, marker: str | Path, always: bool = False) -> None:
        super().__init__()
        self.kill_on, self.marker, self.always = kill_on, str(marker), always

    def evaluate(self, value, instance):
        if value == self.kill_on and (self.always or not os.path.exists(self.marker)):
            Path(self.marker).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return super().evaluate(value, instance)
