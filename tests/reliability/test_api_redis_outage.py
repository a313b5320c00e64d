"""Redis goes away under a running API and comes back on the same port.

While it is down, availability routes answer a quick 503 ``redis_unavailable``, /readyz
503, /healthz 200, and open delta streams end saying why. Once it is back the API
recovers by itself, without a restart: with an empty Redis (nothing known, not ready
for want of rules and flow) and with a repopulated one (answers, readiness, freshness
and the delta feed all as before).
"""

from __future__ import annotations

import os
import secrets
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import orjson
import pytest
import redis

from local_servers import LOOPBACK, LocalServer, free_port, start_redis
from projection import Keys
from tests.support.api import RunningApi, serving_api, write_heartbeat

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

T = TypeVar("T")

PREFIX = f"outage-{uuid.uuid4().hex[:8]}"
KEYS = Keys(PREFIX)
READ_KEY = secrets.token_urlsafe(24)
API_KEYS = {READ_KEY: ["read"]}
RULES = {"version": "out1", "channels": {"web": {"nodes": ["dc-east"]}}}
QUICK_S = 3.0
"""How long an answer may take while Redis is down (the API's Redis timeout is 1 s)."""


@dataclass
class RedisOnAPort:
    """A redis-server we stop and start again on the same port, by its PID."""

    port: int
    log_dir: Path
    server: LocalServer | None = None

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def start(self) -> redis.Redis:
        self.server = start_redis(port=self.port, log_dir=self.log_dir)
        return redis.Redis.from_url(self.url, decode_responses=True)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


