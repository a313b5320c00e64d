"""Redis data generations: how every flow process learns that Redis lost its data.

Redis keeps a random generation token. The flow's store guard treats a new or missing
token as "Redis lost its data" and rewrites every SKU (dataflows/store_guard.py);
``avail rebuild`` sets a new one on purpose, after Redis was restored from an old
backup or keys were deleted by hand. Flow processes record the generation they
finished rebuilding for, so the command can wait for all of them.
"""

from __future__ import annotations

import secrets
import time

from projection.connect import SyncClient
from projection.keys import Keys

LIVE_WITHIN_US = 10_000_000


def ensure_generation(client: SyncClient, keys: Keys) -> str:
    """The current generation token, creating one if Redis has none."""
    client.set(keys.generation, secrets.token_hex(8), nx=True)
    token = client.get(keys.generation)
    return token.decode() if isinstance(token, bytes) else str(token)


def request_rebuild(client: SyncClient, keys: Keys) -> str:
    """A new generation: every flow process rewrites all of its SKUs."""
    token = secrets.token_hex(8)
    client.set(keys.generation, token)
    return token


def live_processes(client: SyncClient, keys: Keys) -> set[str]:
    """``host:pid`` of every flow process with a heartbeat in the last 10 s."""
    now = time.time_ns() // 1000
    beats: dict[bytes, bytes] = client.hgetall(keys.heartbeat)  # type: ignore[assignment]
    return {worker.decode().rsplit(":", 1)[0] for worker, at in beats.items() if now - int(at) < LIVE_WITHIN_US}


def rebuilt_by(client: SyncClient, keys: Keys, token: str) -> set[str]:
    """``host:pid`` of every flow process that finished rewriting its SKUs for generation ``token``."""
    done: dict[bytes, bytes] = client.hgetall(keys.rebuilt)  # type: ignore[assignment]
    return {process.decode() for process, generation in done.items() if generation.decode() == token}
