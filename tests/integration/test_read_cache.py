"""The API's read cache over a real Redis: changes are served at once, and nothing stale survives.

The API runs with a 60 s cache TTL, so only invalidation (or its loss being noticed)
can explain a fresh answer. Its own redis-server, so killing the API's tracking
connection touches nothing else; and again on the session's Redis Cluster, where the
API tracks every master.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest
import redis
from redis.cluster import RedisCluster

from availability_api.invalidation import CLIENT_NAME
from availability_api.read_cache import READ_CHUNK, ReadCache, SkuReader
from local_servers import LOOPBACK, start_redis
from projection import Keys
from projection.connect import SyncClient, async_client, sync_client
from tests.support.api import RunningApi, delete_prefix, serving_api, write_heartbeat

pytestmark = pytest.mark.integration

PREFIX = "cachetest"
KEYS = Keys(PREFIX)
READ_KEY = secrets.token_urlsafe(24)
RULES = {"version": "c1", "channels": {"web": {"nodes": ["dc-east"]}, "amazon": {"nodes": ["dc-east"]}}}
PROMPTLY_S = 1.0


@pytest.fixture(scope="module", params=["single", "cluster"], ids=["redis", "redis-cluster"])
def redis_url(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "cluster":
        url = str(request.getfixturevalue("redis_cluster_url"))
        yield url
        with contextlib.closing(sync_client(url)) as client:
            delete_prefix(client, PREFIX)
        return
    server = start_redis(log_dir=tmp_path_factory.mktemp("cache-redis"))
    try:
        yield f"redis://{LOOPBACK}:{server.port}/0"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def store(redis_url: str) -> Iterator[SyncClient]:
    client = sync_client(redis_url, decode_responses=True)
    now = time.time_ns() // 1000
    client.set(KEYS.rules, orjson.dumps(RULES))
    client.hset(KEYS.progress, mapping={"applied:0": now, "event:0": now})
    write_heartbeat(client, KEYS)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def api(redis_url: str, store: SyncClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApi]:
    with serving_api(redis_url, PREFIX, {READ_KEY: ["read"]}, tmp_path_factory.mktemp("cache-api"),
                     extra_env={"AVAIL_READ_CACHE_TTL_S": "60"}) as running:
        yield running


@pytest.fixture
def http(api: RunningApi) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.base_url, headers={"X-API-Key": READ_KEY}, timeout=5) as client:
        yield client


def write(store: SyncClient, sku: str, web: int) -> None:
    """A flow write of the SKU's numbers (one hash, as projection lays it out)."""
    store.hset(KEYS.sku(sku), mapping={
        "v": time.time_ns() // 1000, "a": time.time_ns() // 1000, "r": "c1", "c:web": web, "c:amazon": web // 2,
        "n:dc-east": f"{web},0,0,0,0,{web}",
    })


def web(http: httpx.Client, sku: str) -> int:
    answer = http.get(f"/v1/availability/{sku}", params={"channel": "web"})
    assert answer.status_code == 200, answer.text
    return int(answer.json()["channels"]["web"])


def cache_counters(http: httpx.Client) -> dict[str, float]:
    counters: dict[str, float] = {}
    for line in http.get("/metrics").text.splitlines():
        if line.startswith("avail_api_read_cache"):
            name, value = line.rsplit(" ", 1)
            counters[name] = float(value)
    return counters


def hits(http: httpx.Client) -> float:
    return cache_counters(http)['avail_api_read_cache_total{outcome="hit"}']


