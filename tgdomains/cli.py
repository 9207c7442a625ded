"""The `tgdomains` command: optimize, evaluate, batch, report, engines, domains.

Domains add their own flags (`--problems`, `--target`, `--case` ...) through their plug-in's `add_arguments`;
this module only knows the core's flags. Heavy modules are imported inside the commands, so `--help` is instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tgdomains.argtypes import integer, number
from tgdomains.records import RecordWriteError
from tgdomains.runlock import RunDirectoryLocked

# Flags of the run loop (RunConfig) and of strategies; everything else on the command line is the domain's.
RUN_FLAGS = {"iterations": "iterations", "seed": "seed", "temperature": "temperature", "max_tokens": "max_tokens",
             "token_budget": "token_budget", "cost_budget": "cost_budget", "time_budget": "time_budget_s",
             "evaluation_budget": "evaluation_budget", "llm_call_budget": "llm_call_budget"}
STRATEGY_FLAGS = ("momentum", "one_call", "accept_only_improvements", "restart", "restarts_in_a_row", "restart_first",
                  "show_evaluation", "firm_critic", "population", "proposals", "merge", "samples",
                  "constrained")
CORE_KEYS = {"command", "domain", "strategy", "run_dir", "resume", "engine", "model", "base_url", "model_path",
             "no_cache", "cache_path", "record", "replay", "quiet", "json", "workers", "ray_address", "out", "price",
             "baseline", *RUN_FLAGS, *STRATEGY_FLAGS}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("interrupted; completed steps are in the run directory (continue with --resume RUN_DIR)",
              file=sys.stderr)
        return 130
    except (FileNotFoundError, FileExistsError, KeyError, ValueError) as exc:
        print(f"tgdomains: error: {exc}", file=sys.stderr)
        return 2
    except (RunDirectoryLocked, RecordWriteError) as exc:  # another writer; a full or failing disk
        print(f"tgdomains: error: {exc}", file=sys.stderr)
        return 1


# -- parser ---------------------------------------------------------------------------------------------------


def _parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tgdomains", description="Optimize programs, molecules and treatment "
                                     "plans with textual gradients, scored by real tools.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, helptext, batch in [("optimize", "optimize one instance", False),
                                  ("evaluate", "score one candidate and print the Evaluation", False),
                                  ("batch", "optimize many instances concurrently", True)]:
        p = sub.add_parser(name, help=helptext)
        p.add_argument("domain", help="code | molecules | radiotherapy (any registered domain)")
        if name != "evaluate":
            _add_run_arguments(p, batch)
        p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
        # Only the chosen domain's flags are added: its plug-in is imported here, not for --help of others.
        if len(argv) >= 2 and argv[0] == name and not argv[1].startswith("-"):
            _add_domain_arguments(p, argv[1], batch)
    p = sub.add_parser("report", help="plots and a Markdown summary of a run directory")
    p.add_argument("run_dir")
    p.add_argument("--out", help="output directory (default: RUN_DIR/report)")
    p = sub.add_parser("engines", help="which engine a run would use, and why")
    _add_engine_arguments(p)
    sub.add_parser("domains", help="list the registered domains")
    return parser


def _add_domain_arguments(p: argparse.ArgumentParser, domain_name: str, batch: bool) -> None:
    from tgdomains.domain import get_domain

    try:
        get_domain(domain_name).add_arguments(p, batch=batch)
    except KeyError:
        pass  # reported properly when the command runs


def _add_engine_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("engine")
    g.add_argument("--engine", choices=["openai", "local"], help="default: OpenAI-compatible endpoint if "
                   "OPENAI_BASE_URL or OPENAI_API_KEY is set, else the embedded local model")
    g.add_argument("--model", help="model name for the endpoint (env TGDOMAINS_MODEL)")
    g.add_argument("--base-url", help="OpenAI-compatible base URL (env OPENAI_BASE_URL): vLLM, Ollama, llama.cpp")
    g.add_argument("--model-path", help="a GGUF file for the local engine (env TGDOMAINS_LOCAL_MODEL)")
    g.add_argument("--no-cache", action="store_true", help="do not read or write the LLM reply cache")
    g.add_argument("--cache-path", help="SQLite reply cache (default ~/.cache/tgdomains/llm_cache.sqlite)")
    g.add_argument("--record", metavar="CASSETTE", help="record every LLM exchange to this JSONL cassette")
    g.add_argument("--replay", metavar="CASSETTE", help="replay a recorded cassette offline (no model)")
    g.add_argument("--price", action="append", default=[], metavar="MODEL=IN,OUT",
                   help="USD per million prompt,completion tokens (extends the built-in table)")


def _add_run_arguments(p: argparse.ArgumentParser, batch: bool) -> None:
    g = p.add_argument_group("run (every strategy)")
    g.add_argument("--strategy", help="chain (default), one-call, population, zero-shot, best-of-n, reflexion, or "
                   "the domain's own (molecules: graph-ga; radiotherapy: optuna)")
    g.add_argument("--iterations", type=integer(0), help="strategy iterations at most (default: the domain's)")
    g.add_argument("--seed", type=integer())
    g.add_argument("--temperature", type=number(0))
    g.add_argument("--max-tokens", type=integer(1))
    g.add_argument("--token-budget", type=integer(0), help="stop before the run spends more tokens than this")
    g.add_argument("--cost-budget", type=number(0), help="stop before the run spends more USD than this")
    g.add_argument("--time-budget", type=number(0), help="wall-clock seconds; checked between iterations")
    g.add_argument("--llm-call-budget", type=integer(0), help="stop before the run makes more LLM requests than this")
    g.add_argument("--evaluation-budget", type=integer(1),
                   help="stop after this many distinct candidates were evaluated (the initial one included)")
    g.add_argument("--quiet", action="store_true", help="no progress lines")
    s = p.add_argument_group("strategy settings (each applies to the strategies named)")
    s.add_argument("--momentum", type=integer(0), help="chain, one-call, population: past attempts shown (default 3)")
    s.add_argument("--one-call", action="store_true", default=None,
                   help="chain, population: feedback and new value in one LLM call per update")
    s.add_argument("--accept-only-improvements", action="store_true", default=None,
                   help="chain: continue from the best candidate instead of the last one")
    s.add_argument("--restart", choices=["evaluation", "task", "never"],
                   help="chain, one-call: after an edit that did not beat the best, write a new value from scratch, "
                        "from the best value's evaluation (default) or from the task (a zero-shot sample); never: "
                        "edits only (TextGrad's loop)")
    s.add_argument("--restarts-in-a-row", type=integer(1),
                   help="chain, one-call: restarts that did not beat the best before the best is edited again "
                        "(default 1)")
    s.add_argument("--restart-first", action="store_true", default=None,
                   help="chain, one-call: restart before the first edit (with --restart task and a "
                        "large --restarts-in-a-row: zero-shot samples until one beats the start, then edits)")
    s.add_argument("--show-evaluation", action="store_true", default=None,
                   help="chain: the step prompt shows the evaluation beside the feedback (TextGrad's step reads the "
                        "feedback alone)")
    s.add_argument("--firm-critic", action="store_true", default=None,
                   help="chain: the critic of a value that did not pass is told not to call it correct")
    s.add_argument("--population", type=integer(1), help="population: parents kept per iteration (implies "
                   "--strategy population)")
    s.add_argument("--proposals", type=integer(1), help="population: children per parent per iteration")
    s.add_argument("--merge", action="store_true", default=None, help="population: also propose merges of two parents")
    s.add_argument("--samples", type=integer(1), help="zero-shot, best-of-n: samples per iteration")
    s.add_argument("--constrained", action="store_true", default=None,
                   help="zero-shot, best-of-n: decode the samples under the domain's reply grammar, as TGD's steps")
    if batch:
        g.add_argument("--out", default=None, help="directory for the batch (one run directory per instance)")
        g.add_argument("--workers", type=integer(1), default=8, help="instances optimized at once (LLM calls overlap)")
        g.add_argument("--ray-address", help="run the batch on a Ray cluster ('auto', 'ray://host:10001')")
    else:
        g.add_argument("--run-dir", help="where the run is recorded (default runs/DOMAIN-INSTANCE-TIME)")
        g.add_argument("--resume", metavar="RUN_DIR", help="continue a killed or finished run from its last step "
                       "(domain flags, strategy and settings come from the run directory)")
    _add_engine_arguments(p)


# -- commands -------------------------------------------------------------------------------------------------


def build_engine(args: argparse.Namespace):
    """The engine a run uses, from flags and environment, wrapped for recording and caching; plus why."""
    from tgdomains.engines import CachedEngine, RecordingEngine, ReplayEngine
    from tgdomains.engines.openai_engine import PRICES_PER_MILLION

    if args.replay:
        return ReplayEngine(args.replay), f"replaying cassette {args.replay} (no model is contacted)"
    from tgdomains.engines.select import choose_engine

    engine, reason = choose_engine(args.engine, model=args.model, base_url=args.base_url,
                                   model_path=args.model_path)
    for spec in args.price:
        name, _, prices = spec.partition("=")
        try:
            prompt_price, completion_price = (float(v) for v in prices.split(","))
        except ValueError:
            raise ValueError(f"--price {spec!r}: expected MODEL=IN,OUT in USD per million tokens") from None
        getattr(engine, "prices", PRICES_PER_MILLION)[name] = (prompt_price, completion_price)
    # Recording outside the cache: the cassette sees every request, cached or not, so replays are complete.
    engine = CachedEngine(engine, args.cache_path, enabled=not args.no_cache)
    if args.record:
        engine = RecordingEngine(engine, args.record)
    return engine, reason


def _domain_args(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k not in CORE_KEYS}


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """The run and strategy settings given on the command line (unset flags are left to the defaults)."""
    given = {RUN_FLAGS.get(k, k): v for k, v in vars(args).items()
             if (k in RUN_FLAGS or k in STRATEGY_FLAGS) and v is not None}
    if args.strategy:
        given["strategy"] = args.strategy
    elif "population" in given or "proposals" in given:
        given["strategy"] = "population"
    return given


def _run_kwargs(args: argparse.Namespace, domain) -> dict[str, Any]:
    """optimize()'s settings for a fresh run; a strategy flag that the chosen strategy lacks is an error."""
    from tgdomains.strategies import setting_names

    kwargs = {"strategy": domain.default_strategy, **_settings(args)}
    known = setting_names(kwargs["strategy"], domain)
    wrong = sorted(k for k in kwargs if k in STRATEGY_FLAGS and k not in known)
    if wrong:
        flags = ", ".join("--" + k.replace("_", "-") for k in wrong)
        raise ValueError(f"{flags} does not apply to --strategy {kwargs['strategy']} (its settings: "
                         f"{', '.join(sorted(known)) or 'none'})")
    return kwargs


