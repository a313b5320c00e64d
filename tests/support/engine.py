"""A real flow process on the session's broker and Redis, with its own topics and key prefix."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx
from bytewax.recovery import init_db_dir
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from atp.encoding import encode_event
from atp.events import Event, Topic
from atp.positions import NodePosition
from local_servers import create_topics, free_port
from projection import Keys, decode_position
from projection.connect import sync_client
from tests.support.api import RunningApi, start_api
from tests.support.events import TOPIC_OF

T = TypeVar("T")

ADMIN_KEY = "admin-key-0123456789abcdef"
READ_KEY = "read-key-0123456789abcdef"
AMAZON_KEY = "amazon-key-0123456789abcdef"
API_KEYS = {ADMIN_KEY: ["admin"], READ_KEY: ["read"], AMAZON_KEY: ["read:amazon"]}

RULES_YAML = """\
nodes:
  - {id: dc-east, type: dc}
  - {id: dc-west, type: dc}
  - {id: store-001, type: store, tags: [ship_from_store, pickup]}
  - {id: store-002, type: store, tags: [pickup]}
safety_stock:
  default: 0
  rules:
    - {match: {sku: "TV-*", node_type: store}, units: 1}
channels:
  web:
    nodes: {types: [dc], tags: [ship_from_store]}
    node_buffer: {store: 1}
  store_pickup:
    nodes: {tags: [pickup]}
  amazon:
    nodes: {types: [dc]}
    percent: 80
    buffer: 2
    min_available: 3
