"""Redis clients for ``AVAIL_REDIS_URL``: one Redis, or a Redis Cluster (contract section 6).

``redis://host:port/db``, ``rediss://…`` and ``unix://…`` name one Redis;
``redis+cluster://[user:password@]host:port[,host:port…]`` (``rediss+cluster://`` for TLS)
names seed nodes of a Redis Cluster, from which redis-py learns the rest of the cluster
and follows it through failovers and slot moves. Every caller gets its client here, so
the flow, the API and every command agree on what a URL means.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from redis.connection import parse_url
from redis.crc import key_slot

CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}
"""Cluster scheme -> TLS."""

SyncClient = redis.Redis | redis.cluster.RedisCluster
AsyncClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster


class WrongRedisMode(ValueError):
    """The URL's form (one Redis or a cluster) does not match what answers there."""


@dataclass(frozen=True, slots=True)
class ClusterAddress:
    nodes: tuple[tuple[str, int], ...]
    tls: bool
    username: str | None
    password: str | None


def is_cluster_url(url: str) -> bool:
    return url.partition("://")[0].lower() in CLUSTER_SCHEMES


def parse_cluster_url(url: str) -> ClusterAddress:
    """The seed nodes of a ``redis+cluster://`` URL; ``ValueError`` (never echoing a password) when malformed."""
    scheme, _, rest = url.partition("://")
    tls = CLUSTER_SCHEMES[scheme.lower()]
    split = urlsplit(f"redis://{rest}")
    if split.query or split.fragment:
        raise ValueError("a Redis Cluster URL takes no ?options or #fragment")
    if split.path not in ("", "/", "/0"):
        raise ValueError("a Redis Cluster has only database 0: leave the /db part out")
    credentials, _, hosts = split.netloc.rpartition("@")
    username = password = None
    if credentials:
        user, has_password, secret = credentials.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if has_password else None
    nodes: list[tuple[str, int]] = []
    for node in hosts.split(","):
        host, _, port = node.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:  # noqa: PLR2004
            raise ValueError(f"every node must be host:port, got {node.strip()!r}")
        nodes.append((host.strip("[]"), int(port)))
    return ClusterAddress(tuple(nodes), tls, username, password)


def check_url(url: str) -> None:
    """``ValueError`` naming what is wrong when ``url`` is neither form (the message never holds the URL)."""
    if is_cluster_url(url):
        parse_cluster_url(url)
        return
    try:
        parse_url(url)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        raise ValueError(f"must look like redis://[:password@]host:port/db, rediss://…, unix:///path/to/socket "
                         f"or redis+cluster://host:port[,host:port…] ({exc})") from None


_SINGLE_ONLY = ("health_check_interval", "retry")
"""Options a cluster client does not take: it retries and checks nodes its own way (topology refreshes)."""


def _cluster_options(address: ClusterAddress, options: dict[str, Any]) -> dict[str, Any]:
    options = {k: v for k, v in options.items() if k not in _SINGLE_ONLY}
    options.update(username=address.username, password=address.password)
    if address.tls:
        options["ssl"] = True
    return options


def sync_client(url: str, **options: Any) -> SyncClient:
    """A client of one Redis or of the cluster; a cluster client raises at once if the seeds are not a cluster."""
    if not is_cluster_url(url):
        return redis.Redis.from_url(url, **options)
    address = parse_cluster_url(url)
    nodes = [redis.cluster.ClusterNode(host, port) for host, port in address.nodes]  # type: ignore[no-untyped-call]
    try:
        return redis.cluster.RedisCluster(startup_nodes=nodes, **_cluster_options(address, options))
    except redis.exceptions.RedisClusterException as exc:
        raise _cluster_failure(exc) from None


def _cluster_failure(exc: Exception) -> Exception:
    """Seeds that are not a cluster: a configuration error; seeds that do not answer: wait and retry."""
    if "not enabled" in str(exc):
        return WrongRedisMode("AVAIL_REDIS_URL names a Redis Cluster (redis+cluster://) but its node answers "
                              "that cluster mode is not enabled: write one Redis as redis://host:port/db")
    return redis.ConnectionError(f"Redis Cluster: {exc}")


