"""What the freshness, memory and catch-up benchmarks share: local servers, the flow as a child, Redis probes.

Everything here goes through the engine's external interfaces only: the ``avail flow``
command configured by ``AVAIL_*`` variables, the contract's Kafka topics and events, and
the Redis keys of docs/engine.md, named by ``projection.Keys`` (``Keys(prefix).stats``,
``.progress``, ``.heartbeat``, ``.sku(SKU)``) and read through ``projection.connect.sync_client``,
so every probe works on one Redis and on a Redis Cluster (``local_cluster``). Every process
started here is stopped by its PID in a ``finally``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis.cluster

from atp.events import Topic
from load_tests.bench_flow import RULES, handled
from local_servers import LOOPBACK, start_redis, start_redis_cluster, start_tansu, stop_process
from projection import Keys
from projection.connect import SyncClient, sync_client

__all__ = ["RULES", "Flow", "Servers", "handled", "local_cluster", "local_servers", "progress_us", "sku_numbers",
           "wait_for"]


@dataclass
class Servers:
    """The broker, the Redis (``url``: ``redis://`` or ``redis+cluster://``) and a scratch directory."""

    bootstrap: str
    url: str
    work: Path
    redis_pid: int  # of the one redis-server, or of a cluster's first master
    client: SyncClient = field(init=False)

    def __post_init__(self) -> None:
        self.client = sync_client(self.url)

    def used_memory(self) -> int:
        """``used_memory`` of the one Redis, or summed over a cluster's masters."""
        if isinstance(self.client, redis.cluster.RedisCluster):
            per_node = self.client.info("memory", target_nodes=redis.cluster.RedisCluster.PRIMARIES)
            return sum(int(info["used_memory"]) for info in per_node.values())
        return int(self.client.info("memory")["used_memory"])


@contextmanager
def local_servers(prefix: str = "bench-") -> Iterator[Servers]:
    """A Tansu broker (memory only) and a redis-server on free loopback ports, and a scratch directory."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    broker = start_tansu(log_dir=work)
    failed = True
    try:
        store = start_redis(log_dir=work)
        try:
            yield Servers(f"{LOOPBACK}:{broker.port}", f"redis://{LOOPBACK}:{store.port}/0", work, store.pid)
            failed = False
        finally:
            if store.process.poll() is not None:
                print(f"redis-server (pid {store.pid}) had exited with {store.process.returncode}", file=sys.stderr)
            store.stop()
    finally:
        broker.stop()
        if failed:  # keep the logs (servers, flows) for a look
            for recovery in work.glob("recovery-*"):
                shutil.rmtree(recovery, ignore_errors=True)
            print(f"logs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


@contextmanager
def local_cluster(servers: Servers, masters: int = 3, replicas_per_master: int = 1) -> Iterator[Servers]:
    """``servers`` with a local Redis Cluster instead of its one Redis (same broker and scratch directory).

    The cluster's nodes (``start_redis_cluster``) are stopped by their PIDs when the block ends.
    """
    cluster = start_redis_cluster(masters=masters, replicas_per_master=replicas_per_master,
                                  work_dir=servers.work / "redis-cluster")
    try:
        clustered = Servers(servers.bootstrap, cluster.url, servers.work, cluster.masters[0].pid)
        try:
            yield clustered
        finally:
            clustered.client.close()
            for node in cluster.nodes:
                if node.process.poll() is not None:
                    print(f"redis-server cluster node (pid {node.pid}) had exited with {node.process.returncode}",
                          file=sys.stderr)
    finally:
        cluster.stop()


def wait_for(check: Callable[[], bool], timeout: float, what: str, process: Flow | None = None,
             every: float = 0.05) -> float:
    """Polls ``check`` until it is true; returns the ``time.monotonic()`` when it was. Fails if the flow dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        if process is not None and process.exited():
            code = process.process.returncode if process.process is not None else None
            raise RuntimeError(f"the flow exited with {code} while waiting for {what}"
                               f" (log: {process.log})")
        time.sleep(every)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s")


def progress_us(client: SyncClient, prefix: str) -> int:
    """The newest ``applied:<worker>`` time in ``Keys(prefix).progress`` (µs), 0 when none."""
    values: dict[bytes, bytes] = client.hgetall(Keys(prefix).progress)  # type: ignore[assignment]
    return max((int(v) for k, v in values.items() if k.startswith(b"applied:")), default=0)


class Flow:
    """``avail flow`` (one worker) as a child process with its own Redis prefix, rules and recovery store."""

    def __init__(self, servers: Servers, prefix: str, topics: dict[str, str], rules: Path,
                 recovery: Path | None = None, env: dict[str, str] | None = None, timing: Path | None = None) -> None:
        self.servers, self.prefix = servers, prefix
        self.timing = timing  # run load_tests.timed_flow, writing its timings there
        self.log = servers.work / f"flow-{prefix}.log"
        self.env = {**os.environ, "AVAIL_KAFKA_BOOTSTRAP": servers.bootstrap, "AVAIL_REDIS_URL": servers.url,
                    "AVAIL_REDIS_PREFIX": prefix, "AVAIL_RULES_DIR": str(rules), "AVAIL_LOG_LEVEL": "WARNING",
                    "AVAIL_TOPIC_DLQ": f"{prefix}.availability.dlq",
                    "AVAIL_TOPIC_DELTAS_PREFIX": f"{prefix}.deltas.", **(env or {})}
        self.env.pop("AVAIL_RECOVERY_DIR", None)
        if recovery is not None:
            recovery.mkdir(parents=True, exist_ok=True)
            self.env["AVAIL_RECOVERY_DIR"] = str(recovery)
        self.env.update({f"AVAIL_TOPIC_{Topic(role).name}": name for role, name in topics.items()})
        self.process: subprocess.Popen[bytes] | None = None
        self.started = 0.0  # time.monotonic() of the last start

    def start(self) -> Flow:
        with self.log.open("ab") as log:
            command = ([sys.executable, "-m", "avail", "flow"] if self.timing is None
                       else [sys.executable, "-m", "load_tests.timed_flow", str(self.timing)])
            self.process = subprocess.Popen(command, env=self.env,  # noqa: S603
                                            stdout=log, stderr=subprocess.STDOUT)
        self.started = time.monotonic()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def exited(self) -> bool:
        return self.process is None or self.process.poll() is not None

    def rss_bytes(self) -> int:
        """VmRSS of the flow process (Linux ``/proc``)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS in /proc status")

    def kill(self) -> None:
        """SIGKILL, as a crash would; waits for the process to be gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        if self.process is not None:
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)

    def wait_up(self, timeout: float = 60.0) -> float:
        """Until this start of the flow wrote a heartbeat (µs clock newer than the start); returns monotonic time."""
        since = time.time_ns() // 1000 - int((time.monotonic() - self.started) * 1e6)
        client, key = self.servers.client, Keys(self.prefix).heartbeat
        return wait_for(lambda: any(int(v) >= since for v in client.hvals(key)), timeout, "flow heartbeat", self)

    def handled(self) -> int:
        return handled(self.servers.client, self.prefix)


def sku_numbers(client: SyncClient, prefix: str, skus: list[str]) -> dict[str, dict[bytes, bytes]]:
    """Every SKU's numbers (``n:``, ``c:``, ``u:`` fields and ``a``), without the write version ``v``."""
    keys = Keys(prefix)
    out: dict[str, dict[bytes, bytes]] = {}
    for start in range(0, len(skus), 1000):
        chunk = skus[start:start + 1000]
        pipe = client.pipeline(transaction=False)
        for sku in chunk:
            pipe.hgetall(keys.sku(sku))
        for sku, fields in zip(chunk, pipe.execute(), strict=True):
            out[sku] = {k: v for k, v in fields.items() if k != b"v"}
    return out
