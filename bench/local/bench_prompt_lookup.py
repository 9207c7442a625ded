"""Prompt-lookup decoding in the local engine, measured on requests recorded in the committed cassettes.

Most optimizer replies are edits that copy much of their parent from the prompt. Prompt lookup drafts the next
tokens by finding the last generated n-gram in the prompt (llama-cpp-python's `LlamaPromptLookupDecoding`) and
verifies the drafts in one batch. Per request kind (code step, plan step, SMILES step, feedback; greedy and
sampled) this asks each picked request twice, without and with prompt lookup, on one `LocalEngine` (prefix reuse
on, so the second ask reuses the first's prompt batches) and records:

- prompt seconds (the first ask: time to its first token) and decode tokens/s (after the first token) of each;
- the whole call's wall time of each, counted as the same prompt time plus its own decode time;
- decoding forward passes, drafted tokens and the acceptance rate (passes saved per drafted token);
- whether the reply is byte-identical to the one without; for sampled requests also whether asking again with
  prompt lookup gives the same reply (same seed, same reply).

    TGDOMAINS_LOCAL_THREADS=1 python bench/local/bench_prompt_lookup.py --per-kind 1 --draft-tokens 3 10 \
        --max-tokens 320 --out bench/local/results_prompt_lookup.json
    python bench/local/bench_prompt_lookup.py --model tiny --per-kind 1 --draft-tokens 3 10 --max-tokens 128
    python bench/local/bench_prompt_lookup.py --batch-cost --out bench/local/results_batch_cost.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tgdomains.engines.base import ReplyFormat, Request, TokenProgress  # noqa: E402
from tgdomains.progress import request_kind  # noqa: E402

CASSETTES = ROOT / "bench" / "quality" / "cassettes"
# (label, cassette domain folder, request kind)
KINDS = [("code step", "code", "step"), ("plan step", "radiotherapy", "step"), ("SMILES step", "molecules", "step"),
         ("feedback", "code", "feedback"), ("feedback", "molecules", "feedback")]


def batch_cost(model: str | None, threads: int, sizes: tuple[int, ...] = (1, 2, 3, 4, 6, 8, 11),
               repeats: int = 3) -> dict:
    """Milliseconds one decoding forward pass takes for a batch of n tokens (logits for each, as a verification
    of n - 1 drafts needs), after a 300-token prompt; best of `repeats`. Drafting pays when the tokens a pass
    yields grow faster than its cost."""
    import llama_cpp

    from tgdomains.engines.local import resolve_model_path

    llm = llama_cpp.Llama(str(resolve_model_path(model)), n_ctx=2048, n_batch=256, n_ubatch=256, n_threads=threads,
                          n_threads_batch=threads, verbose=False)
    text = "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n" * 12
    prompt = llm.tokenize(text.encode())[:300]
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(prompt)
    prompt_s = time.perf_counter() - t0
    base = llm.n_tokens
    ms = {}
    for n in sizes:
        best = float("inf")
        for _ in range(repeats):
            llm.n_tokens = base
            llm._ctx.kv_cache_seq_rm(-1, base, -1)
            t0 = time.perf_counter()
            llm._batch.set_batch(batch=prompt[:n], n_past=base, logits_all=True)
            llm._ctx.decode(llm._batch)
            best = min(best, time.perf_counter() - t0)
        ms[n] = round(best * 1000, 1)
        print(f"batch of {n}: {ms[n]} ms ({ms[n] / n:.1f} ms a token)", flush=True)
    llm.close()
    return {"prompt_tokens_per_s": round(len(prompt) / prompt_s, 1), "ms_per_pass": ms}


def pick_requests(per_kind: int, max_recorded_tokens: int) -> list[tuple[str, str, Request, int]]:
    """(label, greedy|sampled, request, recorded completion tokens): the first `per_kind` of each kind and mode, in
    sorted file order, whose recorded reply is at most `max_recorded_tokens` long (so a call stays short here)."""
    picked: dict[tuple[str, str], list] = {}
    wanted = {(folder, kind): label for label, folder, kind in KINDS}
    files = sorted(p for p in CASSETTES.rglob("*.jsonl") if not p.name.endswith(".evals.jsonl"))
    for path in files:
        folder = path.relative_to(CASSETTES).parts[0]
        for line in path.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            if "request" not in entry:
                break
            r = entry["request"]
            request = Request.build(r["model"], r["messages"], r["temperature"], r["max_tokens"], r["seed"], r["stop"],
                                    ReplyFormat.from_dict(r.get("reply_format")))
            label = wanted.get((folder, request_kind(request)))
            if label is None or entry["usage"][1] > max_recorded_tokens:
                continue
            mode = "greedy" if request.temperature == 0 else "sampled"
            group = picked.setdefault((label, mode), [])
            if len(group) < per_kind and all(request.key != other.key for _, _, other, _ in group):
                group.append((label, mode, request, entry["usage"][1]))
    return [item for group in picked.values() for item in group]


def timed_ask(engine, request: Request) -> dict:
    """One request on `engine` with the time of its first token; the runtime's counters of decoding."""
    first: list[float] = []

    def on_progress(progress: TokenProgress) -> None:
        if progress.generated >= 1 and not first:
            first.append(time.perf_counter())

    t0 = time.perf_counter()
    completion = engine._stream(request, on_progress)
    end = time.perf_counter()
    llama = engine.loaded()
    t_first = first[0] if first else end
    tokens = completion.usage.completion_tokens
    return {"text": completion.text, "prompt_tokens": completion.usage.prompt_tokens, "completion_tokens": tokens,
            "reused_prompt_tokens": llama.last_reused, "prompt_s": round(t_first - t0, 3),
            "decode_s": round(end - t_first, 3), "wall_s": round(end - t0, 3),
            "decode_tokens_per_s": round((tokens - 1) / (end - t_first), 3) if tokens > 1 and end > t_first else None,
            "passes": llama.passes, "drafted": llama.drafted}


