"""The `tgdomains` command, run as a user runs it (a subprocess), and what `import tgdomains` pulls in."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tgdomains.domain import get_domain
from tgdomains.engines import RecordingEngine, ScriptedEngine
from tgdomains.run import optimize


def tgdomains(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("OPENAI_BASE_URL", "OPENAI_API_KEY")}
    proc = subprocess.run([sys.executable, "-m", "tgdomains.cli", *args], capture_output=True, text=True,
                          env={**base, "OPENBLAS_NUM_THREADS": "1", **(env or {})}, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"tgdomains {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def test_import_pulls_in_no_heavy_library():
    code = ("import sys, tgdomains; heavy = {'openai', 'rdkit', 'vina', 'ray', 'matplotlib', 'llama_cpp', 'optuna', "
            "'scipy', 'numpy', 'rich'} & set(m.split('.')[0] for m in sys.modules); print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_help_lists_the_commands_and_a_domains_flags():
    out = tgdomains("--help").stdout
    for command in ("optimize", "evaluate", "batch", "report", "engines"):
        assert command in out
    assert "--case" in tgdomains("optimize", "radiotherapy", "--help").stdout


def test_domains_are_found_through_entry_points():
    assert set(tgdomains("domains").stdout.split()) >= {"code", "molecules", "radiotherapy"}


def test_unknown_domain_is_a_clear_error():
    proc = tgdomains("evaluate", "chess", check=False)
    assert proc.returncode == 2 and "unknown domain 'chess'" in proc.stderr and "radiotherapy" in proc.stderr


def test_engines_prefers_a_configured_endpoint():
    out = tgdomains("engines", env={"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "TGDOMAINS_MODEL": "m"}).stdout
    assert "OpenAIEngine" in out and "127.0.0.1:9" in out


def test_evaluate_prints_the_evaluation_as_json():
    data = json.loads(tgdomains("evaluate", "radiotherapy", "--case", "prostate-2d", "--json").stdout)
    assert {"score", "metrics", "passed", "valid", "text"} <= set(data)
    assert data["valid"] and not data["passed"]  # the default weights fail a goal on this case


@pytest.mark.slow
def test_cli_replays_a_recorded_run_and_resumes_it(tmp_path):
    """Record a 2-iteration run from Python, replay it through the CLI, then resume it to 3 iterations."""
    domain = get_domain("radiotherapy")
    instance = domain.load({"case": "prostate-2d"})
    start = json.loads(domain.initial(instance).value)

    def model(messages):
        text = messages[-1]["content"]
        if "IMPROVED_VARIABLE" not in text:
            return "Raise the PTV weight: coverage is short."
        start["PTV"]["weight"] *= 4  # each proposal pushes coverage further
        return f"<IMPROVED_VARIABLE>{json.dumps(start)}</IMPROVED_VARIABLE>"

    cassette = tmp_path / "cassette.jsonl"
    recorded = optimize(domain, instance, engine=RecordingEngine(ScriptedEngine(model), cassette),
                        run_dir=tmp_path / "py", iterations=3, progress=False)
    run_dir = tmp_path / "cli"
    out = json.loads(tgdomains("optimize", "radiotherapy", "--case", "prostate-2d", "--iterations", "2",
                               "--replay", str(cassette), "--run-dir", str(run_dir), "--json").stdout)
    assert [json.loads(line)["value"] for line in (run_dir / "steps.jsonl").read_text().splitlines()] == \
        [s.value for s in recorded.steps[:3]]
    resumed = json.loads(tgdomains("optimize", "radiotherapy", "--iterations", "3", "--replay", str(cassette),
                                   "--resume", str(run_dir), "--json").stdout)
    steps = [json.loads(line) for line in (run_dir / "steps.jsonl").read_text().splitlines()]
    assert [s["iteration"] for s in steps] == [0, 1, 2, 3]
    assert resumed["best_value"] == recorded.best_value and out["run_dir"] == resumed["run_dir"]
    report = tgdomains("report", str(run_dir)).stdout
    assert "score_trajectory.png" in report and (run_dir / "report" / "summary.md").exists()


def test_a_strategy_flag_that_does_not_apply_is_a_clear_error(tmp_path):
    proc = tgdomains("optimize", "radiotherapy", "--strategy", "reflexion", "--momentum", "2", "--run-dir",
                     str(tmp_path / "r"), check=False)
    assert proc.returncode == 2 and "--momentum does not apply to --strategy reflexion" in proc.stderr
    proc = tgdomains("optimize", "radiotherapy", "--strategy", "zero-shot", "--population", "3", check=False)
    assert proc.returncode == 2 and "--population does not apply to --strategy zero-shot" in proc.stderr
    proc = tgdomains("optimize", "radiotherapy", "--strategy", "annealing", check=False)
    assert proc.returncode == 2 and "unknown strategy 'annealing'" in proc.stderr and "optuna" in proc.stderr


@pytest.mark.slow
def test_an_llm_free_baseline_runs_resumes_and_reports_like_any_strategy(tmp_path):
    pytest.importorskip("optuna")
    cassette = tmp_path / "empty.jsonl"
    cassette.write_text("")  # nothing to replay: the baseline makes no LLM call
    run_dir = tmp_path / "optuna"
    out = json.loads(tgdomains("optimize", "radiotherapy", "--strategy", "optuna", "--evaluation-budget", "3",
                               "--replay", str(cassette), "--run-dir", str(run_dir), "--json", "--quiet").stdout)
    assert out["strategy"] == "optuna" and out["usage"]["evaluations"] == 3 and out["usage"]["llm_calls"] == 0
    again = json.loads(tgdomains("optimize", "radiotherapy", "--evaluation-budget", "4", "--replay", str(cassette),
                                 "--resume", str(run_dir), "--json", "--quiet").stdout)
    assert again["strategy"] == "optuna" and again["usage"]["evaluations"] == 4
    report = tgdomains("report", str(run_dir)).stdout
    assert {"score_trajectory.png", "front.png", "lineage.png", "summary.md"} <= {Path(p).name for p in report.split()}


def test_strategy_flags_come_from_the_strategies_fields_and_reach_the_chosen_strategy(capsys):
    from tgdomains.cli import _parser, _run_kwargs
    from tgdomains.domain import get_domain

    domain = get_domain("radiotherapy")
    argv = ["optimize", "radiotherapy", "--strategy", "chain", "--momentum", "5"]
    assert _run_kwargs(_parser(argv).parse_args(argv), domain) == {"strategy": "chain", "momentum": 5}
    argv = ["optimize", "radiotherapy", "--trials", "2"]  # no --strategy: the domain's default, tpe
    assert _run_kwargs(_parser(argv).parse_args(argv), domain) == {"strategy": "tpe", "trials": 2}
    argv = ["optimize", "radiotherapy", "--strategy", "population", "--population", "2", "--proposals", "3"]
    assert _run_kwargs(_parser(argv).parse_args(argv), domain) == {"strategy": "population", "population": 2,
                                                                  "proposals": 3}
    argv = ["optimize", "radiotherapy", "--strategy", "optuna", "--trials", "4"]  # a domain strategy's own field
    assert _run_kwargs(_parser(argv).parse_args(argv), domain) == {"strategy": "optuna", "trials": 4}
    argv = ["optimize", "radiotherapy", "--help"]
    with pytest.raises(SystemExit):
        _parser(argv).parse_args(argv)
    assert "children per parent per iteration; default 2 (population)" in " ".join(capsys.readouterr().out.split())
