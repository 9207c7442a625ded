"""Time and peak memory of the worst input files tgdomains is handed: each case runs in a fresh Python process and
reports its wall time, its peak resident memory (from the kernel's rusage of that process) and the first line of what
it said (the refusal, or what it loaded).

    python3 bench/core/bench_input_bounds.py            # writes bench/core/results_input_bounds.json

The inputs are built under a temporary folder first (the 5 GiB zip member takes ~20 s of zlib to write).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).with_name("results_input_bounds.json")


def alias_bomb(levels: int, top: str) -> str:
    lines = ['a0: &a0 ["lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    return "\n".join(lines) + f"\n{top}: [*a{levels}]\n"


def build_inputs(folder: Path) -> dict[str, tuple[str, str]]:
    """name -> (what it is, the Python code that loads it)."""
    import numpy as np

    from domains.radiotherapy.cases import load_case, save_npz_case
    from domains.radiotherapy.goals import MAX_GOAL_FILE_BYTES

    cases: dict[str, tuple[str, str]] = {}
    bomb = folder / "bomb.yaml"
    bomb.write_text(alias_bomb(9, "goals"))
    cases["goals alias bomb"] = (f"{bomb.stat().st_size}-byte goal file, 9 levels of 10 aliases (10**9 strings)",
                                 f"from domains.radiotherapy.goals import load_goals; load_goals({str(bomb)!r})")
    problems = folder / "problems.yaml"
    problems.write_text(alias_bomb(9, "problems"))
    cases["problem YAML alias bomb"] = (f"{problems.stat().st_size}-byte code problem file, same bomb",
                                        f"from domains.code.problems import load_problems; "
                                        f"load_problems({str(problems)!r})")
    values = folder / "values.yaml"
    values.write_text("goals: [" + ", ".join(["1"] * ((MAX_GOAL_FILE_BYTES - 20) // 3)) + "]\n")
    cases["goal file at the size cap"] = (f"{values.stat().st_size:,}-byte goal file, one list of ~350k numbers",
                                          f"from domains.radiotherapy.goals import load_goals; "
                                          f"load_goals({str(values)!r})")
    big = folder / "big_problems.yaml"
    items = (16 << 20) // 20
    big.write_text("problems:\n" + "".join(f"- {'x' * 14}{i % 10}\n" for i in range(items)))
    cases["problem YAML at the size cap"] = (f"{big.stat().st_size:,}-byte problem file, {items:,} strings",
                                             f"from domains.code.problems import load_problems; "
                                             f"load_problems({str(big)!r})")

    case = load_case("prostate-2d")
    good = folder / "case.npz"
    save_npz_case(case, good)
    m = case.dose_influence.tocsr()
    with np.load(good) as f:
        arrays = {k: f[k] for k in f.files}
    bad = folder / "bad_indices.npz"
    np.savez_compressed(bad, **{**arrays, "dij_indices": m.indices + 10 ** 6})
    cases["case with out-of-range sparse indices"] = (
        f"prostate-2d saved, beamlet indices shifted out of range ({bad.stat().st_size:,} bytes)",
        f"from domains.radiotherapy.case import load_npz_case; load_npz_case({str(bad)!r})")
    nan = folder / "nan_doses.npz"
    np.savez_compressed(nan, **{**arrays, "dij_data": np.where(np.arange(m.nnz) % 3 == 0, np.nan, m.data)})
    cases["case with NaN doses"] = (f"prostate-2d saved, a third of the doses NaN ({nan.stat().st_size:,} bytes)",
                                    f"from domains.radiotherapy.case import load_npz_case; load_npz_case({str(nan)!r})")
    zbomb = folder / "zip_bomb.npz"
    np.savez_compressed(zbomb, **arrays)
    with zipfile.ZipFile(zbomb, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("padding.npy", "w", force_zip64=True) as member:
            header = np.lib.format.header_data_from_array_1_0(np.zeros(1, dtype=np.uint8))
            header["shape"] = (5 << 30,)
            np.lib.format.write_array_header_1_0(member, header)
            chunk = bytes(64 << 20)
            for _ in range((5 << 30) // len(chunk)):
                member.write(chunk)
    cases["case zip bomb"] = (f"{zbomb.stat().st_size:,}-byte .npz whose extra member inflates to 5 GiB",
                              f"from domains.radiotherapy.case import load_npz_case; load_npz_case({str(zbomb)!r})")
    cases["case, well-formed"] = (f"prostate-2d as a user case ({good.stat().st_size:,} bytes): the reference",
                                  f"from domains.radiotherapy.case import load_npz_case; load_npz_case({str(good)!r})")

    run_dir = folder / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({"domain": "arithmetic", "meta": {"instance_args": {"number": 9}},
                                                  "role_description": "", "constraints": [], "examples": []}))
    line = json.dumps({"id": 0, "iteration": 0, "value": "1 + 1", "status": "initial", "evaluation": {
        "score": -1, "metrics": {}, "passed": False, "valid": True, "text": "x" * 8000, "details": {}}})
    count = (255 << 20) // (len(line) + 1)
    with open(run_dir / "steps.jsonl", "w") as f:
        for i in range(count):
            f.write(line.replace('"id": 0, "iteration": 0', f'"id": {i}, "iteration": {i}', 1) + "\n")
    cases["run directory at the steps cap"] = (
        f"steps.jsonl of {(run_dir / 'steps.jsonl').stat().st_size:,} bytes ({count:,} steps of 8 KB)",
        f"from tgdomains.records import RunRecord; print(len(RunRecord({str(run_dir)!r}).read_steps(repair=False)))")
    reply = "{" + ", ".join(f'"organ_{i}": {{"weight": 1, "dose_Gy": 1}}' for i in range(10_000)) + "}"
    (folder / "reply.txt").write_text(reply)
    cases["reply naming 10,000 unknown structures"] = (
        f"a {len(reply):,}-character radiotherapy reply",
        "from domains.radiotherapy.plugin import RadiotherapyDomain; d = RadiotherapyDomain(); "
        "i = d.load({'case': 'prostate-2d'}); "
        f"d.parse(open({str(folder / 'reply.txt')!r}).read(), i)")
    return cases


def measure(code: str) -> dict[str, object]:
    """Run `code` in a fresh interpreter: wall seconds, peak RSS (MiB), exit status, first line of its output."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            cwd=ROOT)
    output = proc.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    lines = [x for x in output.strip().splitlines() if x.strip()]
    return {"wall_s": round(wall, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
            "exit_status": os.waitstatus_to_exitcode(status), "said": (lines[-1] if lines else "")[:300],
            "said_chars": len(lines[-1]) if lines else 0}


def main() -> None:
    sys.path.insert(0, str(ROOT))
    baseline = measure("import numpy, scipy.sparse, yaml, tgdomains")
    results = {"machine": f"{platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}",
               "baseline (imports only)": baseline, "cases": {}}
    with tempfile.TemporaryDirectory(prefix="tgd-bounds-") as tmp:
        for name, (what, code) in build_inputs(Path(tmp)).items():
            result = {"input": what, **measure(code)}
            results["cases"][name] = result
            print(f"{name}: {result['wall_s']} s, {result['peak_rss_mib']} MiB, exit {result['exit_status']}: "
                  f"{result['said'][:120]}", flush=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