def measure(model: str | None, threads: int, draft_sizes: list[int], per_kind: int, max_tokens: int | None,
            max_recorded_tokens: int, out: Path | None = None) -> dict:
    """Every picked request without and with prompt lookup; `out` is rewritten after each row (a run cut short
    keeps what it measured)."""
    from tgdomains.engines.local import LocalEngine

    requests = pick_requests(per_kind, max_recorded_tokens)
    plain = LocalEngine(model, n_threads=threads)
    lookups = {k: LocalEngine(model, n_threads=threads, prompt_lookup=k) for k in draft_sizes}

    def results() -> dict:
        return {"model": plain.model, "threads": threads, "draft_sizes": draft_sizes, "max_tokens": max_tokens,
                "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load": os.getloadavg()},
                "rows": rows, "summary": summarize(rows)}

    rows: list[dict] = []
    for label, mode, request, recorded in requests:
        if max_tokens is not None:
            request = Request(request.model, request.messages, request.temperature, max_tokens, request.seed,
                              request.stop, request.reply_format)
        without = timed_ask(plain, request)
        prompt_s = without["prompt_s"]  # the first ask paid the prompt; the later ones reuse its batches
        for k, engine in lookups.items():
            with_lookup = timed_ask(engine, request)
            again = timed_ask(engine, request) if mode == "sampled" else None
            # each pass without drafts yields one token: the passes drafts saved are the drafts accepted
            accepted = (with_lookup["completion_tokens"] - with_lookup["passes"]) - \
                (without["completion_tokens"] - without["passes"])
            row = {"kind": label, "mode": mode, "draft_tokens": k, "temperature": request.temperature,
                   "recorded_tokens": recorded, "prompt_tokens": without["prompt_tokens"], "prompt_s": prompt_s,
                   "without": {key: v for key, v in without.items() if key != "text"},
                   "with": {key: v for key, v in with_lookup.items() if key != "text"},
                   "acceptance": round(accepted / with_lookup["drafted"], 3) if with_lookup["drafted"] else None,
                   "call_s_without": round(prompt_s + without["decode_s"], 2),
                   "call_s_with": round(prompt_s + with_lookup["decode_s"], 2),
                   "same_reply": without["text"] == with_lookup["text"],
                   "same_seed_same_reply": None if again is None else again["text"] == with_lookup["text"]}
            rows.append(row)
            print(json.dumps({key: row[key] for key in (
                "kind", "mode", "draft_tokens", "prompt_tokens", "prompt_s", "acceptance", "call_s_without",
                "call_s_with", "same_reply", "same_seed_same_reply")}) +
                f" decode tok/s {without['decode_tokens_per_s']} -> {with_lookup['decode_tokens_per_s']}"
                f" tokens {without['completion_tokens']} -> {with_lookup['completion_tokens']}", flush=True)
            if out is not None:
                out.write_text(json.dumps(results(), indent=1) + "\n")
    return results()


