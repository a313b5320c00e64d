"""Hot reload: one watcher validates the rules directory, every process runs what it published.

The watcher is a one-partition source, so exactly one worker in the whole cluster reads
the directory. A valid change is published to Redis (the file texts and the version),
adopted by this process at once, and followed by ``RulesChanged`` items naming every
known SKU, one per state shard, routed like events to the worker that owns the shard,
which recomputes them. Every
other process adopts the published texts when such an item reaches it, or within a
second by polling the version, so all workers end on the same rules_version. A refused
change is logged with the loader's messages, counted, and left in Redis for ``/readyz``;
the last valid set keeps running.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import orjson
import redis
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from atp.rules import RuleSet
from dataflows.feed_sink import start_feeds
from dataflows.shard_key import shard_of
from projection import Keys, rules_document
from projection.connect import SyncClient, sync_client
from rulebook import RulesError, check_sources, read_sources, rule_files

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RulesChanged:
    """Recompute these SKUs under ``version`` (adopting it first if this process lacks it).

    To a ``SkuLogic`` it means its own SKU, whatever ``skus`` holds.
    """

    version: str
    skus: tuple[str, ...] = ()


def publish(client: SyncClient, keys: Keys, sources: dict[str, str], rules: RuleSet) -> None:
    pipe = client.pipeline(transaction=True)
    pipe.set(keys.rules_source, orjson.dumps({"version": rules.version, "sources": sources}))
    pipe.set(keys.rules, orjson.dumps(rules_document(rules)))
    pipe.set(keys.rules_version, rules.version)
    pipe.delete(keys.rules_error)
    pipe.execute()
    start_feeds(client, keys, rules.channels)


def report_refused(client: SyncClient, keys: Keys, problems: list[str], kept: str) -> None:
    document = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "kept_version": kept, "problems": problems}
    pipe = client.pipeline(transaction=False)
    pipe.set(keys.rules_error, orjson.dumps(document))
    pipe.hincrby(keys.stats, "rules_reload_failed", 1)
    pipe.execute()


class ActiveRules:
    """The rule set every SKU's logic in this process reads; swapped whole on a change."""

    def __init__(self, rules: RuleSet, redis_url: str | None = None, keys: Keys | None = None,
                 poll_s: float = 1.0, sources: dict[str, str] | None = None) -> None:
        self.rules = rules
        self.sources = sources or {}
        """The file texts behind ``rules``: republished when Redis lost them."""
        self._redis_url = redis_url
        self._keys = keys
        self._poll_s = poll_s
        self._checked = time.monotonic()
        self._client: SyncClient | None = None

    def current(self) -> RuleSet:
        """The rules, after checking the published version at most every ``poll_s``."""
        if self._keys is not None and time.monotonic() - self._checked >= self._poll_s:
            self._checked = time.monotonic()
            try:
                published = self._redis().get(self._keys.rules_version)
            except redis.RedisError as exc:  # Redis down: keep computing with what this process runs
                log.debug("rules version check skipped: %s", exc)
                return self.rules
            if isinstance(published, bytes) and published.decode() != self.rules.version:
                self.ensure(published.decode())
        return self.rules

    def ensure(self, version: str) -> RuleSet:
        """Adopts the published rules if they are ``version`` and this process runs others."""
        if version == self.rules.version or self._keys is None:
            return self.rules
        try:
            raw = self._redis().get(self._keys.rules_source)
        except redis.RedisError as exc:
            log.warning("rules %s not adopted yet, Redis unavailable: %s", version, exc)
            return self.rules
        if raw is None:
            return self.rules
        published = orjson.loads(raw)
        if published["version"] != version:
            return self.rules  # a newer change was published meanwhile; its own items follow
        checked = check_sources(published["sources"])
        if checked.rules is None or checked.rules.version != version:
            log.error("published rules %s do not load here; keeping %s", version, self.rules.version)
            return self.rules
        log.info("rules %s adopted (was %s)", version, self.rules.version)
        self.rules, self.sources = checked.rules, published["sources"]
        return self.rules

    def _redis(self) -> SyncClient:
        if self._client is None:
            assert self._redis_url is not None  # noqa: S101 - keys set implies url set
            self._client = sync_client(self._redis_url, socket_timeout=5, socket_connect_timeout=5)
        return self._client


def fingerprint(directory: Path) -> tuple[tuple[str, int, int], ...]:
    try:
        return tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in rule_files(directory))
    except OSError:
        return ()


