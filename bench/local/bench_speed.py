"""Speed of the default local model (Qwen2.5-Coder-1.5B-Instruct Q4_K_M) against the memory-bandwidth limit.

Decoding one token reads every weight once, so decode tokens/s can never beat (memory bandwidth) / (model bytes).
This measures, in one run so that the machine's load is shared by every configuration:

- the machine's memory copy bandwidth (numpy, 1 and 2 threads; bytes read + written per second);
- prompt and decode tokens/s of llama.cpp for each build (this install, and optionally another one given with
  --build NAME=SITE_PACKAGES_DIR, e.g. an AVX2-only wheel installed with `pip install --target`) and thread count,
  each in a fresh subprocess, configurations interleaved and repeated;
- prefix KV reuse in LocalEngine: the second of two requests that share their system prompt and task context,
  with reuse on and off, and whether the reply is the same as from an empty cache (it must be).

    python bench/local/bench_speed.py                                  # ~4 min here; writes results_speed.json
    python bench/local/bench_speed.py --build avx2=/tmp/avx2-site --threads 1 2 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

PROMPT_TOKENS = 512
DECODE_TOKENS = 64


def copy_bandwidth(threads: int, megabytes: int = 256, repeats: int = 5) -> float:
    """GB/s moved (read + write) by `threads` threads each copying its own `megabytes` MB array (numpy releases
    the GIL for large copies)."""
    import numpy as np

    n = megabytes * 1024 * 1024 // 8
    pairs = [(np.ones(n), np.empty(n)) for _ in range(threads)]
    best = float("inf")
    for _ in range(repeats):
        barrier = threading.Barrier(threads + 1)

        def work(src, dst, barrier=barrier):
            barrier.wait()
            np.copyto(dst, src)

        workers = [threading.Thread(target=work, args=p) for p in pairs]
        for w in workers:
            w.start()
        barrier.wait()
        t0 = time.perf_counter()
        for w in workers:
            w.join()
        best = min(best, time.perf_counter() - t0)
    return 2 * threads * n * 8 / best / 1e9


def worker(model: str, threads: int) -> dict:
    """Prompt and decode rates of this process's llama_cpp (one fresh model, greedy decoding)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import llama_cpp

    llm = llama_cpp.Llama(model, n_ctx=2048, n_threads=threads, n_threads_batch=threads, n_batch=256,
                          n_ubatch=256, verbose=False)
    text = (ROOT / "README.md").read_text()
    tokens = llm.tokenize(text.encode())[:PROMPT_TOKENS]
    t0 = time.perf_counter()
    llm.eval(tokens)
    prompt_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(DECODE_TOKENS):
        token = llm.sample(temp=0.0)
        llm.eval([token])
    decode_s = time.perf_counter() - t0
    info = llama_cpp.llama_print_system_info().decode()
    llm.close()
    return {"prompt_tok_s": len(tokens) / prompt_s, "decode_tok_s": DECODE_TOKENS / decode_s,
            "avx512": "AVX512 = 1" in info, "system_info": info.strip(), "llama_cpp": llama_cpp.__file__}


def prefix_reuse(threads: int) -> dict:
    """Seconds for the second of two requests sharing a ~900-token start, reuse on vs off, and same-reply check."""
    from tgdomains.engines.local import LocalEngine

    context = (ROOT / "README.md").read_text()[:3600]
    system = {"role": "system", "content": "You improve one variable of a system from feedback."}

    def ask(engine, question):
        messages = [system, {"role": "user", "content": f"Task:\n{context}\n\n{question}"}]
        t0 = time.perf_counter()
        c = engine.generate(messages, max_tokens=16, seed=1)
        return time.perf_counter() - t0, c

    out = {}
    for reuse in (False, True):
        engine = LocalEngine(n_threads=threads, reuse_prefix=reuse)
        ask(engine, "Name the first section.")
        seconds, completion = ask(engine, "Name the second section.")
        out["on" if reuse else "off"] = {"second_request_s": seconds, "text": completion.text,
                                          "prompt_tokens": completion.usage.prompt_tokens}
    engine = LocalEngine(n_threads=threads, reuse_prefix=False)
    fresh = ask(engine, "Name the second section.")[1].text
    out["same_reply_as_empty_cache"] = out["on"]["text"] == fresh == out["off"]["text"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", action="append", default=[], help="NAME=SITE_DIR: another llama_cpp to compare")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=str(Path(__file__).with_name("results_speed.json")))
    parser.add_argument("--worker", nargs=2, metavar=("MODEL", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]))))
        return

    from tgdomains.engines.local import default_model_path

    model = default_model_path()
    if model is None:
        sys.exit("the default model is not assembled: python3 -m tgdomains.engines.models fetch")
    model_bytes = model.stat().st_size
    builds = {"this install": None, **dict(b.split("=", 1) for b in args.build)}
    load_before = os.getloadavg()
    bandwidth = {t: copy_bandwidth(t) for t in (1, 2)}
    runs: dict[str, list[dict]] = {}
    for repeat in range(args.repeats):
        for threads in args.threads:
            for name, site in builds.items():  # interleaved: every build sees the same load
                env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
                if site:
                    env["PYTHONPATH"] = f"{site}{os.pathsep}{env.get('PYTHONPATH', '')}"
                proc = subprocess.run([sys.executable, __file__, "--worker", str(model), str(threads)],
                                      capture_output=True, text=True, env=env, check=True)
                result = json.loads(proc.stdout.strip().splitlines()[-1])
                runs.setdefault(f"{name}, {threads} thread{'s' if threads > 1 else ''}", []).append(result)
                print(f"{name:>14} {threads}t  prompt {result['prompt_tok_s']:6.1f} tok/s  decode "
                      f"{result['decode_tok_s']:5.2f} tok/s  (repeat {repeat + 1})", flush=True)
    reuse = prefix_reuse(max(args.threads))
    best_bw = max(bandwidth.values())
    limit = best_bw * 1e9 / model_bytes
    table = {}
    for config, results in runs.items():
        decode = max(r["decode_tok_s"] for r in results)
        table[config] = {"prompt_tok_s": round(max(r["prompt_tok_s"] for r in results), 1),
                         "decode_tok_s": round(decode, 2), "of_bandwidth_limit": round(decode / limit, 2),
                         "avx512": results[0]["avx512"], "llama_cpp": results[0]["llama_cpp"]}
    out = {
        "model": str(model.name), "model_bytes": model_bytes, "prompt_tokens": PROMPT_TOKENS,
        "decode_tokens": DECODE_TOKENS, "copy_bandwidth_GB_s": {str(k): round(v, 2) for k, v in bandwidth.items()},
        "decode_limit_tok_s": round(limit, 2), "configs": table, "prefix_reuse": reuse,
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(), "cpu": platform.processor() or "x86_64",
        "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "prefix_reuse"}, indent=2))
    print("prefix reuse:", {k: v for k, v in reuse.items()})


if __name__ == "__main__":
    main()