def summarize(rows: list[dict]) -> list[dict]:
    """Per kind, mode and draft size: decode tokens/s without and with (tokens over decode seconds, all requests
    together), acceptance, whole-call seconds, and how many replies stayed the same."""
    out = []
    for key in dict.fromkeys((r["kind"], r["mode"], r["draft_tokens"]) for r in rows):
        group = [r for r in rows if (r["kind"], r["mode"], r["draft_tokens"]) == key]

        def rate(side: str, group: list[dict] = group) -> float:
            tokens = sum(r[side]["completion_tokens"] - 1 for r in group)
            return round(tokens / max(1e-9, sum(r[side]["decode_s"] for r in group)), 2)

        drafted = sum(r["with"]["drafted"] for r in group)
        accepted = sum((r["acceptance"] or 0) * r["with"]["drafted"] for r in group)
        out.append({"kind": key[0], "mode": key[1], "draft_tokens": key[2], "requests": len(group),
                    "decode_tokens_per_s_without": rate("without"), "decode_tokens_per_s_with": rate("with"),
                    "acceptance": round(accepted / drafted, 3) if drafted else None,
                    "call_s_without": round(sum(r["call_s_without"] for r in group), 1),
                    "call_s_with": round(sum(r["call_s_with"] for r in group), 1),
                    "same_reply": f"{sum(r['same_reply'] for r in group)}/{len(group)}",
                    "same_seed_same_reply": None if key[1] == "greedy" else
                    f"{sum(bool(r['same_seed_same_reply']) for r in group)}/{len(group)}"})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a GGUF path or a known name (default: the default model)")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("TGDOMAINS_LOCAL_THREADS", "1")))
    parser.add_argument("--draft-tokens", type=int, nargs="+", default=[10],
                        help="tokens drafted per lookup; several sizes are measured on the same requests (default 10)")
    parser.add_argument("--per-kind", type=int, default=2, help="requests per kind and mode (default 2)")
    parser.add_argument("--max-tokens", type=int, default=None, help="cap each reply (default: the request's)")
    parser.add_argument("--max-recorded-tokens", type=int, default=400,
                        help="only requests whose recorded reply is at most this long (default 400)")
    parser.add_argument("--out", type=Path, default=None, help="write the results here (JSON)")
    parser.add_argument("--batch-cost", action="store_true",
                        help="only time one forward pass per batch size (what a verification costs) and stop")
    args = parser.parse_args()
    if args.batch_cost:
        results = {"threads": args.threads, "model": args.model or "default",
                   "load": os.getloadavg(), **batch_cost(args.model, args.threads)}
        if args.out:
            args.out.write_text(json.dumps(results, indent=1) + "\n")
        return
    results = measure(args.model, args.threads, args.draft_tokens, args.per_kind, args.max_tokens,
                      args.max_recorded_tokens, args.out)
    print("| kind | mode | drafts | requests | decode tok/s without | with | acceptance | call s without | with "
          "| same reply | same seed, same reply |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for s in results["summary"]:
        print(f"| {s['kind']} | {s['mode']} | {s['draft_tokens']} | {s['requests']} | "
              f"{s['decode_tokens_per_s_without']} | "
              f"{s['decode_tokens_per_s_with']} | {s['acceptance']} | {s['call_s_without']} | {s['call_s_with']} | "
              f"{s['same_reply']} | {s['same_seed_same_reply'] or '-'} |")


if __name__ == "__main__":
    main()
