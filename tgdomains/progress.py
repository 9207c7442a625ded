"""What a user sees while a run works: a live status line during every LLM call, and how long the rest may take.

On a terminal one status line, redrawn in place (rich), says what is being asked (feedback, step, repair, sample,
restart; iteration and proposal), the prompt tokens processed, the tokens generated, tokens per second and the
call's elapsed time, and, once an iteration is done, the run's elapsed time and an estimate of the time left under
its budgets. Elsewhere (CI, a log file) the same status comes as a plain line every `interval_s` seconds in which
nothing else was printed. A batch gets a progress bar (`BatchProgress`).

A run owns one `RunProgress`, made by `run_progress(progress)` from `optimize`'s `progress` argument, and hands it
to the engine of each proposal as a call watcher: nothing here is global.
"""

from __future__ import annotations

import string
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import IO, TYPE_CHECKING, Any, Protocol

from tgdomains import prompts

if TYPE_CHECKING:
    from tgdomains.engines.base import Completion, Request, TokenProgress
    from tgdomains.engines.budget import CallWatcher
    from tgdomains.records import Step

STATUS_INTERVAL_S = 15.0  # a plain status line at most this often when the output is not a terminal

# What each prompt of tgdomains.prompts asks, in the words the status line uses.
KIND_OF_PROMPT = {
    "backward_evaluation": "feedback", "backward_llm_call": "feedback", "backward_function": "feedback",
    "backward_aggregate": "feedback", "text_loss": "feedback", "aggregate": "feedback",
    "tgd_step": "step", "one_call_step": "step", "repair": "repair",
    "solve": "sample", "reflect": "sample", "restart": "restart", "fresh_value": "restart",
}
_RE_ASK_NOTES = (prompts.REPEATED_NOTE, prompts.CUT_OFF_NOTE)


@lru_cache(maxsize=1)
def _prompt_literals() -> list[tuple[str, str, list[str]]]:
    """(kind, system text, the fixed pieces of the user template) of every prompt the core sends."""
    out = []
    for prompt in prompts.ALL:
        pieces = [text for text, _, _, _ in string.Formatter().parse(prompt.user) if len(text.strip()) >= 8]
        out.append((KIND_OF_PROMPT.get(prompt.name, prompt.name), prompt.system, pieces))
    return out


def _fixed_prefix(template: str) -> str:
    return next(iter(string.Formatter().parse(template)))[0]


def request_kind(request: Request) -> str:
    """What a request asks ("feedback", "step", "repair", "sample", "restart"; "re-ask" appended to a request asked
    again), told from the core prompt it was built from; "request" for any other (a domain's own)."""
    messages = dict(request.messages)
    system, user = messages.get("system", ""), request.messages[-1][1] if request.messages else ""
    for kind, prompt_system, pieces in _prompt_literals():
        if system != prompt_system:
            continue
        at = 0
        for piece in pieces:
            at = user.find(piece, at)
            if at < 0:
                break
            at += len(piece)
        else:
            again = any(_fixed_prefix(note).strip() and _fixed_prefix(note) in user for note in _RE_ASK_NOTES)
            return f"{kind} re-ask" if again else kind
    return "request"