class _Watcher(StatefulSourcePartition[tuple[str, RulesChanged], str]):
    def __init__(self, directory: Path, active: ActiveRules, url: str, keys: Keys, interval: timedelta,
                 chunk: int) -> None:
        self.directory, self.active, self.keys, self.interval, self.chunk = directory, active, keys, interval, chunk
        self.client = sync_client(url, socket_timeout=10, socket_connect_timeout=5)
        self.seen = fingerprint(directory)
        self.pending: Iterator[list[bytes]] | None = None
        self.pending_version = ""
        self.awake = datetime.now(UTC)

    def next_batch(self) -> list[tuple[str, RulesChanged]]:
        if self.pending is not None:
            try:
                chunk = next(self.pending, None)
            except redis.RedisError as exc:  # the walk over known SKUs starts again once Redis answers
                log.warning("rules refresh paused, Redis unavailable: %s", exc)
                self.pending = self._all_skus()
                return []
            if chunk is not None:
                groups: dict[str, list[str]] = {}
                for sku in chunk:
                    name = sku.decode()
                    groups.setdefault(shard_of(name), []).append(name)
                return [(shard, RulesChanged(self.pending_version, tuple(skus))) for shard, skus in groups.items()]
            self.pending = None
        self.awake = datetime.now(UTC) + self.interval
        now = fingerprint(self.directory)
        if now == self.seen:
            return []
        try:
            self._reload()
        except redis.RedisError as exc:  # seen stays old: the change is tried again on the next tick
            log.warning("rules change not published yet, Redis unavailable: %s", exc)
            return []
        self.seen = now
        return []

    def _reload(self) -> None:
        sources, errors = read_sources(self.directory)
        checked = check_sources(sources) if not errors else None
        if checked is None or checked.rules is None:
            messages = [str(e) for e in (checked.errors if checked is not None else errors)]
            for message in messages:
                log.error("rules change refused: %s", message)
            report_refused(self.client, self.keys, messages, self.active.rules.version)
            return
        rules = checked.rules
        if rules.version == self.active.rules.version:
            self.client.delete(self.keys.rules_error)  # e.g. a broken file was fixed back
            return
        publish(self.client, self.keys, sources, rules)
        self.client.hincrby(self.keys.stats, "rules_reloaded", 1)
        log.info("rules %s loaded from %s (was %s); recomputing every SKU", rules.version, self.directory,
                 self.active.rules.version)
        self.active.rules, self.active.sources = rules, sources
        self.pending_version = rules.version
        self.pending = self._all_skus()

    def _all_skus(self) -> Iterator[list[bytes]]:
        for chunk_start in range(0, 1 << 62, self.chunk):
            chunk = cast(list[bytes], self.client.zrange(self.keys.skus, chunk_start, chunk_start + self.chunk - 1))
            if not chunk:
                return
            yield chunk

    def next_awake(self) -> datetime | None:
        return None if self.pending is not None else self.awake

    def snapshot(self) -> str:
        return self.active.rules.version

    def close(self) -> None:
        self.client.close()


class RulesWatcher(FixedPartitionedSource[tuple[str, RulesChanged], str]):
    """One partition in the whole cluster: the worker that owns it watches the directory."""

    def __init__(self, directory: Path, active: ActiveRules, url: str, keys: Keys, interval_s: float = 1.0,
                 chunk: int = 2000) -> None:
        self.directory, self.active, self.url, self.keys = directory, active, url, keys
        self.interval = timedelta(seconds=interval_s)
        self.chunk = chunk

    def list_parts(self) -> list[str]:
        return ["rules"]

    def build_part(self, step_id: str, for_part: str, resume_state: str | None) -> _Watcher:
        return _Watcher(self.directory, self.active, self.url, self.keys, self.interval, self.chunk)


def startup_rules(directory: Path, url: str, keys: Keys) -> ActiveRules:
    """The rules to start with: the directory if valid (published), else the last published set."""
    client = sync_client(url, socket_connect_timeout=5)
    try:
        sources, errors = read_sources(directory)
        if not errors:
            checked = check_sources(sources)
            if checked.rules is not None:
                publish(client, keys, sources, checked.rules)
                for warning in checked.warnings:
                    log.warning("rules: %s", warning)
                return ActiveRules(checked.rules, url, keys, sources=sources)
            errors = checked.errors
        raw = client.get(keys.rules_source)
        published = orjson.loads(raw)["sources"] if raw is not None else {}
        fallback = check_sources(published).rules if raw is not None else None
        if fallback is None:
            raise RulesError(errors)
        for error in errors:
            log.error("rules in %s refused, running the last published set %s: %s", directory, fallback.version, error)
        report_refused(client, keys, [str(e) for e in errors], fallback.version)
        return ActiveRules(fallback, url, keys, sources=published)
    finally:
        client.close()
