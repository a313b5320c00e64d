"""Real Kafka-protocol broker and Redis for integration tests.

In order: ``AVAIL_KAFKA_BOOTSTRAP`` / ``AVAIL_REDIS_URL`` when set; containers when a
Docker daemon answers; otherwise local processes (Tansu, redis-server) on free
loopback ports, stopped by PID at the end of the session.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from local_servers import LOOPBACK, LocalRedisCluster, start_redis, start_redis_cluster, start_tansu


def docker_daemon_answers() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        done = subprocess.run([docker, "info"], capture_output=True, timeout=5, check=False)  # noqa: S603
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@contextlib.contextmanager
def kafka_bootstrap(log_dir: Path) -> Iterator[str]:
    configured = os.environ.get("AVAIL_KAFKA_BOOTSTRAP")
    if configured:
        yield configured
        return
    if docker_daemon_answers():
        from testcontainers.community.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as kafka:
            yield kafka.get_bootstrap_server()
        return
    broker = start_tansu(log_dir=log_dir)
    try:
        yield f"{LOOPBACK}:{broker.port}"
    finally:
        broker.stop()


@contextlib.contextmanager
def redis_url(log_dir: Path) -> Iterator[str]:
    configured = os.environ.get("AVAIL_REDIS_URL")
    if configured:
        yield configured
        return
    if docker_daemon_answers():
        from testcontainers.community.redis import RedisContainer

        with RedisContainer() as container:
            host, port = container.get_container_host_ip(), container.get_exposed_port(6379)
            yield f"redis://{host}:{port}/0"
        return
    server = start_redis(log_dir=log_dir)
    try:
        yield f"redis://{LOOPBACK}:{server.port}/0"
    finally:
        server.stop()


@contextlib.contextmanager
def redis_cluster(work_dir: Path) -> Iterator[LocalRedisCluster | str]:
    """A Redis Cluster of 3 masters and 3 replicas: ``AVAIL_TEST_REDIS_CLUSTER_URL`` when set, else local processes.

    Yields the URL of a configured cluster, or the local cluster (its nodes can be killed).
    """
    configured = os.environ.get("AVAIL_TEST_REDIS_CLUSTER_URL")
    if configured:
        yield configured
        return
    cluster = start_redis_cluster(masters=3, replicas_per_master=1, work_dir=work_dir)
    try:
        yield cluster
    finally:
        cluster.stop()
