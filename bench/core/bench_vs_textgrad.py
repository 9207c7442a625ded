"""Core benchmark: tgdomains vs textgrad on the same 5-iteration loop with a scripted engine.

Measures, per iteration: LLM calls, prompt tokens (same 4-chars-a-token estimate on both sides) and core overhead
(wall time with an engine that answers instantly, so it is all framework time). Also `import` time of each package.

    python3 bench/core/bench_vs_textgrad.py            # runs both sides (textgrad in bench/.venv-textgrad)

Each side runs in its own interpreter (textgrad lives in its own virtual environment); the driver prints the table
and writes bench/core/results_vs_textgrad.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))  # bench/textgrad_loop.py
from loop_workload import (  # noqa: E402
    CANDIDATES,
    CRITIQUE,
    EVALUATIONS,
    FEEDBACK,
    ITERATIONS,
    PROBLEM,
    START,
    tokens,
)

REPEATS = 200
TEXTGRAD_PYTHON = HERE.parent / ".venv-textgrad" / "bin" / "python"


class ScriptedModel:
    """The scripted model of one loop: the next candidate when asked for a value (a new one each step, as a model
    that follows the feedback would give), a critique for a loss call, else feedback."""

    def __init__(self) -> None:
        self.steps = 0

    def reply(self, system: str, user: str, loss_system: str = "") -> str:
        if "IMPROVED_VARIABLE" in user or "IMPROVED_VARIABLE" in (system or ""):
            value = CANDIDATES[self.steps % len(CANDIDATES)]
            self.steps += 1
            return f"The length was off by one.\n<IMPROVED_VARIABLE>\n{value}\n</IMPROVED_VARIABLE>"
        if loss_system and system == loss_system:
            return CRITIQUE
        return FEEDBACK


# -- tgdomains -------------------------------------------------------------------------------------------------


def ours(mode: str) -> dict:
    import tgdomains as tg
    from tgdomains.engines import ScriptedEngine

    def one_loop() -> tuple[int, int]:
        model = ScriptedModel()
        engine = ScriptedEngine(lambda m: model.reply(m[0]["content"], m[-1]["content"]))
        x = tg.Variable(START, "solution code", requires_grad=True)
        momentum = 3 if mode == "momentum3" else 0
        opt = tg.TGD([x], engine, constraints=["keep the function signature"], momentum=momentum, context=PROBLEM,
                     one_call=mode == "one_call")
        for i in range(ITERATIONS):
            ev = tg.Evaluation(score=1 / 3, text=EVALUATIONS[i])
            opt.zero_grad()
            if mode != "one_call":
                tg.evaluation_loss(x, ev, PROBLEM).backward(engine)
            opt.step(score=ev.score, evaluation_text=ev.text)
        return engine.usage.calls, engine.usage.prompt_tokens

    return _measure(one_loop)


def ours_runner() -> dict:
    """The full runner (run directory with fsync'd steps) on the same workload, for the record-keeping cost."""
    from textgrad_loop import EditsOnly

    from tgdomains.domain import Domain, Start
    from tgdomains.engines import ScriptedEngine
    from tgdomains.evaluation import Evaluation
    from tgdomains.run import optimize

    class Replay(Domain):  # replays the recorded evaluations of the workload's candidates, in order
        name = "bench"

        def __init__(self):
            self.i = 0

        def context(self, instance):
            return PROBLEM

        def initial(self, instance, engine=None):
            return Start(START, "solution code", ["keep the function signature"])

        def parse(self, raw, instance):
            return raw.strip()

        def evaluate(self, value, instance):
            self.i += 1
            return Evaluation(score=1 / 3, text=EVALUATIONS[0])

        def finalize(self, value, instance):
            return {}

    def one_loop() -> tuple[int, int]:
        model = ScriptedModel()
        engine = ScriptedEngine(lambda m: model.reply(m[0]["content"], m[-1]["content"]))
        with tempfile.TemporaryDirectory() as d:
            optimize(Replay(), None, engine=engine, run_dir=Path(d) / "r", iterations=ITERATIONS,
                     strategy=EditsOnly(momentum=0), progress=False)  # TextGrad's loop: edits only, like for like
        return engine.usage.calls, engine.usage.prompt_tokens

    return _measure(one_loop)


# -- textgrad --------------------------------------------------------------------------------------------------


def theirs() -> dict:
    import textgrad as tg
    from textgrad.engine.base import EngineLM

    loss_system = ("You are a smart language model that evaluates code snippets. You do not solve problems or "
                   "propose new code snippets, only evaluate existing solutions critically and give very concise "
                   "feedback.")
    counts = {"calls": 0, "prompt_tokens": 0}
    model = ScriptedModel()

    class Scripted(EngineLM):
        model_string = "scripted"

        def generate(self, prompt, system_prompt=None, **kwargs):
            system = system_prompt or self.system_prompt
            counts["calls"] += 1
            counts["prompt_tokens"] += tokens(str(prompt)) + tokens(system)
            return model.reply(system, str(prompt), loss_system)

        def __call__(self, prompt, **kwargs):
            return self.generate(prompt, **kwargs)

    engine = Scripted()
    tg.set_backward_engine(engine, override=True)

    def one_loop() -> tuple[int, int]:
        counts.update(calls=0, prompt_tokens=0)
        model.steps = 0
        code = tg.Variable(START, requires_grad=True, role_description="code instance to optimize")
        problem = tg.Variable(PROBLEM, requires_grad=False, role_description="the coding problem")
        optimizer = tg.TGD(parameters=[code], engine=engine, constraints=["keep the function signature"])
        system = tg.Variable(loss_system, requires_grad=False, role_description="system prompt to the loss function")
        fmt = ("Think about the problem and the code snippet. Does the code solve the problem? "
               "Problem: {problem}\nCurrent Code: {code}\nTest results: {tests}")
        call = tg.autograd.FormattedLLMCall(engine=engine, format_string=fmt,
                                            fields={"problem": None, "code": None, "tests": None},
                                            system_prompt=system)
        for i in range(ITERATIONS):
            tests = tg.Variable(EVALUATIONS[i], requires_grad=False, role_description="unit test results")
            optimizer.zero_grad()
            loss = call(inputs={"problem": problem, "code": code, "tests": tests},
                        response_role_description="evaluation of the code")
            loss.backward()
            optimizer.step()
        return counts["calls"], counts["prompt_tokens"]

    return _measure(one_loop)


# -- measurement and driver -----------------------------------------------------------------------------------


def _measure(one_loop) -> dict:
    calls, prompt_tokens = one_loop()  # warm-up, and the per-loop counts
    t0 = time.perf_counter()
    for _ in range(REPEATS):
        one_loop()
    per_iteration_ms = (time.perf_counter() - t0) / REPEATS / ITERATIONS * 1000
    return {"calls_per_iteration": calls / ITERATIONS, "prompt_tokens_per_iteration": prompt_tokens / ITERATIONS,
            "overhead_ms_per_iteration": round(per_iteration_ms, 3)}


def _import_seconds(python: str, module: str) -> float:
    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(3):
            t0 = time.perf_counter()
            subprocess.run([python, "-c", f"import {module}"], check=True, capture_output=True, cwd=scratch,
                           env={**os.environ, "PYTHONPATH": str(HERE.parent.parent)})
            runs.append(time.perf_counter() - t0)
    return round(min(runs), 3)


def _side(python: str, name: str) -> dict:
    # A scratch working directory: textgrad writes a logs/ folder into the cwd when it is imported.
    with tempfile.TemporaryDirectory() as scratch:
        out = subprocess.run([python, __file__, "--side", name], check=True, capture_output=True, text=True,
                             cwd=scratch, env={**os.environ, "PYTHONPATH": str(HERE.parent.parent)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if "--side" in sys.argv:
        name = sys.argv[sys.argv.index("--side") + 1]
        fn = {"textgrad": theirs, "ours": lambda: ours("two_call"), "ours_one_call": lambda: ours("one_call"),
              "ours_momentum3": lambda: ours("momentum3"), "ours_runner": ours_runner}[name]
        print(json.dumps(fn()))
        return
    if not TEXTGRAD_PYTHON.exists():
        sys.exit(f"textgrad's environment is missing: python3 -m venv {TEXTGRAD_PYTHON.parent.parent} && "
                 f"{TEXTGRAD_PYTHON.parent}/pip install textgrad")
    results = {"textgrad": _side(str(TEXTGRAD_PYTHON), "textgrad")}
    for name in ["ours", "ours_one_call", "ours_momentum3", "ours_runner"]:
        results[name] = _side(sys.executable, name)
    results["import_s"] = {"textgrad": _import_seconds(str(TEXTGRAD_PYTHON), "textgrad"),
                           "tgdomains": _import_seconds(sys.executable, "tgdomains")}
    ref = results["textgrad"]
    print(f"{'loop':<16} {'calls/iter':>10} {'prompt tok/iter':>16} {'overhead ms/iter':>17} "
          f"{'tokens vs tg':>12} {'overhead vs tg':>14}")
    for name in ["textgrad", "ours", "ours_one_call", "ours_momentum3", "ours_runner"]:
        r = results[name]
        print(f"{name:<16} {r['calls_per_iteration']:>10.1f} {r['prompt_tokens_per_iteration']:>16.0f} "
              f"{r['overhead_ms_per_iteration']:>17.3f} "
              f"{r['prompt_tokens_per_iteration'] / ref['prompt_tokens_per_iteration']:>11.2f}x "
              f"{r['overhead_ms_per_iteration'] / ref['overhead_ms_per_iteration']:>13.3f}x")
    print(f"import: textgrad {results['import_s']['textgrad']} s, tgdomains {results['import_s']['tgdomains']} s")
    (HERE / "results_vs_textgrad.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
