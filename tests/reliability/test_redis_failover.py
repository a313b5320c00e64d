"""A Redis Cluster master SIGKILLed mid-stream: its replica takes over, nothing is lost or repeated.

The cluster is this test's own (3 masters, 3 replicas, 1 s node timeout), so the kill
touches no other test. While a sustained random stream runs, one master dies; the flow's
writes to its slots fail and are retried until the replica is promoted (2-4 s), the API's
read cache goes dark and comes back on the new master. Then every SKU's numbers, in Redis
and through the API, equal the reference model; every channel's feed is one chain per
SKU (each delta's ``previous`` is the value the one before it published, seqs strictly
rising, the last one the current number); and ``avail rebuild`` completes on the cluster.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from local_servers import LocalRedisCluster, start_redis_cluster
from tests.integration.test_flow import observed_many
from tests.support.engine import Engine, flow_log, wait_for
from tests.support.streams import SustainedProducer, differences, random_stream, reference, seed_from_env, stored

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

SKUS = [f"FAILOVER-{i:03d}" for i in range(120)]
EVENTS = 6000


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalRedisCluster]:
    started = start_redis_cluster(masters=3, replicas_per_master=1, work_dir=tmp_path / "cluster")
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def engine(kafka_bootstrap: str, cluster: LocalRedisCluster, tmp_path: Path) -> Iterator[Engine]:
    running = Engine(kafka_bootstrap, cluster.url, tmp_path / "engine")
    running.start_flow()
    running.start_api()
    yield running
    running.stop()


def promoted(cluster: LocalRedisCluster, victim: int) -> bool:
    """The victim's replica now serves its slots (as a survivor sees the cluster)."""
    survivor = cluster.masters[(victim + 1) % len(cluster.masters)]
    import redis

    with redis.Redis(port=survivor.port, decode_responses=True) as client:
        info = str(client.execute_command("CLUSTER", "INFO"))  # type: ignore[no-untyped-call]
        masters = [line for line in str(client.execute_command("CLUSTER", "NODES")).splitlines()  # type: ignore[no-untyped-call]
                   if "master" in line and "fail" not in line and line.split()[8:]]
    return "cluster_state:ok" in info and len(masters) == len(cluster.masters)


def feed_chains(engine: Engine, channel: str) -> dict[str, int]:
    """Checks the channel's stream is one unbroken chain per SKU; returns each SKU's last published value."""
    last: dict[str, int] = {}
    seq = 0
    for entry_id, fields in engine.redis.xrange(engine.keys.feed(channel)):  # type: ignore[union-attr]
        delta = orjson.loads(fields["d"])
        assert delta["seq"] > seq and entry_id == f"{delta['seq']}-0", f"seq not rising at {entry_id}"
        seq = delta["seq"]
        sku = delta["sku"]
        assert delta["previous"] == last.get(sku, 0), f"{channel} {sku}: a delta is missing before seq {seq}"
        assert delta["available"] != delta["previous"], f"{channel} {sku}: a repeated value at seq {seq}"
        last[sku] = delta["available"]
    return last


def test_a_master_killed_mid_stream_loses_and_repeats_nothing(engine: Engine, cluster: LocalRedisCluster) -> None:
    seed = seed_from_env()
    events = random_stream(seed, SKUS, EVENTS)
    producer = SustainedProducer(engine, events, chunk=100, every_s=0.05)
    producer.start()
    wait_for(lambda: engine.stats().get("applied", 0), lambda n: n >= 1000, timeout=60)

    victim = 0
    os.kill(cluster.masters[victim].pid, signal.SIGKILL)
    wait_for(lambda: promoted(cluster, victim), bool, timeout=30, every=0.2)
    wait_for(lambda: producer.exhausted, bool, timeout=60)  # the stream goes on after the failover
    producer.stop()

    want = reference(engine, SKUS, events)
    got = wait_for(lambda: stored(engine, SKUS), lambda now: not differences(now, want), timeout=90, every=0.5)
    assert not differences(got, want), f"seed {seed}: {differences(got, want)}\n{flow_log(engine)}"
    assert not differences(observed_many(engine, SKUS), want), f"seed {seed}: through the API"

    for channel in ("web", "store_pickup", "amazon"):
        published = wait_for(lambda ch=channel: feed_chains(engine, ch),  # type: ignore[misc]
                             lambda last, ch=channel: all(last.get(s, 0) == want[s].channels.get(ch, 0)
                                                          for s in SKUS), timeout=30, every=0.5)
        assert all(published.get(s, 0) == want[s].channels.get(channel, 0) for s in SKUS), f"seed {seed}"

    rebuilt = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "avail", "rebuild", "--timeout", "60"], env=engine.env(), capture_output=True,
        text=True, timeout=90, check=False,
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert not differences(stored(engine, SKUS), want)
    assert "Traceback" not in flow_log(engine)
