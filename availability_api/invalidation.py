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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

from redis import exceptions as redis_errors
from redis.asyncio import ConnectionPool
from redis.asyncio.connection import AbstractConnection

from availability_api.read_cache import ReadCache

log = logging.getLogger(__name__)

CLIENT_NAME = "avail-api-invalidations"
CHANNEL = "__redis__:invalidate"
REFUSED_RETRY_S = 10.0


class InvalidationListener:
    """Runs the tracking connection for ``cache`` until cancelled (``run``)."""

    def __init__(
        self, redis_url: str, key_prefix: str, cache: ReadCache, *, connect_timeout_s: float,
        ping_interval_s: float = 0.5, retry_s: float = 0.2,
    ) -> None:
        self._pool = ConnectionPool.from_url(
            redis_url, protocol=2, decode_responses=True, client_name=CLIENT_NAME,
            socket_connect_timeout=connect_timeout_s, socket_timeout=connect_timeout_s,
        )
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
            await self._pool.aclose()

    async def _listen_once(self) -> None:
        make: Callable[[], AbstractConnection] = self._pool.make_connection  # untyped in redis-py
        connection = make()
        try:
            await cast(Callable[[], Awaitable[None]], connection.connect)()
            own_id = await _command(connection, "CLIENT", "ID")
            await _command(connection, "CLIENT", "TRACKING", "ON", "REDIRECT", own_id, "BCAST", "PREFIX",
                           f"{self._prefix}:sku:")
            confirmed = await _command(connection, "SUBSCRIBE", CHANNEL)
            if not (isinstance(confirmed, list) and confirmed[:2] == ["subscribe", CHANNEL]):
                raise redis_errors.ConnectionError(f"unexpected answer to SUBSCRIBE: {confirmed!r}")
            self._cache.go_live()
            self.connected.set()
            self.tried.set()
            if self._failing:
                log.info("read cache on again: tracking %s:sku:* (client id %s)", self._prefix, own_id)
            self._failing = False
            await self._dispatch(connection)
        finally:
            self._cache.go_dark()
            self.connected.clear()
            with contextlib.suppress(Exception):
                await connection.disconnect()

    async def _dispatch(self, connection: AbstractConnection) -> None:
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


async def _command(connection: AbstractConnection, *args: Any) -> Any:
    await connection.send_command(*args)
    return await connection.read_response()
