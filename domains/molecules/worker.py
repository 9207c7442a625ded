"""The docking worker process: reads one JSON request per line on stdin, writes one JSON result per line.

Started by `worker_pool` as ``python -m domains.molecules.worker``. It lives as long as its pool, so the `vina`
backend's grid maps, computed for the first ligand of a target, serve every later ligand of that target.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> None:
    # Vina and Open Babel print to the C-level stdout; keep the protocol on a private copy of it and send
    # everything else written to fd 1 to stderr, so no stray line can corrupt a reply.
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    from domains.molecules.docking import DockingSettings, dock_in_this_process

    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        result = dock_in_this_process(request["smiles"], request["target"], DockingSettings(**request["settings"]))
        protocol.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
