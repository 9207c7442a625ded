"""Our hidden verdict against evalplus's on HumanEval+: every canonical solution and a set of mutants, each judged
by both, with the time each side takes. The test suite's differential test (tests/code/test_evalplus_agreement.py)
uses the same programs and the same two verdicts.

Ours: `CodeEvaluator(problem, sandbox).run_tests(program, problem.hidden())`, one sandbox job per program (every
base + plus input of the problem), on a worker that runs nothing else. evalplus 0.3.1: what
`evalplus.evaluate.check_correctness` does (`untrusted_check` on the base inputs, then on the plus inputs, with
evalplus's default time limits and `fast_check`), with the expected outputs made as `get_groundtruth` makes them
(`trusted_exec` of the canonical solution). `evalplus.evaluate` itself is not imported: importing it imports
evalplus's code generation (transformers, datasets, tree-sitter), which the verdict does not use. The dataset is
the shipped file, read as evalplus's `get_human_eval_plus` reads it (one JSON object per line); nothing is
downloaded.

    python3 bench/code/humaneval_agreement.py --data ../shared/data/HumanEvalPlus.jsonl.gz --out results.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
HUMANEVAL_PLUS = HERE.parents[2] / "shared" / "data" / "HumanEvalPlus.jsonl.gz"  # ../shared beside the checkout


@dataclass(frozen=True)
class Mutant:
    """A program for one task: the canonical solution with `edit` (old, new) applied once, or a whole `program`.
    `differs`: why our verdict is meant to differ from evalplus's (a documented policy difference), or None."""

    task: int
    kind: str
    edit: tuple[str, str] | None = None
    program: str | None = None
    differs: str | None = None

    @property
    def task_id(self) -> str:
        return f"HumanEval/{self.task}"

    def source(self, record: dict) -> str:
        if self.program is not None:
            return self.program
        old, new = self.edit
        canonical = record["canonical_solution"]
        if canonical.count(old) != 1:
            raise ValueError(f"{self.task_id} {self.kind}: {old!r} is not once in the canonical solution")
        return record["prompt"] + canonical.replace(old, new)