def duration(seconds: float) -> str:
    """42s, 4m12s, 1h05m."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class RunView(Protocol):
    """What the estimate reads of a run (tgdomains.run.Run)."""

    config: Any  # RunConfig: iterations and budgets
    steps: list[Step]
    engine: Any  # RunEngine: its usage meter

    def elapsed(self) -> float: ...


def time_left(run: RunView) -> float | None:
    """At most how many seconds the run may still take: each budget's remainder at the pace of the iterations done so
    far (iterations, LLM calls, tokens, evaluations per iteration; the time budget as it is). None before the first
    iteration is done. The run may stop sooner: a candidate that passes ends it."""
    last = run.steps[-1]
    done = last.iteration
    if done < 1:
        return None
    pace = max(0.0, last.elapsed_s - run.steps[0].elapsed_s) / done  # seconds per iteration
    cfg = run.config
    left = [max(0, (cfg.iterations or done) - done) * pace]
    if cfg.time_budget_s is not None:
        left.append(max(0.0, cfg.time_budget_s - run.elapsed()))
    usage = run.engine.usage
    evaluations = sum(1 for s in run.steps if s.evaluated)
    # (budget, spent in all, spent by the iterations): the start's evaluation is not an iteration's
    spent = [(cfg.llm_call_budget, usage.calls + usage.cache_hits, usage.calls + usage.cache_hits),
             (cfg.token_budget, usage.prompt_tokens + usage.completion_tokens,
              usage.prompt_tokens + usage.completion_tokens),
             (cfg.evaluation_budget, evaluations, evaluations - sum(1 for s in run.steps if s.iteration == 0))]
    for budget, used, by_iterations in spent:
        if budget is not None and by_iterations > 0:
            left.append(max(0.0, budget - used) / (by_iterations / done) * pace)
    return min(left)


@dataclass
class LiveCall:
    """One LLM call in flight, as its progress reports come in."""

    kind: str
    iteration: int
    iterations: int | None
    proposal: int
    started: float  # time.monotonic()
    prompt_done: int = 0
    prompt_total: int | None = None
    generated: int = 0
    decode_from: tuple[float, int] | None = None  # (when, tokens generated then) at the first report of a token

    def update(self, progress: TokenProgress, now: float) -> None:
        self.prompt_done, self.prompt_total = progress.prompt_done, progress.prompt_total
        if progress.generated > 0 and self.decode_from is None:
            self.decode_from = (now, progress.generated)
        self.generated = progress.generated

    def tokens_per_s(self, now: float) -> float | None:
        """Generation speed since the first reported token (None until there are two reports to go by)."""
        if self.decode_from is None or now - self.decode_from[0] < 0.5 or self.generated <= self.decode_from[1]:
            return None
        return (self.generated - self.decode_from[1]) / (now - self.decode_from[0])

    def describe(self, now: float) -> str:
        """e.g. `step (iter 3/10, proposal 2): prompt 812/1204 tokens, 37 generated, 4.3 tok/s, 21s`."""
        where = "start" if self.iteration == 0 else \
            f"iter {self.iteration}/{self.iterations}" if self.iterations else f"iter {self.iteration}"
        if self.proposal > 1:
            where += f", proposal {self.proposal}"
        parts = []
        if self.prompt_total:
            parts.append(f"prompt {self.prompt_done}/{self.prompt_total} tokens")
        if self.generated or self.decode_from is not None:
            parts.append(f"{self.generated} generated")
        speed = self.tokens_per_s(now)
        if speed is not None:
            parts.append(f"{speed:.1f} tok/s")
        parts.append(duration(now - self.started))
        return f"{self.kind} ({where}): {', '.join(parts)}"


class RunProgress:
    """What a run reports as it goes. This one prints the run's lines through `say` (None: nothing) and follows no
    calls; `LiveProgress` adds the status of the calls in flight."""

    def __init__(self, say: Callable[[str], None] | None = None) -> None:
        self._say = say

    def line(self, text: str) -> None:
        """One of the run's own lines (a step, the stop)."""
        if self._say is not None:
            self._say(text)

    def watcher(self, iteration: int, proposal: int, iterations: int | None) -> CallWatcher | None:
        """What the engine of one proposal tells of its calls; None: nothing is followed (engines do not stream)."""
        return None

    def iteration_done(self, run: RunView) -> None:
        """Called after each iteration's steps are written."""

    def close(self) -> None:
        """The run ended: leave the output as plain lines."""


class _Watch:
    """One call as LiveProgress follows it (given to the engine as the call's progress callback)."""

    def __init__(self, owner: LiveProgress, call: LiveCall) -> None:
        self.owner, self.call = owner, call

    def update(self, progress: TokenProgress) -> None:
        with self.owner.lock:
            self.call.update(progress, time.monotonic())

    def finish(self, completion: Completion | None) -> None:
        self.owner.finished(self, completion)


