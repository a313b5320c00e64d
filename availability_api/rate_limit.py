"""Per-key request limits, shared by every API process: the ``limits`` library over the engine's Redis.

A key configured with ``rate_per_s`` (``AVAIL_API_KEYS``, contract section 6) may make
that many requests in any one-second window, counted across all API processes and
hosts (``limits``' moving window: one Lua call per request, on a list of the key's
last ``rate_per_s`` request times). A key without ``rate_per_s`` is not limited and
costs nothing: no Redis round trip. Keys are counted by their SHA-256 digest, never by
the key. Redis Cluster works the same (one key per API key, in its own slot).

When Redis does not answer, a limited key's request fails like any read would (503).
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import RedisClusterStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import Redis

from availability_api.auth import Principal
from availability_api.types import RedisClient
from projection.connect import is_cluster_url, parse_cluster_url


class SharedRateLimits:
    def __init__(self, storage: Storage) -> None:
        self._limiter = MovingWindowRateLimiter(storage)
        self._items: dict[int, RateLimitItem] = {}

    @classmethod
    def over(cls, redis_url: str, redis: RedisClient, key_prefix: str, timeout_s: float) -> SharedRateLimits:
        """Limits kept in the engine's Redis under ``<prefix>:limits``; on one Redis they share ``redis``'s pool."""
        prefix = f"{key_prefix}:limits"
        if not is_cluster_url(redis_url):
            assert isinstance(redis, Redis)  # noqa: S101 - connect() makes a plain client for a plain URL
            return cls(RedisStorage("async+redis://", implementation="redispy", key_prefix=prefix,
                                    connection_pool=redis.connection_pool))  # type: ignore[arg-type]
        address = parse_cluster_url(redis_url)
        nodes = ",".join(f"{host}:{port}" for host, port in address.nodes)
        options: dict[str, float | str | bool] = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
        if address.tls:
            options["ssl"] = True
        if address.username:
            options["username"] = address.username
        if address.password:
            options["password"] = address.password
        return cls(RedisClusterStorage(f"async+redis+cluster://{nodes}", implementation="redispy", key_prefix=prefix,
                                       **options))  # type: ignore[arg-type]  # options typed loosely upstream

    async def take(self, principal: Principal) -> int:
        """Counts one request of the key: 0 when allowed, else the whole seconds until it would be (≥ 1)."""
        rate = principal.rate_per_s
        if rate is None:
            return 0
        item = self._items.get(rate)
        if item is None:
            item = self._items[rate] = RateLimitItemPerSecond(rate)
        who = principal.key_id.hex()
        if await self._limiter.hit(item, who):
            return 0
        stats = await self._limiter.get_window_stats(item, who)
        return max(1, math.ceil(stats.reset_time - time.time()))