def async_client(url: str, *, wait_s: float | None = None, **options: Any) -> AsyncClient:
    """``sync_client`` for asyncio; a cluster client learns the cluster on its first command.

    ``wait_s``: on a cluster, how long a command may wait for a free connection (as a
    ``BlockingConnectionPool`` waits on one Redis) before it fails; None: it fails at once.
    """
    if not is_cluster_url(url):
        return redis.asyncio.Redis.from_url(url, **options)
    address = parse_cluster_url(url)
    nodes = [redis.asyncio.cluster.ClusterNode(host, port) for host, port in address.nodes]
    if wait_s is None:
        return redis.asyncio.cluster.RedisCluster(startup_nodes=nodes, **_cluster_options(address, options))
    return WaitingRedisCluster(startup_nodes=nodes, wait_s=wait_s, **_cluster_options(address, options))


_HOLDS_PERMIT: ContextVar[bool] = ContextVar("avail_redis_permit", default=False)


class WaitingRedisCluster(redis.asyncio.cluster.RedisCluster):
    """A cluster client whose commands wait for a free connection instead of failing at once.

    redis-py's cluster pools raise ``MaxConnectionsError`` when a node's pool is used up.
    Each command or pipeline in flight holds at most one connection per node, so at most
    ``max_connections`` of them in flight (a semaphore) keeps every node's pool within
    bounds; the others wait up to ``wait_s``, then fail as a connection error (503).
    Calls redis-py makes from inside a command (retries, splits) take no second permit.
    """

    def __init__(self, *args: Any, wait_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._permits = asyncio.Semaphore(int(kwargs.get("max_connections", 100)))
        self._wait_s = wait_s

    @contextlib.asynccontextmanager
    async def permit(self) -> AsyncIterator[None]:
        if _HOLDS_PERMIT.get():
            yield
            return
        try:
            async with asyncio.timeout(self._wait_s):
                await self._permits.acquire()
        except TimeoutError:
            raise redis.exceptions.ConnectionError(
                f"no free Redis connection within {self._wait_s:g} s (AVAIL_REDIS_MAX_CONNECTIONS)") from None
        token = _HOLDS_PERMIT.set(True)
        try:
            yield
        finally:
            _HOLDS_PERMIT.reset(token)
            self._permits.release()

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self.permit():
            return await super().execute_command(*args, **kwargs)

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> _WaitingPipeline:
        if shard_hint:
            raise redis.exceptions.RedisClusterException("shard_hint is deprecated in cluster mode")
        return _WaitingPipeline(self, transaction)  # type: ignore[abstract]  # as redis-py itself builds it


class _WaitingPipeline(redis.asyncio.cluster.ClusterPipeline):
    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> list[Any]:
        client = cast(WaitingRedisCluster, self.cluster_client)
        async with client.permit():
            return await super().execute(raise_on_error, allow_redirections)


def check_mode(client: SyncClient) -> None:
    """``WrongRedisMode`` when a single-Redis URL reaches a cluster node (its writes would be refused as MOVED)."""
    if isinstance(client, redis.cluster.RedisCluster):
        return
    info: dict[str, Any] = client.info("cluster")
    if info.get("cluster_enabled"):
        raise WrongRedisMode("AVAIL_REDIS_URL names one Redis (redis://) but that node is part of a Redis Cluster: "
                             "write it as redis+cluster://host:port[,host:port…]")


async def check_mode_async(client: AsyncClient) -> None:
    if isinstance(client, redis.asyncio.cluster.RedisCluster):
        try:
            await client.initialize()
        except redis.exceptions.RedisClusterException as exc:
            raise _cluster_failure(exc) from None
        return
    info: dict[str, Any] = await client.info("cluster")
    if info.get("cluster_enabled"):
        raise WrongRedisMode("AVAIL_REDIS_URL names one Redis (redis://) but that node is part of a Redis Cluster: "
                             "write it as redis+cluster://host:port[,host:port…]")


def slot_of(key: str) -> int:
    return int(key_slot(key.encode()))


TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.BusyLoadingError,
    redis.exceptions.ReadOnlyError, redis.exceptions.ClusterDownError, redis.exceptions.TryAgainError,
    redis.exceptions.ClusterError, redis.exceptions.SlotNotCoveredError,
)
"""Errors a write is retried after: Redis away, loading, or a cluster moving a master (failover)."""