@pytest.fixture
def store_server(tmp_path: Path) -> Iterator[RedisOnAPort]:
    server = RedisOnAPort(free_port(), tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def api(store_server: RedisOnAPort, tmp_path: Path) -> Iterator[RunningApi]:
    populate(store_server.start())
    with serving_api(store_server.url, PREFIX, API_KEYS, tmp_path) as running:
        yield running


def populate(store: redis.Redis) -> None:
    """What a running flow would have written: rules, one SKU, a heartbeat and fresh progress."""
    now = time.time_ns() // 1000
    pipe = store.pipeline(transaction=False)
    pipe.set(KEYS.rules, orjson.dumps(RULES))
    pipe.hset(KEYS.sku("TV-55"), mapping={"v": 1, "a": now, "r": "out1", "c:web": 4, "n:dc-east": "5,1,0,0,0,4"})
    pipe.zadd(KEYS.skus, {"TV-55": 0})
    pipe.hset(KEYS.progress, mapping={"applied:0": now, "event:0": now - 100_000})
    pipe.execute()
    write_heartbeat(store, KEYS)


def publish(store: redis.Redis, sku: str, available: int) -> int:
    """One delta on channel web, written as ``projection`` lays the feed out; its seq."""
    seq = int(store.incr(KEYS.feed_seq("web")))
    delta = {"channel": "web", "sku": sku, "available": available, "previous": 0,
             "as_of": "2026-11-23T10:15:00.123Z", "rules_version": "out1", "seq": seq}
    store.xadd(KEYS.feed("web"), {"d": orjson.dumps(delta), "t": time.time_ns() // 1000}, id=f"{seq}-0")
    store.hset(KEYS.published("web"), sku, available)
    return seq


def timed(call: Callable[[], T]) -> tuple[T, float]:
    started = time.monotonic()
    return call(), time.monotonic() - started


def eventually(probe: Callable[[], T], done: Callable[[T], bool], timeout: float = 10.0) -> T:
    deadline = time.monotonic() + timeout
    value = probe()
    while not done(value) and time.monotonic() < deadline:
        time.sleep(0.1)
        value = probe()
    return value


def error_code(response: httpx.Response) -> str | None:
    assert response.headers["content-type"] == "application/json", response.text
    return response.json().get("error", {}).get("code")


def assert_down_answers(http: httpx.Client) -> None:
    """Every route while Redis is down: quick, and saying so."""
    for name, call in {
        "single": lambda: http.get("/v1/availability/TV-55"),
        "one channel": lambda: http.get("/v1/availability/TV-55", params={"channel": "web"}),
        "batch": lambda: http.post("/v1/availability/batch", json={"skus": ["TV-55"]}),
        "snapshot": lambda: http.get("/v1/channels/web/snapshot"),
        "deltas": lambda: http.get("/v1/channels/web/deltas"),
    }.items():
        response, took = timed(call)
        assert response.status_code == 503, (name, response.text)
        assert error_code(response) == "redis_unavailable", name
        assert took < QUICK_S, (name, took)
    ready, took = timed(lambda: http.get("/readyz"))
    assert ready.status_code == 503 and took < QUICK_S
    assert ready.json()["ready"] is False and ready.json()["checks"]["redis"]["ok"] is False
    assert ready.json()["freshness"] == {"stale": True, "reason": "unknown",
                                         "detail": "unknown: Redis is not answering"}
    health, took = timed(lambda: http.get("/healthz"))
    assert health.status_code == 200 and took < 0.5
    metrics = http.get("/metrics")
    assert metrics.status_code == 200 and "avail_flow_stats_up 0.0" in metrics.text


def nonblank(lines: Iterator[str]) -> Iterator[str]:
    return (line for line in lines if line)


class TestRedisOutage:
    def test_answers_503_quickly_while_down_and_recover_on_an_empty_redis(
        self, api: RunningApi, store_server: RedisOnAPort,
    ) -> None:
        with httpx.Client(base_url=api.base_url, headers={"X-API-Key": READ_KEY}, timeout=10) as http:
            assert http.get("/v1/availability/TV-55").status_code == 200
            assert http.get("/readyz").status_code == 200
            with http.stream("GET", "/v1/channels/web/deltas") as stream:
                lines = nonblank(stream.iter_lines())
                assert next(lines).startswith(": connected")
                store_server.stop()
                rest, took = timed(lambda: list(lines))
            assert rest[-1] == ": the availability store (Redis) is not answering; reconnect with Last-Event-ID"
            assert took < QUICK_S
            assert 'avail_api_sse_streams_ended_total{channel="web",reason="redis_unavailable"} 1.0' in (
                http.get("/metrics").text)

            assert_down_answers(http)

            store_server.start()  # empty: the engine's data is gone until the flow rewrites it
            single = eventually(lambda: http.get("/v1/availability/TV-55"), lambda r: r.status_code != 503)
            assert (single.status_code, error_code(single)) == (404, "unknown_sku")
            batch = http.post("/v1/availability/batch", json={"skus": ["TV-55"]})
            assert batch.status_code == 200 and batch.json()["results"][0]["known"] is False
            # the rules cached before the outage live on for up to 1 s (rules_cache TTL)
            snapshot = eventually(lambda: http.get("/v1/channels/web/snapshot"), lambda r: r.status_code == 503, 3)
            assert (snapshot.status_code, error_code(snapshot)) == (503, "rules_unavailable")
            ready = eventually(lambda: http.get("/readyz"), lambda r: r.json()["checks"]["redis"]["ok"])
            assert ready.status_code == 503, "no rules and no flow yet"
            assert ready.json()["checks"]["redis"] == {"ok": True, "detail": "PING answered"}
            assert ready.json()["freshness"]["reason"] == "flow_down"
            assert http.get("/healthz").status_code == 200

    def test_recover_fully_once_redis_is_back_and_repopulated_delta_feed_included(
        self, api: RunningApi, store_server: RedisOnAPort,
    ) -> None:
        with httpx.Client(base_url=api.base_url, headers={"X-API-Key": READ_KEY}, timeout=10) as http:
            assert_delta_reaches_a_new_client(http, store_server, "TV-55", 7)
            store_server.stop()
            assert_down_answers(http)

            store = store_server.start()
            populate(store)
            single = eventually(lambda: http.get("/v1/availability/TV-55"),
                                lambda r: r.status_code == 200 and r.headers["x-availability-stale"] == "0")
            assert single.status_code == 200, single.text
            assert single.headers["x-availability-stale"] == "0" and single.json()["stale"] is False
            assert single.json()["channels"] == {"web": 4}
            ready = eventually(lambda: http.get("/readyz"), lambda r: r.status_code == 200)
            assert ready.status_code == 200, ready.text
            assert ready.json()["freshness"]["stale"] is False
            assert http.get("/v1/channels/web/snapshot").status_code == 200
            # the hub outlived the outage: a client connecting now gets the deltas written now
            assert_delta_reaches_a_new_client(http, store_server, "HDMI-2M", 3)

    def test_a_frozen_redis_times_out_into_503_and_thaws_without_a_restart(
        self, api: RunningApi, store_server: RedisOnAPort,
    ) -> None:
        assert store_server.server is not None
        pid = store_server.server.pid
        with httpx.Client(base_url=api.base_url, headers={"X-API-Key": READ_KEY}, timeout=10) as http:
            assert http.get("/v1/availability/TV-55").status_code == 200
            os.kill(pid, signal.SIGSTOP)  # connections stay open and nothing answers: a hung host
            try:
                for name, call in {  # SKUs this process has not cached
                    "single": lambda: http.get("/v1/availability/TV-56"),
                    "batch": lambda: http.post("/v1/availability/batch", json={"skus": ["TV-57"]}),
                }.items():
                    response, took = timed(call)
                    assert (response.status_code, error_code(response)) == (503, "redis_unavailable"), name
                    assert took < QUICK_S, (name, took)
                # the SKU read before the freeze may come from the read cache (nothing can change it
                # meanwhile) until the cache's tracking PING goes unanswered, about a second
                deadline = time.monotonic() + 3
                while (cached := http.get("/v1/availability/TV-55")).status_code == 200 and time.monotonic() < deadline:
                    time.sleep(0.1)
                assert (cached.status_code, error_code(cached)) == (503, "redis_unavailable")
                ready, took = timed(lambda: http.get("/readyz"))
                assert ready.status_code == 503 and took < QUICK_S
                assert http.get("/healthz", timeout=0.5).status_code == 200
            finally:
                os.kill(pid, signal.SIGCONT)
            single = eventually(lambda: http.get("/v1/availability/TV-55"), lambda r: r.status_code == 200)
            assert single.status_code == 200
            store = redis.Redis.from_url(store_server.url, decode_responses=True)
            write_heartbeat(store, KEYS)
            store.close()
            assert eventually(lambda: http.get("/readyz"), lambda r: r.status_code == 200).status_code == 200


def assert_delta_reaches_a_new_client(http: httpx.Client, store_server: RedisOnAPort, sku: str, available: int) -> None:
    store = redis.Redis.from_url(store_server.url, decode_responses=True)
    try:
        with http.stream("GET", "/v1/channels/web/deltas") as stream:
            assert stream.status_code == 200
            lines = nonblank(stream.iter_lines())
            assert next(lines).startswith(": connected")
            seq = publish(store, sku, available)
            event = [next(lines) for _ in range(3)]
        assert event[0] == f"id: {seq}" and event[1] == "event: delta"
        assert orjson.loads(event[2].removeprefix("data: "))["available"] == available
    finally:
        store.close()
