"""``avail rebuild``: every flow process rewrites all of its SKUs into Redis from its state."""

from __future__ import annotations

import time

from avail.progress import Progress
from projection import Keys, live_processes, rebuilt_by, request_rebuild
from projection.connect import SyncClient


def rebuild(client: SyncClient, keys: Keys, wait_s: float | None, out: list[str],
            progress: Progress | None = None) -> int:
    """Asks for a rebuild; with ``wait_s``, waits until every live flow process has done it.

    ``progress`` (a tqdm bar, say) shows how many of the live processes confirmed.
    """
    token = request_rebuild(client, keys)
    out.append(f"rebuild asked: generation {token}; every flow process rewrites its SKUs from its state")
    if wait_s is None:
        return 0
    deadline = time.monotonic() + wait_s
    while True:
        live, done = live_processes(client, keys), rebuilt_by(client, keys, token)
        if progress is not None:
            progress.total, progress.n = len(live), len(done & live)
            progress.refresh()
        if live and live <= done:
            out.append(f"rebuilt by {len(done)} flow process(es): {', '.join(sorted(done))}")
            return 0
        if time.monotonic() >= deadline:
            missing = sorted(live - done) or ["(no flow process is running: it rebuilds when it starts)"]
            out.append(f"not confirmed within {wait_s:g} s by: {', '.join(missing)}")
            return 1
        time.sleep(0.25)