MUTANTS = [
    # off by one
    Mutant(0, "off-by-one", ("range(len(sorted_numbers) - 1)", "range(len(sorted_numbers) - 2)")),
    Mutant(55, "off-by-one", ("range(3, n + 1)", "range(3, n)")),
    Mutant(100, "off-by-one", ("range(n)", "range(n - 1)")),
    Mutant(24, "off-by-one", ("range(2, n)", "range(1, n)")),
    # wrong comparison
    Mutant(0, "wrong comparison", ("< threshold", "<= threshold")),
    Mutant(3, "wrong comparison", ("account < 0", "account <= 0")),
    Mutant(159, "wrong comparison, equivalent", ("need <= remaining", "need < remaining")),
    # missing edge case
    Mutant(12, "missing edge case (empty list)", ("if not strings:\n        return None\n", "")),
    Mutant(106, "missing edge case (n = 0)", ("if n == 0: return []\n", "")),
    Mutant(150, "missing edge case (n < 2 is not prime)", ("a < 2 or ", "")),
    Mutant(16, "missing case folding", ("set(string.lower())", "set(string)")),
    Mutant(83, "wrong power", ("10 ** (n - 2)", "10 ** (n - 1)")),
    # wrong type
    Mutant(23, "wrong type (str)", ("return len(string)", "return str(len(string))")),
    Mutant(34, "wrong type (tuple)", ("return sorted(set(l))", "return tuple(sorted(set(l)))")),
    Mutant(0, "int for bool, equal", ("return True", "return 1")),
    Mutant(45, "int for float, equal", ("return a * h / 2", "return a * h // 2 if a * h % 2 == 0 else a * h / 2"),
           differs="an int is accepted for a float expected value within the tolerance (evalplus then requires "
                   "the same type)"),
    Mutant(45, "floor division", ("return a * h / 2", "return a * h // 2")),
    # float rounding
    Mutant(2, "rounded to 2 places", ("return number - int(number)", "return round(number - int(number), 2)")),
    Mutant(4, "rounded to 7 places", ("return sum(abs(x - mean) for x in numbers) / len(numbers)",
                                      "return round(sum(abs(x - mean) for x in numbers) / len(numbers), 7)")),
    Mutant(4, "rounded to 3 places", ("return sum(abs(x - mean) for x in numbers) / len(numbers)",
                                      "return round(sum(abs(x - mean) for x in numbers) / len(numbers), 3)")),
    Mutant(4, "relative error 1e-9", ("return sum(abs(x - mean) for x in numbers) / len(numbers)",
                                      "return sum(abs(x - mean) for x in numbers) / len(numbers) * (1 + 1e-9)"),
           differs="absolute tolerance only: evalplus also accepts a relative error of 1e-7"),
    # several right answers
    Mutant(32, "another root (Newton from other starts first)", ("    x, tol = 0, 1e-5\n", (
        "    for start in (3.0, -3.0, 7.0, -7.0):\n        x = start\n        try:\n"
        "            for _ in range(200):\n                fx, dfx = func(x), derivative(x)\n"
        "                if abs(fx) < 1e-6 or dfx == 0:\n                    break\n"
        "                x = x - fx / dfx\n            if abs(func(x)) < 1e-6:\n                return x\n"
        "        except (OverflowError, ZeroDivisionError):\n            pass\n"
        "    x, tol = 0, 1e-5\n"))),  # another root than the canonical one on 224 of 888 inputs
    Mutant(32, "root rounded to 4 places", ("    return x\n", "    return round(x, 4)\n")),
    # names nobody imported
    Mutant(13, "math without import", program="def greatest_common_divisor(a: int, b: int) -> int:\n"
                                              "    return math.gcd(a, b)\n"),
    Mutant(55, "reduce without import", program="def fib(n: int):\n"
                                                "    return reduce(lambda ab, _: (ab[1], ab[0] + ab[1]), range(n), (0, 1))[0]\n"),
    Mutant(25, "math without import", ("    import math\n", "")),
    Mutant(13, "math imported", program="import math\n\n\ndef greatest_common_divisor(a: int, b: int) -> int:\n"
                                        "    return math.gcd(a, b)\n"),
    Mutant(12, "typing names without import", program=(
        "def longest(strings: List[str]) -> Optional[str]:\n    if not strings:\n        return None\n"
        "    return max(strings, key=len)\n"),
           differs="the typing names are in scope: the task text says `from typing import *` is done"),
    # raises, hangs, side effects
    Mutant(35, "raises on long lists", ("return max(l)", "assert len(l) < 20\n    return max(l)")),
    Mutant(53, "hangs on one input", ("return x + y", "while x == 123456789098765432101234567894:\n"
                                                      "        pass\n    return x + y")),
    Mutant(35, "prints", ("return max(l)", "print(l)\n    return max(l)")),
    # wrong after all: [None, None, ...] is an input, and sorting it in place raises (its set has one element)
    Mutant(34, "sorts its argument in place", ("return sorted(set(l))", "l.sort()\n    return sorted(set(l))")),
    Mutant(0, "quadratic but right", program=(
        "def has_close_elements(numbers, threshold):\n    return any(abs(a - b) < threshold\n"
        "               for i, a in enumerate(numbers) for j, b in enumerate(numbers) if i != j)\n")),
    Mutant(4, "returns a NumPy float", program=(
        "import numpy as np\n\n\ndef mean_absolute_deviation(numbers):\n    a = np.array(numbers)\n"
        "    return np.mean(np.abs(a - a.mean()))\n")),  # evalplus too: not exactly equal, and not a float
    Mutant(23, "returns a NumPy integer", program=(
        "import numpy as np\n\n\ndef strlen(string: str) -> int:\n    return np.int64(len(string))\n"),
           differs="NumPy scalars are refused: only values of exact builtin types are compared"),
]


def read_records(path: Path) -> dict[str, dict]:
    """The shipped file, as evalplus's get_human_eval_plus reads it: one task per line, by task_id."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return {task["task_id"]: task for task in map(json.loads, filter(str.strip, f))}


# ---------------------------------------------------------------- evalplus's verdict


def evalplus_truth(record: dict) -> dict[str, Any]:
    """Expected outputs and times, as evalplus.evaluate.get_groundtruth makes them for one task."""
    from evalplus.gen.util import trusted_exec

    code = record["prompt"] + record["canonical_solution"]
    truth: dict[str, Any] = {}
    for part in ("base", "plus"):
        truth[part], truth[f"{part}_time"] = trusted_exec(code, record[f"{part}_input"], record["entry_point"],
                                                          record_time=True)
    return truth


def evalplus_passes(record: dict, program: str, truth: dict[str, Any]) -> bool:
    """evalplus.evaluate.check_correctness's verdict with its defaults (fast_check on, as `evaluate` runs it).

    HumanEval/32 (find_zero) is the exception: evalplus 0.3.1's `untrusted_check` fails every find_zero program,
    its own canonical solution included, because its special oracle `continue`s before the input is counted as
    done, so fewer results than inputs come back (evalplus/eval/__init__.py, `unsafe_execute`). For that task the
    same oracle (`_poly(xs, out)` within atol on every input) is applied to the program's outputs, computed with
    evalplus's `trusted_exec` under its `time_limit`."""
    from evalplus.eval import PASS, untrusted_check

    if record["entry_point"] == "find_zero":
        return _find_zero_oracle(record, program)
    for part in ("base", "plus"):
        status, _ = untrusted_check("humaneval", program, record[f"{part}_input"], record["entry_point"],
                                    expected=truth[part], atol=record["atol"], ref_time=truth[f"{part}_time"],
                                    fast_check=True)
        if status != PASS:
            return False
    return True