"""


@dataclass
class Engine:
    bootstrap: str
    redis_url: str
    home: Path
    partitions: int = 2
    rules_yaml: str = RULES_YAML
    name: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    flows: list[subprocess.Popen[bytes]] = field(default_factory=list)
    api: RunningApi | None = None
    use_recovery: bool = True
    """False: the flow runs without a recovery store and re-reads every topic from the start."""
    extra_env: dict[str, str] = field(default_factory=dict)
    """More environment for the flow processes, e.g. ``AVAIL_LOG_LEVEL``."""
    _producer: Producer | None = None

    def __post_init__(self) -> None:
        self.prefix = f"t{self.name}"
        self.topics = {role: f"{self.name}.{role.value}" for role in Topic}
        self.dlq = f"{self.name}.availability.dlq"
        self.rules_dir = self.home / "rules"
        self.rules_dir.mkdir(parents=True, exist_ok=True)
        (self.rules_dir / "rules.yaml").write_text(self.rules_yaml)
        self.recovery_dir = self.home / "recovery"
        self.keys = Keys(self.prefix)
        self.redis = sync_client(self.redis_url, decode_responses=True)
        create_topics(self.bootstrap, {**dict.fromkeys(self.topics.values(), self.partitions), self.dlq: 1})

    def env(self) -> dict[str, str]:
        env = {
            **os.environ, "AVAIL_KAFKA_BOOTSTRAP": self.bootstrap, "AVAIL_REDIS_URL": self.redis_url,
            "AVAIL_REDIS_PREFIX": self.prefix, "AVAIL_RULES_DIR": str(self.rules_dir),
            "AVAIL_RECOVERY_DIR": str(self.recovery_dir), "AVAIL_TOPIC_DLQ": self.dlq,
            "AVAIL_SNAPSHOT_INTERVAL_S": "1", "AVAIL_KAFKA_FETCH_WAIT_MAX_MS": "20",
            "AVAIL_TOPIC_DELTAS_PREFIX": f"{self.name}.deltas.",
        }
        for role, name in self.topics.items():
            env[f"AVAIL_TOPIC_{role.name}"] = name
        if not self.use_recovery:
            del env["AVAIL_RECOVERY_DIR"]
        return {**env, **self.extra_env}

    def start_flow(self, processes: int = 1, workers: int = 1) -> None:
        """One flow process, or a Bytewax cluster of several; ``workers`` per process."""
        addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(processes))
        for index in range(processes):
            cluster = ["-i", str(index), "-a", addresses] if processes > 1 else []
            cluster += ["-w", str(workers)] if workers > 1 else []
            with (self.home / f"flow-{index}.log").open("ab") as log:
                self.flows.append(subprocess.Popen(  # noqa: S603
                    [sys.executable, "-m", "avail", "flow", *cluster], env=self.env(), stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True,
                ))

    def init_recovery(self, partitions: int = 4) -> None:
        """Creates the recovery store up front, as an operator would (``python -m bytewax.recovery``)."""
        self.recovery_dir.mkdir(parents=True, exist_ok=True)
        init_db_dir(self.recovery_dir, partitions)  # type: ignore[no-untyped-call]

    def wipe_recovery(self) -> None:
        """Deletes the recovery store (stop the flow first): the next start reads every topic from the start."""
        shutil.rmtree(self.recovery_dir, ignore_errors=True)

    def flush_keys(self) -> int:
        """Deletes every Redis key under this engine's prefix (a Redis rebuilt empty); returns how many."""
        doomed = [key for pattern in self.keys.patterns for key in self.redis.scan_iter(pattern, count=1000)]
        pipe = self.redis.pipeline(transaction=False)  # one key per command: a cluster spreads them over slots
        for key in doomed:
            pipe.delete(key)
        pipe.execute()
        return len(doomed)

    def new_deployment(self, home: Path, prefix: str | None = None) -> Engine:
        """Another engine on the same topics, with its own recovery store and (by default) empty key prefix."""
        other = Engine(self.bootstrap, self.redis_url, home, self.partitions, self.rules_yaml, self.name)
        other.prefix = prefix if prefix is not None else f"{self.prefix}-{uuid.uuid4().hex[:6]}"
        other.keys = Keys(other.prefix)
        return other

    def start_api(self, workers: int = 1) -> RunningApi:
        """The API; ``workers`` > 1 runs ``avail api --workers N``."""
        self.api = start_api(self.redis_url, self.prefix, API_KEYS, log_dir=self.home, workers=workers)
        return self.api

    def get(self, path: str, key: str = READ_KEY, **params: str) -> httpx.Response:
        assert self.api is not None, "start_api() first"
        return httpx.get(f"{self.api.base_url}{path}", params=params, headers={"X-API-Key": key}, timeout=10)

    def post(self, path: str, body: object, key: str = READ_KEY) -> httpx.Response:
        assert self.api is not None, "start_api() first"
        return httpx.post(f"{self.api.base_url}{path}", json=body, headers={"X-API-Key": key}, timeout=10)

    def kill_flow(self) -> None:
        """SIGKILL: no goodbye, like a crashed host."""
        for flow in self.flows:
            if flow.poll() is None:
                os.kill(flow.pid, signal.SIGKILL)
                flow.wait(10)
        self.flows.clear()

    def stop(self) -> None:
        self.kill_flow()
        if self.api is not None:
            self.api.stop()
        if self._producer is not None:
            self._producer.flush(10)
        self.redis.close()

    @property
    def producer(self) -> Producer:
        if self._producer is None:
            self._producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 2})
        return self._producer

    def produce(self, events: Iterable[Event]) -> None:
        for event in events:
            self.produce_raw(TOPIC_OF[type(event)], encode_event(event), event.sku.encode())
        self.producer.flush(10)

    def produce_raw(self, role: Topic, value: bytes | None, key: bytes | None = None) -> None:
        self.producer.produce(self.topics[role], value, key)
        self.producer.poll(0)

    # -- reading back --------------------------------------------------------------

    def sku_hash(self, sku: str) -> dict[str, str]:
        return self.redis.hgetall(self.keys.sku(sku))  # type: ignore[return-value]

    def positions(self, sku: str) -> dict[str, NodePosition]:
        return {f[2:]: decode_position(f[2:], v) for f, v in self.sku_hash(sku).items() if f.startswith("n:")}

    def channels(self, sku: str) -> dict[str, int]:
        return {f[2:]: int(v) for f, v in self.sku_hash(sku).items() if f.startswith("c:")}

    def stats(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.redis.hgetall(self.keys.stats).items()}  # type: ignore[union-attr]

    def dead_letters(self, at_least: int, timeout: float = 20.0) -> list[bytes]:
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"dlq-{self.name}",
                             "enable.auto.commit": False, "fetch.wait.max.ms": 50})
        consumer.assign([TopicPartition(self.dlq, 0, OFFSET_BEGINNING)])
        values: list[bytes] = []
        deadline = time.monotonic() + timeout
        try:
            while len(values) < at_least and time.monotonic() < deadline:
                for message in consumer.consume(100, 0.2):
                    if message.error() is None and message.value() is not None:
                        values.append(message.value())
        finally:
            consumer.close()
        return values


def wait_for(probe: Callable[[], T], done: Callable[[T], bool], timeout: float = 30.0, every: float = 0.1) -> T:
    """Polls ``probe`` until ``done(value)``; returns the last value (the caller asserts on it)."""
    deadline = time.monotonic() + timeout
    value = probe()
    while not done(value) and time.monotonic() < deadline:
        time.sleep(every)
        value = probe()
    return value


def flow_log(engine: Engine) -> str:
    """The tail of every flow process's log and of the API's, for assertion messages."""
    flow = "".join(path.read_text(errors="replace")[-3000:] for path in sorted(engine.home.glob("flow-*.log")))
    api = engine.api.log()[-2000:] if engine.api is not None else ""
    return f"--- flow log ---\n{flow}\n--- api log ---\n{api}"


@contextlib.contextmanager
def running_engine(bootstrap: str, redis_url: str, home: Path, rules_yaml: str = RULES_YAML,
                   workers: int = 1) -> Iterator[Engine]:
    """A flow (``workers`` worker threads) and an API on their own topics and key prefix, stopped afterwards."""
    engine = Engine(bootstrap, redis_url, home, rules_yaml=rules_yaml)
    try:
        engine.start_flow(workers=workers)
        engine.start_api()
        yield engine
    finally:
        engine.stop()
