"""Keeps the read cache live while Redis reports every change of a SKU hash.

One dedicated RESP2 connection, named ``CLIENT_NAME`` (find it in ``CLIENT LIST``):

1. ``CLIENT TRACKING ON REDIRECT <its own id> BCAST PREFIX <prefix>:sku:``: Redis sends
   an invalidation for every change of a key under that prefix (a flow write, an
   expiry, a delete), whoever reads it, as a message on ``__redis__:invalidate``;
2. ``SUBSCRIBE __redis__:invalidate``; once Redis confirms, the cache goes live;
3. each message drops the keys it names (``None``: FLUSHDB/FLUSHALL, drop all).

The connection is checked with a PING when idle for ``ping_interval_s``; no answer
within another interval counts as lost. When it is lost (closed, killed, timed out,
Redis down) the cache is emptied and bypassed at once, and the listener reconnects
every ``retry_s``; the cache comes back, empty, only once tracking is re-established.
Tracking lives and dies with this connection, so no redirect can outlive it.

On a Redis Cluster each master reports only its own keys: the listener holds one such
connection per master and goes live once all of them are. It asks the cluster for its
masters every ``topology_check_s``; when they change (a failover, a master added) or any
connection is lost, the cache goes dark and every connection is made again on the new
masters. Between a slot moving and the next check, entries stay at most the cache TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, cast

from redis import exceptions as redis_errors
from redis.asyncio import Connection, ConnectionPool, SSLConnection
from redis.asyncio.connection import AbstractConnection

from availability_api.read_cache import ReadCache
from projection.connect import async_client, is_cluster_url, parse_cluster_url

log = logging.getLogger(__name__)

CLIENT_NAME = "avail-api-invalidations"
CHANNEL = "__redis__:invalidate"
REFUSED_RETRY_S = 10.0


class InvalidationListener:
    """Runs the tracking connection for ``cache`` until cancelled (``run``)."""

    def __init__(
        self, redis_url: str, key_prefix: str, cache: ReadCache, *, connect_timeout_s: float,
        ping_interval_s: float = 0.5, retry_s: float = 0.2, topology_check_s: float = 2.0,
    ) -> None:
        self._url = redis_url
        self._options: dict[str, Any] = {
            "protocol": 2, "decode_responses": True, "client_name": CLIENT_NAME,
            "socket_connect_timeout": connect_timeout_s, "socket_timeout": connect_timeout_s,
        }
        self._pool = None if is_cluster_url(redis_url) else ConnectionPool.from_url(redis_url, **self._options)
        self._topology_check_s = topology_check_s
        self._prefix = key_prefix
        self._cache = cache
        self._ping_interval_s = ping_interval_s
        self._retry_s = retry_s
        self._failing = False
        self.connected = asyncio.Event()
        """Set while the cache is live."""
        self.tried = asyncio.Event()
        """Set once the first attempt to establish tracking succeeded or failed (startup waits on it)."""

    async def run(self) -> None:
        """Connects, listens, and reconnects after any failure, until cancelled; never raises otherwise."""
        try:
            while True:
                pause_s = self._retry_s
                try:
                    await self._listen_once()
                except redis_errors.ResponseError as exc:  # refused (ACL, Redis before 6): no hurry
                    if not self._failing:
                        log.warning("read cache off: Redis refused client tracking (%s); retrying every %g s",
                                    exc, REFUSED_RETRY_S)
                    self._failing = True
                    pause_s = REFUSED_RETRY_S
                except (redis_errors.RedisError, OSError) as exc:
                    if not self._failing:
                        log.warning("read cache off: invalidation connection lost (%s: %s); reconnecting",
                                    type(exc).__name__, exc)
                    self._failing = True
                except Exception:
                    if not self._failing:
                        log.exception("read cache off: invalidation listener failed; reconnecting")
                    self._failing = True
                self.tried.set()
                await asyncio.sleep(pause_s)
        finally:
            self._cache.go_dark()
            self.connected.clear()
            if self._pool is not None:
                await self._pool.aclose()

    async def _listen_once(self) -> None:
        if self._pool is not None:
            make: Callable[[], AbstractConnection] = self._pool.make_connection  # untyped in redis-py
            await self._listen_on([make()])
            return
        cluster = async_client(self._url, socket_connect_timeout=self._options["socket_connect_timeout"],
                               socket_timeout=self._options["socket_timeout"])
        try:
            masters = await _masters(cluster)
            await self._listen_on([self._node_connection(host, port) for host, port in sorted(masters)],
                                  self._watch_topology(cluster, masters))
        finally:
            await cluster.aclose()

    def _node_connection(self, host: str, port: int) -> AbstractConnection:
        address = parse_cluster_url(self._url)
        kind = SSLConnection if address.tls else Connection
        return kind(host=host, port=port, username=address.username, password=address.password, **self._options)

    async def _listen_on(self, connections: list[AbstractConnection],
                         topology: Coroutine[Any, Any, None] | None = None) -> None:
        tasks: list[asyncio.Task[None]] = []
        try:
            ids = [await self._track(connection) for connection in connections]
            self._cache.go_live()
            self.connected.set()
            self.tried.set()
            if self._failing:
                log.info("read cache on again: tracking %s:sku:* (client ids %s)", self._prefix, ", ".join(ids))
            self._failing = False
            tasks = [asyncio.create_task(self._dispatch(connection)) for connection in connections]
            if topology is not None:
                tasks.append(asyncio.create_task(topology))
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # raises why it ended
        finally:
            if topology is not None and not tasks:
                topology.close()  # never started: no "never awaited" warning
            self._cache.go_dark()
            self.connected.clear()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task
            for connection in connections:
                with contextlib.suppress(Exception):
                    await connection.disconnect()

    async def _track(self, connection: AbstractConnection) -> str:
        await cast(Callable[[], Awaitable[None]], connection.connect)()
        own_id = await _command(connection, "CLIENT", "ID")
        await _command(connection, "CLIENT", "TRACKING", "ON", "REDIRECT", own_id, "BCAST", "PREFIX",
                       f"{self._prefix}:sku:")
        confirmed = await _command(connection, "SUBSCRIBE", CHANNEL)
        if not (isinstance(confirmed, list) and confirmed[:2] == ["subscribe", CHANNEL]):
            raise redis_errors.ConnectionError(f"unexpected answer to SUBSCRIBE: {confirmed!r}")
        return str(own_id)

    async def _watch_topology(self, cluster: Any, masters: set[tuple[str, int]]) -> None:
        while True:
            await asyncio.sleep(self._topology_check_s)
            now = await _masters(cluster)
            if now != masters:
                raise redis_errors.ConnectionError(f"the cluster's masters changed ({len(masters)} -> {len(now)})")

    async def _dispatch(self, connection: AbstractConnection) -> None:
        try:
            await self._dispatch_until_lost(connection)
        except BaseException:
            self._cache.go_dark()  # at once: on a cluster the other connections are let go a loop turn later
            raise

    async def _dispatch_until_lost(self, connection: AbstractConnection) -> None:
        pinged = False
        while True:
            message = await connection.read_response(timeout=self._ping_interval_s)
            if message is None:  # idle for an interval
                if pinged:
                    raise redis_errors.TimeoutError("no answer to PING on the invalidation connection")
                await connection.send_command("PING")
                pinged = True
                continue
            pinged = False
            if not isinstance(message, list) or len(message) < 3:  # noqa: PLR2004
                continue
            kind = message[0]
            if kind == "message" and message[1] == CHANNEL:
                self._cache.invalidate(_keys(message[2]))


def _keys(data: Any) -> list[str] | None:
    if data is None:
        return None
    if isinstance(data, list):
        return [str(key) for key in data]
    return [str(data)]


async def _masters(cluster: Any) -> set[tuple[str, int]]:
    slots: dict[Any, dict[str, Any]] = await cluster.cluster_slots()
    return {(str(owner["primary"][0]), int(owner["primary"][1])) for owner in slots.values()}


async def _command(connection: AbstractConnection, *args: Any) -> Any:
    await connection.send_command(*args)
    return await connection.read_response()
