"""A local Kafka-compatible broker (Tansu) and Redis on loopback, for ``avail up``, tests and benchmarks."""

from local_servers.processes import (
    LOOPBACK,
    LocalRedisCluster,
    LocalServer,
    ServerError,
    create_topics,
    free_port,
    start_redis,
    start_redis_cluster,
    start_tansu,
    stop_process,
)

__all__ = [
    "LOOPBACK",
    "LocalRedisCluster",
    "LocalServer",
    "ServerError",
    "create_topics",
    "free_port",
    "start_redis",
    "start_redis_cluster",
    "start_tansu",
    "stop_process",
]