def wait_until_live(http: httpx.Client, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while cache_counters(http).get("avail_api_read_cache_live") != 1:
        assert time.monotonic() < deadline, "the read cache did not come back"
        time.sleep(0.02)


def node_of(store: SyncClient, sku: str) -> redis.Redis:
    """The Redis holding the SKU's hash: the one, or the cluster master of its slot."""
    if isinstance(store, RedisCluster):
        return store.get_node_from_key(KEYS.sku(sku)).redis_connection  # type: ignore[no-any-return]
    return store


def tracking_clients(node: redis.Redis) -> list[dict[str, str]]:
    return [c for c in node.client_list() if c.get("name") == CLIENT_NAME]


def cache_a_value(http: httpx.Client, store: SyncClient, sku: str, value: int) -> None:
    write(store, sku, value)
    wait_until_live(http)
    assert web(http, sku) == value
    before = hits(http)
    assert web(http, sku) == value
    assert hits(http) == before + 1, "the second read should have been served from the cache"


class TestReadCache:
    def test_a_write_is_served_promptly_after_the_value_was_cached(
        self, http: httpx.Client, store: SyncClient,
    ) -> None:
        cache_a_value(http, store, "TV-1", 4)
        write(store, "TV-1", 9)
        written = time.monotonic()
        while web(http, "TV-1") != 9:
            assert time.monotonic() - written < PROMPTLY_S, "a cached value outlived its invalidation"
            time.sleep(0.005)

    def test_a_batch_sees_a_write_promptly(self, http: httpx.Client, store: SyncClient) -> None:
        cache_a_value(http, store, "TV-2", 5)
        body = {"skus": ["TV-2", "NEVER-SEEN"], "channel": "web"}

        def batch() -> list[int]:
            return [r["channels"]["web"] for r in http.post("/v1/availability/batch", json=body).json()["results"]]

        assert batch() == [5, 0]
        assert batch() == [5, 0]  # now from the cache, the unknown SKU too
        write(store, "TV-2", 6)
        write(store, "NEVER-SEEN", 3)  # a SKU cached as unknown appears too
        written = time.monotonic()
        while batch() != [6, 3]:
            assert time.monotonic() - written < PROMPTLY_S, "a cached value outlived its invalidation"
            time.sleep(0.005)

    def test_no_stale_value_after_the_invalidation_connection_is_killed(
        self, http: httpx.Client, store: SyncClient,
    ) -> None:
        cache_a_value(http, store, "TV-3", 7)
        node = node_of(store, "TV-3")  # on a cluster, the API tracks each master: this one reports TV-3
        [tracker] = tracking_clients(node)
        node.execute_command("CLIENT", "KILL", "ID", tracker["id"])
        write(store, "TV-3", 8)  # its invalidation went nowhere: the API must stop trusting the cache
        assert web(http, "TV-3") == 8
        wait_until_live(http)
        [again] = tracking_clients(node)
        assert again["id"] != tracker["id"]
        cache_a_value(http, store, "TV-3", 10)
        write(store, "TV-3", 11)
        written = time.monotonic()
        while web(http, "TV-3") != 11:
            assert time.monotonic() - written < PROMPTLY_S, "tracking was not re-established"
            time.sleep(0.005)

    def test_the_fast_path_answers_exactly_as_the_routes_do(self, http: httpx.Client, store: SyncClient) -> None:
        write(store, "TV-4", 12)
        # A trailing "&" or a charset parameter is valid but unusual: the FastAPI routes answer those.
        for fast, routed in [("/v1/availability/TV-4", "/v1/availability/TV-4?"),
                             ("/v1/availability/TV-4?channel=web", "/v1/availability/TV-4?channel=web&")]:
            a, b = http.get(fast), http.get(routed)
            assert (a.status_code, a.content, a.headers["x-availability-stale"]) == (
                b.status_code, b.content, b.headers["x-availability-stale"])
            assert a.headers["content-type"] == b.headers["content-type"]
        body = orjson.dumps({"skus": ["TV-4", "NEVER-SEEN-2"], "channel": "web"})
        a = http.post("/v1/availability/batch", content=body, headers={"Content-Type": "application/json"})
        b = http.post("/v1/availability/batch", content=body,
                      headers={"Content-Type": "application/json; charset=utf-8"})
        assert (a.status_code, a.content) == (b.status_code, b.content)
        assert a.status_code == 200
        unknown = http.get("/v1/availability/NEVER-SEEN-3")
        assert unknown.status_code == 404
        assert unknown.json()["error"]["code"] == "unknown_sku"


def test_misses_beyond_one_script_call_come_back_whole_and_in_order(redis_url: str, store: SyncClient) -> None:
    skus = [f"MANY-{i:05d}" for i in range(READ_CHUNK * 2 + 500)]
    pipe = store.pipeline(transaction=False)
    for i, sku in enumerate(skus):
        if i % 3:  # every third SKU never seen: an empty hash
            pipe.hset(KEYS.sku(sku), mapping={"v": i, "c:web": i, "n:dc-east": f"{i},0,0,0,0,{i}"})
    pipe.execute()

    async def read_twice() -> tuple[list[dict[str, str]], list[dict[str, str]]]:
        client = async_client(redis_url, decode_responses=True)
        cache = ReadCache(len(skus), 60.0)
        cache.go_live()
        reader = SkuReader(client, KEYS, cache)
        try:
            return list(await reader.many(skus)), list(await reader.many(skus))
        finally:
            await client.aclose()

    first, again = asyncio.run(read_twice())
    expected = [{} if i % 3 == 0 else {"v": str(i), "c:web": str(i), "n:dc-east": f"{i},0,0,0,0,{i}"}
                for i in range(len(skus))]
    assert first == expected
    assert again == expected


def test_the_api_log_is_clean(api: RunningApi) -> None:
    assert "Traceback" not in api.log()


@pytest.fixture(scope="module")
def small_pool_api(redis_url: str, store: SyncClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApi]:
    """Four Redis connections (per master on a cluster), no cache: every batch reads Redis."""
    with serving_api(redis_url, PREFIX, {READ_KEY: ["read"]}, tmp_path_factory.mktemp("small-pool-api"),
                     extra_env={"AVAIL_READ_CACHE_TTL_S": "0", "AVAIL_REDIS_MAX_CONNECTIONS": "4"}) as running:
        yield running


def test_concurrent_batches_over_every_slot_group_wait_for_a_connection_rather_than_fail(
    small_pool_api: RunningApi, store: SyncClient,
) -> None:
    """A batch reads all 64 slot groups of a cluster: one pipeline per master, not 64 calls holding 64 connections."""
    skus = [f"POOL-{i:04d}" for i in range(300)]
    for i, sku in enumerate(skus):
        write(store, sku, i)
    masters = [n.redis_connection for n in store.get_primaries()] if isinstance(store, RedisCluster) else [store]
    for node in masters:
        node.script_flush()  # as on a new cluster or a restarted master: the API loads its script again

    async def batches() -> list[int]:
        async with httpx.AsyncClient(base_url=small_pool_api.base_url, headers={"X-API-Key": READ_KEY},
                                     timeout=10) as client:
            answers = await asyncio.gather(*(client.post("/v1/availability/batch", json={"skus": skus,
                                                                                           "channel": "web"})
                                             for _ in range(40)))
        assert all(a.json()["results"][-1]["channels"]["web"] == len(skus) - 1 for a in answers if a.is_success)
        return [a.status_code for a in answers]

    assert set(asyncio.run(batches())) == {200}
