"""The Redis sink's chunked compare-and-set, on a real redis-server: every SKU of a batch gets its own verdict."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from redis.cluster import RedisCluster

from dataflows.messages import Counts, Heartbeat, SkuWrite
from dataflows.redis_sink import ARGUMENTS_PER_CALL, SKUS_PER_CALL, RedisSink, _RedisSinkPartition
from dataflows.store_guard import Registry
from local_servers import LOOPBACK, start_redis
from projection import Keys
from projection.connect import SyncClient, sync_client
from projection.keys import SLOT_GROUPS
from tests.support.api import delete_prefix

pytestmark = pytest.mark.integration

KEYS = Keys("sinktest")


@pytest.fixture(params=["single", "cluster"], ids=["redis", "redis-cluster"])
def redis_url(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "cluster":
        url = str(request.getfixturevalue("redis_cluster_url"))
        yield url
        with contextlib.closing(sync_client(url)) as client:
            delete_prefix(client, KEYS.prefix)
        return
    server = start_redis(log_dir=tmp_path_factory.mktemp("sink-redis"))
    try:
        yield f"redis://{LOOPBACK}:{server.port}/0"
    finally:
        server.stop()


def script_calls(client: SyncClient) -> int:
    """EVALSHA calls so far, summed over every master."""
    nodes = [n.redis_connection for n in client.get_primaries()] if isinstance(client, RedisCluster) else [client]
    return sum(int(node.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)) for node in nodes)


def partition(url: str, registry: Registry) -> _RedisSinkPartition:
    return RedisSink(url, KEYS, registry).build("redis", 0, 1)


def write(sku: str, version: int, *, full: bool, on_hand: int) -> SkuWrite:
    return SkuWrite(sku, version, full, positions={"dc-east": f"{on_hand},0,0,0,0,{on_hand}"},
                    channels={"web": on_hand}, as_of=version, rules_version="r1")


def test_a_batch_over_several_script_calls_writes_refuses_and_reports_each_sku(redis_url: str) -> None:
    registry = Registry("g1")
    sink = partition(redis_url, registry)
    client = sync_client(redis_url, decode_responses=True)
    try:
        skus = [f"SKU-{i:05d}" for i in range(SKUS_PER_CALL * 2 + 7)]
        sink.write_batch([write(sku, 100, full=True, on_hand=i) for i, sku in enumerate(skus)])
        assert client.zcard(KEYS.skus) == len(skus)
        assert client.hgetall(KEYS.sku(skus[-1])) == {
            "v": "100", "a": "100", "r": "r1", "n:dc-east": f"{len(skus) - 1},0,0,0,0,{len(skus) - 1}",
            "c:web": str(len(skus) - 1)}

        client.delete(KEYS.sku(skus[SKUS_PER_CALL + 3]))  # Redis lost one hash
        later = [write(sku, 200 if i % 2 else 50, full=False, on_hand=1000 + i) for i, sku in enumerate(skus)]
        sink.write_batch(later)
        for i, sku in enumerate(skus):
            fields = client.hgetall(KEYS.sku(sku))
            if i == SKUS_PER_CALL + 3:
                assert fields == {}, "a partial write must not create a hash"
            elif i % 2:
                assert (fields["v"], fields["c:web"]) == ("200", str(1000 + i))
            else:  # older than what is stored: refused
                assert (fields["v"], fields["c:web"]) == ("100", str(i))
        assert registry.take_lost() == [skus[SKUS_PER_CALL + 3]]
        assert client.hget(KEYS.stats, "lost_sku_writes") == "1"
    finally:
        client.close()
        sink.close()


def test_numbers_reach_redis_as_the_digits_of_the_integers(redis_url: str) -> None:
    """Writes travel as MessagePack, which hands Lua doubles: no exponent form, no lost digit, below 2^53."""
    sink = partition(redis_url, Registry("g1"))
    client = sync_client(redis_url, decode_responses=True)
    version = 1_765_000_000_000_001  # µs since the epoch, as the flow's versions are
    try:
        sink.write_batch([SkuWrite("DIGITS-1", version, True, positions={"dc-east": "1000000,0,0,0,0,1000000"},
                                   channels={"web": 1_000_000, "store": 0, "market": -3},
                                   as_of=version - 1, rules_version="r1", unsourced={"web": 20_000_000},
                                   supply="2026-12-24:5")])
        assert client.hgetall(KEYS.sku("DIGITS-1")) == {
            "v": str(version), "a": str(version - 1), "r": "r1", "n:dc-east": "1000000,0,0,0,0,1000000",
            "c:web": "1000000", "c:store": "0", "c:market": "-3", "u:web": "20000000", "s": "2026-12-24:5"}
        sink.write_batch([SkuWrite("DIGITS-1", version + 1, False, channels={"web": 7}, as_of=version,
                                   rules_version="r1", unsourced={"web": 0}, removed_channels=["market"],
                                   supply="")])
        fields = client.hgetall(KEYS.sku("DIGITS-1"))
        assert (fields["v"], fields["c:web"]) == (str(version + 1), "7")
        assert not {"c:market", "u:web", "s"} & fields.keys(), "deleted fields must go"
        sink.write_batch([SkuWrite("DIGITS-1", version, False, channels={"web": 99}, rules_version="r1")])
        assert client.hget(KEYS.sku("DIGITS-1"), "c:web") == "7", "an older version is refused"
    finally:
        client.close()
        sink.close()


def test_wide_skus_end_a_call_early_and_keep_their_verdicts(redis_url: str) -> None:
    registry = Registry("g1")
    sink = partition(redis_url, registry)
    client = sync_client(redis_url, decode_responses=True)
    nodes = [f"store-{n:03d}" for n in range(300)]

    def wide(sku: str, version: int, *, full: bool) -> SkuWrite:
        return SkuWrite(sku, version, full, positions={node: f"{version},0,0,0,0,{version}" for node in nodes},
                        channels={"web": version}, as_of=version, rules_version="r1")

    try:
        skus = [f"WIDE-{i:03d}" for i in range(150)]  # about 33 a call: ARGUMENTS_PER_CALL ends each chunk
        assert len(skus) * 2 * len(nodes) > 4 * ARGUMENTS_PER_CALL
        sink.write_batch([wide(sku, 10, full=True) for sku in skus])
        lost = skus[77]
        client.delete(KEYS.sku(lost))
        sink.write_batch([wide(sku, 20, full=False) for sku in skus])
        for sku in skus:
            fields = client.hgetall(KEYS.sku(sku))
            if sku == lost:
                assert fields == {}
            else:
                assert (fields["v"], fields["n:store-299"], len(fields)) == ("20", "20,0,0,0,0,20", 304)
        assert registry.take_lost() == [lost]
    finally:
        client.close()
        sink.close()


def test_a_batch_is_at_most_one_script_call_per_slot_group(redis_url: str) -> None:
    """On a cluster a script touches one slot: 500 SKUs are still a few calls (one per group), not 500."""
    sink = partition(redis_url, Registry("g1"))
    client = sync_client(redis_url, decode_responses=True)
    try:
        skus = [f"GROUPED-{i:05d}" for i in range(SKUS_PER_CALL)]
        before = script_calls(client)
        sink.write_batch([write(sku, 100, full=True, on_hand=i) for i, sku in enumerate(skus)])
        calls = script_calls(client) - before
        assert calls == (SLOT_GROUPS if isinstance(client, RedisCluster) else 1)
        assert [client.hget(KEYS.sku(sku), "c:web") for sku in skus] == [str(i) for i in range(len(skus))]
    finally:
        client.close()
        sink.close()


def test_a_batch_counts_once_when_masters_have_lost_the_script(redis_url: str) -> None:
    """A new cluster, or a restarted master, has no scripts: loading them must not replay the batch's counters."""
    sink = partition(redis_url, Registry("g1"))
    client = sync_client(redis_url, decode_responses=True)
    try:
        nodes = [n.redis_connection for n in client.get_primaries()] if isinstance(client, RedisCluster) else [client]
        sink.write_batch([write("COUNTED-0", 100, full=True, on_hand=1)])  # the sink has loaded its script
        for node in nodes:
            node.script_flush()
        before = int(client.hget(KEYS.stats, "applied") or 0)
        sink.write_batch([Counts({"applied": 7}), *(write(f"COUNTED-{i}", 200, full=True, on_hand=i)
                                                    for i in range(1, 200))])
        assert int(client.hget(KEYS.stats, "applied") or 0) - before == 7  # noqa: PLR2004
        assert client.hget(KEYS.sku("COUNTED-199"), "c:web") == "199"
    finally:
        client.close()
        sink.close()


def test_a_heartbeat_writes_its_process_consumer_lags_into_the_stats_hash(redis_url: str) -> None:
    sink = partition(redis_url, Registry("g1"))
    client = sync_client(redis_url, decode_responses=True)
    try:
        sink.write_batch([Heartbeat("w0", 1, (("pos.sales", 0, 40), ("eu:wms.picks", 3, 0)))])
        sink.write_batch([Counts({"applied": 1}), Heartbeat("w0", 2, (("pos.sales", 0, 0),))])
        stats = client.hgetall(KEYS.stats)
        assert (stats["consumer_lag:pos.sales:0"], stats["consumer_lag:eu:wms.picks:3"]) == ("0", "0")
        assert client.hget(KEYS.heartbeat, "w0") == "2"
    finally:
        client.close()
        sink.close()
