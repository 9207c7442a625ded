"""The docking worker process: reads one JSON request per line on stdin, writes one JSON result per line.

Started by `worker_pool` as ``python -m domains.molecules.worker``, in a session of its own. It lives as long as its
pool, so the `vina` backend's grid maps, computed for the first ligand of a target, serve every later ligand of that
target; and no longer than the process that started it: when that one dies (a SIGKILL leaves it no time to stop its
workers), the worker kills its own process group, the docking programs it started included.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time


def _die_with_parent(poll_s: float = 1.0) -> None:
    """Watch, in a daemon thread, for the parent's death (we are re-parented), then kill our process group."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        if os.getpgrp() == os.getpid():  # our own group (started in a session of its own): nobody else's in it
            os.killpg(os.getpgrp(), signal.SIGKILL)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main() -> None:
    _die_with_parent()
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
