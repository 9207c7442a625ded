"""Whether this checkout is set up: exit 0 in about a second when everything `scripts/setup.sh` installs is here,
else 1 with one line per missing piece. `scripts/demo.sh` and `scripts/test.sh` run the set-up only when it says so.

Checked: the Debian commands (obabel, bwrap), the Python packages of every extra, the editable install pointing at
this checkout (a clone elsewhere may have installed it last), the small test model and the default local model
(by size: the set-up verified its sha256 when it placed it).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ("obabel", "bwrap")
MODULES = ("numpy", "scipy", "openai", "rich", "yaml", "rdkit", "dockstring", "vina", "meeko", "gemmi", "mol_ga",
           "matplotlib", "optuna", "threadpoolctl", "llama_cpp", "pytest", "hypothesis", "ruff", "pytest_timeout",
           "psutil", "evalplus")


def missing() -> list[str]:
    found = [f"the {c} command" for c in COMMANDS if shutil.which(c) is None]
    found += [f"the Python module {m}" for m in MODULES if importlib.util.find_spec(m) is None]
    # the installed package (as the `tgdomains` command and subprocesses import it, from outside the checkout) must be
    # this checkout's: a clone elsewhere may have installed itself last
    where = subprocess.run([sys.executable, "-c", "import tgdomains; print(tgdomains.__file__)"], cwd="/",
                           capture_output=True, text=True)
    if where.returncode != 0 or Path(where.stdout.strip()).resolve().parents[1] != ROOT:
        found.append(f"an editable install of {ROOT}")
    sys.path.insert(0, str(ROOT))
    from tgdomains.engines.models import DEFAULT_MODEL, lookup, model_file

    for model in (DEFAULT_MODEL, lookup("tiny")):
        if model is None or model_file(model) is None:
            found.append(f"the local model {getattr(model, 'name', 'tiny')}")
    return found


if __name__ == "__main__":
    gaps = missing()
    for gap in gaps:
        print(f"not set up: {gap}", file=sys.stderr)
    raise SystemExit(1 if gaps else 0)
