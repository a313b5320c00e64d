"""``avail rebuild``: every flow process rewrites all of its SKUs into Redis from its state.

Redis keeps a random generation token. The flow's store guard treats a new or missing
token as "Redis lost its data" (dataflows/store_guard.py); this command sets a new
one on purpose, after Redis was restored from an old backup or keys were deleted by hand.
"""

from __future__ import annotations

import secrets
import time

import redis

from avail.projection import Keys

LIVE_WITHIN_US = 10_000_000


def ensure_generation(client: redis.Redis, keys: Keys) -> str:
    """The current generation token, creating one if Redis has none."""
    client.set(keys.generation, secrets.token_hex(8), nx=True)
    token = client.get(keys.generation)
    return token.decode() if isinstance(token, bytes) else str(token)


def request_rebuild(client: redis.Redis, keys: Keys) -> str:
    """A new generation: every flow process rewrites all of its SKUs."""
    token = secrets.token_hex(8)
    client.set(keys.generation, token)
    return token


def live_processes(client: redis.Redis, keys: Keys) -> set[str]:
    """``host:pid`` of every flow process with a heartbeat in the last 10 s."""
    now = time.time_ns() // 1000
    beats: dict[bytes, bytes] = client.hgetall(keys.heartbeat)  # type: ignore[assignment]
    return {worker.decode().rsplit(":", 1)[0] for worker, at in beats.items() if now - int(at) < LIVE_WITHIN_US}


def rebuilt_by(client: redis.Redis, keys: Keys, token: str) -> set[str]:
    done: dict[bytes, bytes] = client.hgetall(keys.rebuilt)  # type: ignore[assignment]
    return {process.decode() for process, generation in done.items() if generation.decode() == token}


def rebuild(client: redis.Redis, keys: Keys, wait_s: float | None, out: list[str]) -> int:
    """Asks for a rebuild; with ``wait_s``, waits until every live flow process has sent it."""
    token = request_rebuild(client, keys)
    out.append(f"rebuild asked: generation {token}; every flow process rewrites its SKUs from its state")
    if wait_s is None:
        return 0
    deadline = time.monotonic() + wait_s
    while True:
        live, done = live_processes(client, keys), rebuilt_by(client, keys, token)
        if live and live <= done:
            out.append(f"rebuilt by {len(done)} flow process(es): {', '.join(sorted(done))}")
            return 0
        if time.monotonic() >= deadline:
            missing = sorted(live - done) or ["(no flow process is running: it rebuilds when it starts)"]
            out.append(f"not confirmed within {wait_s:g} s by: {', '.join(missing)}")
            return 1
        time.sleep(0.25)