def _find_zero_oracle(record: dict, program: str) -> bool:
    from evalplus.eval._special_oracle import _poly
    from evalplus.eval.utils import time_limit
    from evalplus.gen.util import trusted_exec

    inputs = record["base_input"] + record["plus_input"]
    try:
        with time_limit(60.0):
            outputs = trusted_exec(program, inputs, "find_zero")
        return all(abs(_poly(*args, out)) <= record["atol"] for args, out in zip(inputs, outputs, strict=True))
    except BaseException:  # whatever the program raised, or the time limit
        return False


# ---------------------------------------------------------------- ours


def our_passes(problem: Any, program: str, sandbox: Any) -> bool:
    """Our hidden verdict: every base + plus input passes (one sandbox job)."""
    from domains.code.evaluator import CodeEvaluator

    hidden = problem.hidden()
    result = CodeEvaluator(problem, sandbox).run_tests(program, hidden)
    return result.loaded and result.passed == len(hidden)


# ---------------------------------------------------------------- the comparison


def compare(data: Path, task_ids: list[str] | None = None, mutants: bool = True) -> dict[str, Any]:
    from domains.code.problems import load_problems
    from domains.code.sandbox import Sandbox

    records = read_records(data)
    problems = {p.id: p for p in load_problems(data)}
    chosen = task_ids or list(records)
    rows: list[dict[str, Any]] = []
    times = {"ours_build_s": 0.0, "ours_verdict_s": 0.0, "evalplus_truth_s": 0.0, "evalplus_verdict_s": 0.0}
    truths: dict[str, dict] = {}
    with Sandbox() as sandbox:
        programs = [(task_id, "canonical", records[task_id]["prompt"] + records[task_id]["canonical_solution"], None)
                    for task_id in chosen]
        if mutants:
            programs += [(m.task_id, m.kind, m.source(records[m.task_id]), m.differs) for m in MUTANTS
                         if m.task_id in chosen or task_ids is None]
        for task_id, kind, program, differs in programs:
            record, problem = records[task_id], problems[task_id]
            t0 = time.perf_counter()
            problem.hidden()  # expected values: built in the sandbox once, then cached
            t1 = time.perf_counter()
            ours = our_passes(problem, program, sandbox)
            t2 = time.perf_counter()
            if task_id not in truths:
                truths[task_id] = evalplus_truth(record)
            t3 = time.perf_counter()
            theirs = evalplus_passes(record, program, truths[task_id])
            t4 = time.perf_counter()
            if kind == "canonical":
                times["ours_build_s"] += t1 - t0
                times["ours_verdict_s"] += t2 - t1
                times["evalplus_truth_s"] += t3 - t2
                times["evalplus_verdict_s"] += t4 - t3
            rows.append({"task_id": task_id, "program": kind, "ours": ours, "evalplus": theirs,
                         "agree": ours == theirs, "policy_difference": differs})
    return {"rows": rows, "times_s": {k: round(v, 2) for k, v in times.items()}, "summary": summarize(rows)}


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def count(selected: list[dict[str, Any]]) -> dict[str, int]:
        return {"programs": len(selected), "agree": sum(r["agree"] for r in selected),
                "both_pass": sum(r["ours"] and r["evalplus"] for r in selected),
                "both_fail": sum(not r["ours"] and not r["evalplus"] for r in selected),
                "only_ours_pass": sum(r["ours"] and not r["evalplus"] for r in selected),
                "only_evalplus_pass": sum(r["evalplus"] and not r["ours"] for r in selected)}

    canonical = [r for r in rows if r["program"] == "canonical"]
    mutants = [r for r in rows if r["program"] != "canonical"]
    return {"canonical": count(canonical), "mutants": count(mutants),
            "disagreements": [f"{r['task_id']} {r['program']}: ours {'pass' if r['ours'] else 'fail'}, evalplus "
                              f"{'pass' if r['evalplus'] else 'fail'}"
                              + (f" (policy: {r['policy_difference']})" if r["policy_difference"] else "")
                              for r in rows if not r["agree"]]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(HUMANEVAL_PLUS))
    ap.add_argument("--task-ids", help="only these (comma-separated); default: all 164")
    ap.add_argument("--no-mutants", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results_humaneval_agreement.json"))
    args = ap.parse_args()
    started = time.perf_counter()
    result = compare(Path(args.data), args.task_ids.split(",") if args.task_ids else None, not args.no_mutants)
    result.update(wall_s=round(time.perf_counter() - started, 1), load_avg_1min_at_end=os.getloadavg()[0],
                  python=sys.version.split()[0], cache_dir=os.environ.get("TGDOMAINS_CACHE_DIR", "default"))
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=1))


if __name__ == "__main__":
    main()