class LiveProgress(RunProgress):
    """Follows the calls in flight and the run's pace; `status()` is the one line that tells them."""

    def __init__(self, say: Callable[[str], None] | None = None) -> None:
        super().__init__(say)
        self.lock = threading.Lock()
        self.calls: list[_Watch] = []
        self.last_call = ""  # what the last finished call did, shown while no call is in flight
        self.run_line = ""  # elapsed and time left, as of the last iteration
        self._run_elapsed: tuple[float, float] | None = None  # (run elapsed, monotonic time) at the last iteration
        self._left: tuple[float, float] | None = None  # (time left, monotonic time) as estimated then

    def watcher(self, iteration: int, proposal: int, iterations: int | None) -> CallWatcher:
        def watch(request: Request) -> _Watch:
            call = _Watch(self, LiveCall(request_kind(request), iteration, iterations, proposal, time.monotonic()))
            with self.lock:
                self.calls.append(call)
            return call

        return watch

    def finished(self, watch: _Watch, completion: Completion | None) -> None:
        now = time.monotonic()
        with self.lock:
            if watch in self.calls:
                self.calls.remove(watch)
            call = watch.call
            if completion is None:
                self.last_call = f"last call: {call.kind} failed after {duration(now - call.started)}"
            elif completion.cached:
                self.last_call = f"last call: {call.kind} from the cache"
            else:
                u = completion.usage
                self.last_call = (f"last call: {call.kind}, {u.prompt_tokens} prompt + {u.completion_tokens} "
                                  f"generated tokens in {duration(now - call.started)}")

    def iteration_done(self, run: RunView) -> None:
        left = time_left(run)
        with self.lock:
            self._run_elapsed = (run.elapsed(), time.monotonic())
            self._left = (left, time.monotonic()) if left is not None else None

    def status(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        with self.lock:
            if self.calls:
                text = self.calls[0].call.describe(now)
                if len(self.calls) > 1:
                    text += f" (+{len(self.calls) - 1} more call{'s' if len(self.calls) > 2 else ''} in flight)"
            else:
                text = self.last_call or "working"
            if self._run_elapsed is not None:
                elapsed = self._run_elapsed[0] + now - self._run_elapsed[1]
                text += f" | run {duration(elapsed)}"
                if self._left is not None:
                    text += f", up to ~{duration(max(0.0, self._left[0] - (now - self._left[1])))} left"
        return text


class TerminalProgress(LiveProgress):
    """The status as one line redrawn in place under the run's lines (rich.live), on a terminal."""

    def __init__(self, console: Any) -> None:  # a rich.console.Console
        super().__init__()
        self.console = console
        self._live: Any = None
        self._spinner: Any = None

    def _ensure_live(self) -> None:
        if self._live is None:
            from rich.live import Live
            from rich.spinner import Spinner

            self._spinner = Spinner("dots")
            # stderr redirected: a warning written meanwhile prints above the status line, not into it
            self._live = Live(console=self.console, get_renderable=self._render, refresh_per_second=4,
                              transient=True, redirect_stdout=False, redirect_stderr=True)
            self._live.start()

    def _render(self) -> Any:
        from rich.table import Table
        from rich.text import Text

        line = Table.grid(padding=(0, 1))  # the spinner, then the status cut to the terminal's width (one line)
        line.add_column(no_wrap=True, min_width=1)
        line.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
        line.add_row(self._spinner, Text(self.status(), no_wrap=True, overflow="ellipsis"))
        return line

    def line(self, text: str) -> None:
        self._ensure_live()
        self.console.print(text, markup=False, highlight=False, emoji=False, soft_wrap=True)

    def watcher(self, iteration: int, proposal: int, iterations: int | None) -> CallWatcher:
        self._ensure_live()
        return super().watcher(iteration, proposal, iterations)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


class PeriodicProgress(LiveProgress):
    """The status as a plain line (`... status`) whenever `interval_s` seconds passed with nothing printed: output
    that stays line-based for logs and CI."""

    def __init__(self, stream: IO[str], interval_s: float = STATUS_INTERVAL_S) -> None:
        super().__init__()
        self.stream, self.interval_s = stream, interval_s
        self._printed = time.monotonic()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._write = threading.Lock()

    def _print(self, text: str) -> None:
        with self._write:
            print(text, file=self.stream, flush=True)
            self._printed = time.monotonic()

    def line(self, text: str) -> None:
        self._start()
        self._print(text)

    def watcher(self, iteration: int, proposal: int, iterations: int | None) -> CallWatcher:
        self._start()
        return super().watcher(iteration, proposal, iterations)

    def _start(self) -> None:
        if self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="tg-progress", daemon=True)
            self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(min(1.0, self.interval_s / 4)):
            if time.monotonic() - self._printed >= self.interval_s:
                self._print(f"... {self.status()}")

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
            self._ticker = None


