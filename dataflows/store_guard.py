"""Rebuilds Redis from the flow's state when Redis lost its data (or ``avail rebuild`` asks).

Redis holds a random ``generation`` token. Every SKU logic remembers the token it last
wrote its whole hash under (kept in its snapshot, so this survives a flow restart). A
guard per process reads the token about once a second; when it is missing (Redis came
back empty) it creates a new one, and when it differs from the one this process runs
under, it republishes the rules and sends a ``Rebuild`` to every SKU of this process
whose logic wrote under another token. Those SKUs write their whole hash again, and
their channel numbers go through the feed, which republishes what Redis forgot.

The Redis sink refuses a partial write to a SKU hash that does not exist (a lost or
evicted key) and hands the SKU back here, so it is rebuilt even between two polls.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import redis
from bytewax.inputs import DynamicSource, StatelessSourcePartition

from dataflows.rules_reload import ActiveRules, publish
from dataflows.shard_key import shard_of
from projection import Keys, ensure_generation
from projection.connect import SyncClient, sync_client

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Rebuild:
    """Write these SKUs' whole hashes again (to a ``SkuLogic``: its own)."""

    skus: tuple[str, ...] = ()


REBUILD = Rebuild()


def by_shard(skus: list[str]) -> list[tuple[str, Rebuild]]:
    groups: dict[str, list[str]] = {}
    for sku in skus:
        groups.setdefault(shard_of(sku), []).append(sku)
    return [(shard, Rebuild(tuple(members))) for shard, members in groups.items()]


class Rebuildable(Protocol):
    written_generation: str


class Registry:
    """This process's SKU logics, so a rebuild reaches SKUs that get no events.

    Bytewax builds every resumed SKU's logic when it loads a snapshot, so after a
    restart the registry holds every SKU this process owns, not only the busy ones.
    """

    def __init__(self, generation: str = "") -> None:
        self.generation = generation
        self._logics: dict[str, Rebuildable] = {}
        self._lost: set[str] = set()
        self._lock = threading.Lock()  # several workers of one process share the registry
        self._guard_claimed = False

    def add(self, sku: str, logic: Rebuildable) -> None:
        with self._lock:
            self._logics[sku] = logic

    def __len__(self) -> int:
        return len(self._logics)

    def behind(self, generation: str) -> list[str]:
        """SKUs whose last whole write was under another generation."""
        with self._lock:
            return [sku for sku, logic in self._logics.items() if logic.written_generation != generation]

    def report_lost(self, skus: list[str]) -> None:
        with self._lock:
            self._lost.update(skus)

    def take_lost(self) -> list[str]:
        with self._lock:
            lost, self._lost = sorted(self._lost), set()
            return lost

    def claim_guard(self) -> bool:
        """True for the first worker of this process to ask: one guard per process is enough."""
        with self._lock:
            claimed, self._guard_claimed = self._guard_claimed, True
            return not claimed


class _Guard(StatelessSourcePartition[tuple[str, Rebuild]]):
    def __init__(self, registry: Registry, active: ActiveRules, client: SyncClient, keys: Keys,
                 interval: timedelta, chunk: int, active_guard: bool) -> None:
        self.registry, self.active, self.client, self.keys = registry, active, client, keys
        self.interval, self.chunk, self.active_guard = interval, chunk, active_guard
        self.pending: Iterator[list[str]] | None = None
        self.awake = datetime.now(UTC)
        self.down_since: float | None = None
        self.process = f"{socket.gethostname()}:{os.getpid()}"

    def next_batch(self) -> list[tuple[str, Rebuild]]:
        if not self.active_guard:
            # Polled like the active guard, though it has nothing to say: an input that sleeps holds back
            # its worker's epoch, and with it every stateful step of the cluster (nothing would be applied).
            self.awake = datetime.now(UTC) + self.interval
            return []
        if self.pending is not None:
            chunk = next(self.pending, None)
            if chunk is not None:
                return by_shard(chunk)
            self.pending = None
            log.info("rebuild items sent for generation %s", self.registry.generation)
            try:
                self.client.hset(self.keys.rebuilt, self.process, self.registry.generation)
            except redis.RedisError as exc:
                log.warning("rebuild not acknowledged in Redis: %s", exc)
        self.awake = datetime.now(UTC) + self.interval
        try:
            self._check()
        except redis.RedisError as exc:
            if self.down_since is None:
                self.down_since = time.monotonic()
                log.warning("store guard cannot read Redis (%s); will check again", exc)
            return []
        if self.down_since is not None:
            log.info("store guard reaches Redis again after %.1f s", time.monotonic() - self.down_since)
            self.down_since = None
        lost = self.registry.take_lost()
        if lost:
            log.warning("%d SKU hashes were missing in Redis; rewriting them whole", len(lost))
        return by_shard(lost)

    def _check(self) -> None:
        token = ensure_generation(self.client, self.keys)
        if token == self.registry.generation:
            return
        behind = self.registry.behind(token)
        log.warning("Redis data generation is now %s (was %s): Redis lost its data or a rebuild was asked; "
                    "republishing the rules and rewriting %d SKUs", token, self.registry.generation, len(behind))
        publish(self.client, self.keys, self.active.sources, self.active.rules)
        self.client.hincrby(self.keys.stats, "rebuilds", 1)
        self.registry.generation = token
        self.pending = (behind[i:i + self.chunk] for i in range(0, len(behind), self.chunk))

    def next_awake(self) -> datetime | None:
        return None if self.pending is not None else self.awake

    def close(self) -> None:
        self.client.close()


class StoreGuard(DynamicSource[tuple[str, Rebuild]]):
    """One partition per worker; the first one built in a process does the watching.

    Items are keyed by state shard (``shard_of``), each naming the shard's SKUs to rewrite.
    """

    def __init__(self, registry: Registry, active: ActiveRules, url: str, keys: Keys, interval_s: float = 1.0,
                 chunk: int = 2000) -> None:
        self.registry, self.active, self.url, self.keys = registry, active, url, keys
        self.interval = timedelta(seconds=interval_s)
        self.chunk = chunk

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Guard:
        client = sync_client(self.url, socket_timeout=5, socket_connect_timeout=5)
        return _Guard(self.registry, self.active, client, self.keys, self.interval, self.chunk,
                      self.registry.claim_guard())
