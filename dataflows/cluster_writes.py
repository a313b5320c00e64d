"""What the sinks do on a Redis Cluster that one Redis needs not: replica acknowledgements, scripts on every master.

``ReplicaAcks``: a write batch counts as done once a replica of each master holds it.

Replication is asynchronous: a master killed right after it acknowledged a batch takes
that batch with it, and the replica promoted in its place never saw it. The sinks end
each pipeline with ``WAIT 1 <timeout>`` on every master that has a replica (on the
pipeline's own connection to it, so it covers exactly these writes). A batch whose
master dies before WAIT answers fails as a whole and is retried on the new master;
writes are idempotent (version guard, feed dedup), so nothing is lost or repeated.
A master whose replica is away answers after the timeout: the batch goes on, with a
warning, rather than the flow stopping while a replica is rebuilt.

``ScriptsOnEveryMaster``: a cluster pipeline cannot load a script a master lacks.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from redis.cluster import ClusterNode, RedisCluster

log = logging.getLogger(__name__)

WAIT_TIMEOUT_MS = 200
RECHECK_S = 10.0


class ReplicaAcks:
    def __init__(self, client: redis.Redis | RedisCluster) -> None:
        self._cluster = client if isinstance(client, RedisCluster) else None
        self._masters: tuple[str, ...] = ()
        self._waiting_on: list[ClusterNode] = []
        self._checked_at = float("-inf")
        self._warned_at = float("-inf")

    def append(self, pipe: Any) -> int:
        """Appends the WAITs to ``pipe`` (last, so earlier results keep their places); returns how many."""
        if self._cluster is None:
            return 0
        masters = self._cluster.get_primaries()  # type: ignore[no-untyped-call]
        names = tuple(sorted(node.name for node in masters))
        now = time.monotonic()
        if names != self._masters or now - self._checked_at > RECHECK_S:
            self._masters, self._checked_at = names, now
            self._waiting_on = [node for node in masters if self._has_replica(node)]
        for node in self._waiting_on:
            pipe.execute_command("WAIT", 1, WAIT_TIMEOUT_MS, target_nodes=node)
        return len(self._waiting_on)

    def check(self, acks: list[Any]) -> None:
        """Warns (at most once a minute) when a master answered WAIT with no replica holding the batch."""
        behind = [node.name for node, count in zip(self._waiting_on, acks, strict=False) if not count]
        now = time.monotonic()
        if behind and now - self._warned_at > 60:  # noqa: PLR2004
            self._warned_at = now
            log.warning("no replica of Redis master(s) %s confirmed a write within %d ms: a failover now could "
                        "lose it", ", ".join(behind), WAIT_TIMEOUT_MS)
            self._checked_at = float("-inf")  # the replica may be gone: look again

    def _has_replica(self, node: ClusterNode) -> bool:
        try:
            info: dict[str, Any] = node.redis_connection.info("replication")
        except redis.RedisError:
            return False
        return int(info.get("connected_slaves", 0)) > 0


class ScriptsOnEveryMaster:
    """Loads the sink's scripts on every master before a batch needs them, again when the masters change.

    A cluster pipeline cannot load a script when a master answers NOSCRIPT (a new cluster,
    a replica promoted); the batch then fails after its counters were already added on
    the other masters, and retrying it would count them twice.
    """

    def __init__(self, client: redis.Redis | RedisCluster, *scripts: str) -> None:
        self._cluster = client if isinstance(client, RedisCluster) else None
        self._scripts = scripts
        self._loaded_on: tuple[str, ...] = ()

    def ensure(self) -> None:
        if self._cluster is None:
            return
        masters = tuple(sorted(node.name for node in self._cluster.get_primaries()))  # type: ignore[no-untyped-call]
        if masters == self._loaded_on:
            return
        for script in self._scripts:
            self._cluster.script_load(script)  # to every master
        self._loaded_on = masters

    def forget(self) -> None:
        """A master answered NOSCRIPT: load them all again before the next batch."""
        self._loaded_on = ()