def console_is_live(console: Any) -> bool:
    """Whether a rich console can redraw a line in place (a terminal, and not TERM=dumb)."""
    return bool(console.is_terminal and not console.is_dumb_terminal)


def run_progress(progress: bool | Callable[[str], None] | RunProgress, stream: IO[str] | None = None) -> RunProgress:
    """The RunProgress for `optimize`'s `progress` argument: True shows everything on `stream` (stderr) — a live
    status line on a terminal, periodic plain lines elsewhere; a callable gets the run's lines only (as before
    progress was followed); False shows nothing; a RunProgress is used as it is."""
    if isinstance(progress, RunProgress):
        return progress
    if callable(progress):
        return RunProgress(progress)
    if not progress:
        return RunProgress(None)
    stream = stream or sys.stderr
    from rich.console import Console

    console = Console(file=stream)
    if console_is_live(console):
        return TerminalProgress(console)
    return PeriodicProgress(stream)


class BatchProgress:
    """A batch's progress: instances done / total, how many passed, the best score so far, time left.

    On a terminal a rich progress bar with the runs' lines printed above it; elsewhere one plain line each time an
    instance ends. `line` prints a run's line (from any thread)."""

    def __init__(self, total: int, stream: IO[str] | None = None, enabled: bool = True) -> None:
        self.total, self.enabled = total, enabled
        self.done = self.passed = self.failed = 0
        self.best: float | None = None
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._bar: Any = None
        self._task: Any = None
        self.stream = stream or sys.stderr
        if not enabled:
            return
        from rich.console import Console

        self.console = Console(file=self.stream)
        if console_is_live(self.console):
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(TextColumn("instances"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[summary]};"), TimeElapsedColumn(), TextColumn("elapsed,"),
                                 TimeRemainingColumn(), TextColumn("left"), console=self.console,
                                 redirect_stdout=False, redirect_stderr=True)
            self._task = self._bar.add_task("batch", total=total, summary=self._summary())
            self._bar.start()

    def _summary(self) -> str:
        best = "-" if self.best is None else f"{self.best:.4g}"
        errors = f", {self.failed} errors" if self.failed else ""
        return f"{self.passed} passed, best score {best}{errors}"

    def line(self, text: str) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False, emoji=False, soft_wrap=True)
        else:
            print(text, file=self.stream, flush=True)

    def instance_done(self, passed: bool | None, score: float | None) -> None:
        """One instance ended: `passed` None when it ended in an error."""
        with self._lock:
            self.done += 1
            self.passed += bool(passed)
            self.failed += passed is None
            if score is not None and (self.best is None or score > self.best):
                self.best = score
            summary = self._summary()
            elapsed = time.monotonic() - self.started
            left = elapsed / self.done * (self.total - self.done)
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, advance=1, summary=summary)
        else:
            print(f"batch: {self.done}/{self.total} instances done, {summary}; {duration(elapsed)} elapsed, about "
                  f"{duration(left)} left", file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