def cmd_optimize(args: argparse.Namespace) -> int:
    from tgdomains.domain import get_domain
    from tgdomains.run import optimize, resume

    domain = get_domain(args.domain)
    engine, reason = build_engine(args)
    _say(args, f"engine: {reason}")
    if args.resume:
        result = resume(args.resume, engine=engine, domain=domain, progress=not args.quiet, **_settings(args))
    else:
        instance_args = _domain_args(args)
        instance = domain.load(instance_args)
        result = optimize(domain, instance, engine=engine, run_dir=args.run_dir, progress=not args.quiet,
                          meta={"instance_args": _jsonable(instance_args)}, **_run_kwargs(args, domain))
    if args.json:
        print(json.dumps({"run_dir": str(result.run_dir), "strategy": result.strategy,
                          "best_value": result.best_value, "evaluation": result.best_evaluation.to_dict(),
                          "final": result.final, "usage": result.usage, "stop_reason": result.stop_reason},
                         indent=2, default=str))
    else:
        print(f"best ({'passed' if result.passed else 'not passed'}, score {result.best_evaluation.score:.4g}):")
        print(result.best_value)
        if result.final:
            print("final:", json.dumps(result.final, default=str))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from tgdomains.domain import get_domain

    domain = get_domain(args.domain)
    instance = domain.load(_domain_args(args))
    value = domain.candidate_from_args(_domain_args(args), instance)
    evaluation = domain.evaluate(value, instance)
    if args.json:
        print(json.dumps({"value": value, **evaluation.to_dict()}, indent=2, default=str))
    else:
        print(f"score {evaluation.score:.4g}  passed={evaluation.passed}  valid={evaluation.valid}")
        print(evaluation.text)
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    from tgdomains.batch import optimize_many, print_summary
    from tgdomains.domain import get_domain

    domain = get_domain(args.domain)
    instances = domain.load_many(_domain_args(args))
    engine, reason = build_engine(args)
    _say(args, f"engine: {reason}; {len(instances)} instances, {args.workers} at once"
         + (f" on Ray at {args.ray_address}" if args.ray_address else ""))
    summary = optimize_many(domain, instances, engine=engine, out_dir=args.out, workers=args.workers,
                            ray_address=args.ray_address, progress=not args.quiet, **_run_kwargs(args, domain))
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print_summary(summary)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from tgdomains.report import write_report

    for path in write_report(args.run_dir, args.out):
        print(path)
    return 0


def cmd_engines(args: argparse.Namespace) -> int:
    from tgdomains.engines.select import NoEngineError

    try:
        engine, reason = build_engine(args)
    except NoEngineError as exc:
        print(str(exc))
        return 1
    print(reason)
    print(f"engine: {getattr(engine, 'describe', lambda: repr(engine))()}")
    return 0


def cmd_domains(args: argparse.Namespace) -> int:
    from tgdomains.domain import available_domains

    for name in sorted(available_domains()):
        print(name)
    return 0


COMMANDS = {"optimize": cmd_optimize, "evaluate": cmd_evaluate, "batch": cmd_batch, "report": cmd_report,
            "engines": cmd_engines, "domains": cmd_domains}


def _say(args: argparse.Namespace, line: str) -> None:
    if not getattr(args, "quiet", False):
        print(line, file=sys.stderr, flush=True)


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(d, default=str))


if __name__ == "__main__":
    raise SystemExit(main())
