"""Redis goes away mid-stream: the flow waits and retries, the API says 503, both heal.

Each test runs its own redis-server (on disk or not) so it can stop and restart it on
the same port; the broker is the session's. Numbers are checked against the reference
model over HTTP and in Redis once the stream has drained.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from atp.events import Event
from local_servers import LOOPBACK, LocalServer, free_port, start_redis
from rulebook import load_rules
from tests.integration.test_flow import now_us, observed_many
from tests.support.engine import Engine, flow_log, wait_for
from tests.support.reference import Expected, expected
from tests.support.streams import random_stream

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

OUTAGE_S = 10.0


@dataclass
class OwnRedis:
    """A redis-server this test may stop and start again on the same port."""

    home: Path
    port: int = field(default_factory=free_port)
    server: LocalServer | None = None

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def start(self, keep_data: bool) -> None:
        self.server = start_redis(self.port, self.home, self.home / "data" if keep_data else None)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path / "redis")
    yield server
    server.stop()


@pytest.fixture
def engine_on_own_redis(kafka_bootstrap: str, own_redis: OwnRedis, tmp_path: Path) -> Iterator[Engine]:
    own_redis.start(keep_data=True)
    engine = Engine(kafka_bootstrap, own_redis.url, tmp_path / "engine")
    yield engine
    engine.stop()


class Stream:
    """A seeded retail stream produced steadily from a thread, and the numbers it must end at."""

    def __init__(self, engine: Engine, count: int, skus: int = 80) -> None:
        self.seed = int(os.environ.get("AVAIL_TEST_SEED", random.randrange(1_000_000)))
        self.engine = engine
        self.skus = [f"TV-{self.seed}-{i:03d}" for i in range(skus)]
        self.events = random_stream(self.seed, self.skus, count)
        self.unique = len({e.event_id for e in self.events})
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._produce, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _produce(self) -> None:
        for start in range(0, len(self.events), 200):
            self.engine.produce(self.events[start:start + 200])
            time.sleep(0.1)
        self.done.set()

    def want(self) -> dict[str, Expected]:
        rules = load_rules(self.engine.rules_dir)
        by_sku: dict[str, list[Event]] = {sku: [] for sku in self.skus}
        for event in self.events:
            by_sku[event.sku].append(event)
        return {sku: expected(sku, by_sku[sku], now=now_us(), rules=rules) for sku in self.skus}

    def settle(self, timeout: float = 90.0) -> float:
        """Seconds until the API shows exactly the reference numbers for every SKU (asserts)."""
        started = time.monotonic()
        assert self.done.wait(120), f"seed {self.seed}: the producer did not finish"
        want = self.want()
        got = wait_for(lambda: _observed_or_empty(self.engine, self.skus), lambda seen: seen == want,
                       timeout=timeout, every=0.5)
        wrong = [sku for sku in self.skus if got.get(sku) != want[sku]]
        assert not wrong, (f"seed {self.seed}: {len(wrong)} SKUs differ, e.g. {wrong[0]}: got {got.get(wrong[0])}, "
                           f"want {want[wrong[0]]}\n" + flow_log(self.engine))
        return time.monotonic() - started


def _observed_or_empty(engine: Engine, skus: list[str]) -> dict[str, Expected]:
    try:
        return observed_many(engine, skus)
    except (AssertionError, httpx.HTTPError):
        return {}


def _redis_hashes_match_api(engine: Engine, skus: list[str]) -> None:
    """Redis itself (not only what the API made of it) holds every node and channel."""
    api = observed_many(engine, skus)
    for sku in skus:
        stored = Expected({node: (p.on_hand, p.reserved, p.in_transit, p.unsellable, p.safety_stock, p.atp)
                           for node, p in engine.positions(sku).items()
                           if (p.on_hand, p.reserved, p.in_transit, p.unsellable) != (0, 0, 0, 0)},
                          engine.channels(sku))
        assert stored == api[sku], f"{sku}: Redis {stored} != API {api[sku]}"


def _outage(engine: Engine, own_redis: OwnRedis, stream: Stream, keep_data: bool) -> dict[str, float]:
    """Stops Redis once a third is applied, checks what the API says meanwhile, restarts it."""
    progress = wait_for(lambda: engine.stats().get("applied", 0), lambda n: n >= stream.unique // 3, 60)
    assert progress >= stream.unique // 3, flow_log(engine)
    flow_pids = [flow.pid for flow in engine.flows]
    assert progress < 0.8 * stream.unique, "the outage must interrupt the stream, not follow it"
    engine.redis.close()
    own_redis.stop()
    down_at = time.monotonic()
    sku = stream.skus[0]
    single = engine.get(f"/v1/availability/{sku}")
    assert single.status_code == 503, single.text
    assert single.json()["error"]["code"] == "redis_unavailable"
    ready = httpx.get(f"{engine.api.base_url}/readyz", timeout=10) if engine.api else None
    assert ready is not None and ready.status_code == 503 and ready.json()["ready"] is False, ready
    batch = engine.post("/v1/availability/batch", {"skus": stream.skus[:5]})
    assert batch.status_code == 503 and batch.json()["error"]["code"] == "redis_unavailable", batch.text
    assert httpx.get(f"{engine.api.base_url}/healthz", timeout=10).status_code == 200  # type: ignore[union-attr]
    time.sleep(max(0.0, down_at + OUTAGE_S - time.monotonic()))
    if not keep_data:
        for leftover in (own_redis.home / "data").glob("*"):
            _remove(leftover)
    own_redis.start(keep_data=keep_data)
    up_at = time.monotonic()
    answered = wait_for(lambda: engine.get(f"/v1/availability/{sku}").status_code, lambda code: code == 200, 30)
    assert answered == 200, flow_log(engine)
    api_back_s = time.monotonic() - up_at
    assert [flow.pid for flow in engine.flows] == flow_pids and all(f.poll() is None for f in engine.flows), \
        "the flow must ride out the outage in the same process, not crash\n" + flow_log(engine)
    settle_s = stream.settle()
    return {"api_back_s": api_back_s, "numbers_correct_s": time.monotonic() - up_at, "settle_s": settle_s}


def _remove(path: Path) -> None:
    if path.is_dir():
        for child in path.iterdir():
            _remove(child)
        path.rmdir()
    else:
        path.unlink()


def test_redis_down_10s_then_back_with_its_data(engine_on_own_redis: Engine, own_redis: OwnRedis) -> None:
    engine = engine_on_own_redis
    engine.start_api()
    engine.start_flow()
    stream = Stream(engine, 9000)
    stream.start()
    times = _outage(engine, own_redis, stream, keep_data=True)
    print(f"seed {stream.seed}: Redis back with its data: {times}")
    _redis_hashes_match_api(engine, stream.skus)
    assert engine.stats().get("rebuilds", 0) == 0, "Redis kept its data: nothing to rebuild"


def test_redis_back_empty_is_rebuilt_from_the_flow_state(engine_on_own_redis: Engine, own_redis: OwnRedis) -> None:
    engine = engine_on_own_redis
    engine.start_api()
    engine.start_flow()
    stream = Stream(engine, 9000)
    stream.start()
    times = _outage(engine, own_redis, stream, keep_data=False)
    print(f"seed {stream.seed}: Redis back empty: {times}")
    _redis_hashes_match_api(engine, stream.skus)
    assert engine.stats().get("rebuilds", 0) >= 1
    assert engine.redis.get(engine.keys.rules_version), "the rules were republished"
    # The channel snapshot (published values) is whole again: snapshot + feed stays exact.
    want_web = {sku: numbers.channels.get("web", 0) for sku, numbers in stream.want().items()}
    snapshot = wait_for(lambda: _web_snapshot(engine, stream.skus), lambda seen: seen == want_web, 60, every=0.5)
    assert snapshot == want_web


def _web_snapshot(engine: Engine, skus: list[str]) -> dict[str, int]:
    page = engine.get("/v1/channels/web/snapshot", limit="1000")
    if page.status_code != 200:
        return {}
    shown = {item["sku"]: item["available"] for item in page.json()["items"]}
    return {sku: shown.get(sku, 0) for sku in skus}


def test_avail_rebuild_rewrites_what_was_deleted(engine_on_own_redis: Engine) -> None:
    engine = engine_on_own_redis
    engine.start_api()
    engine.start_flow()
    stream = Stream(engine, 3000, skus=40)
    stream.start()
    stream.settle()
    before = _quiet_hashes(engine, stream.skus)
    doomed = stream.skus[:20]
    engine.redis.delete(*[engine.keys.sku(sku) for sku in doomed])
    engine.redis.delete(engine.keys.rules, engine.keys.rules_version)
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "avail", "rebuild", "--timeout", "60"], env=engine.env(), capture_output=True,
        text=True, timeout=90, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rebuilt by 1 flow process" in done.stdout, done.stdout
    rebuilt = wait_for(lambda: {sku: engine.sku_hash(sku) for sku in doomed},
                       lambda seen: all(seen[s].keys() == before[s].keys() for s in doomed), 30)
    for sku in doomed:
        # as_of may move up: the state's newest event time includes events that changed no number
        assert {f: v for f, v in rebuilt[sku].items() if f not in ("v", "a")} == \
            {f: v for f, v in before[sku].items() if f not in ("v", "a")}
        assert int(rebuilt[sku]["a"]) >= int(before[sku]["a"])
    assert engine.redis.get(engine.keys.rules_version)
    stream.settle(timeout=30)


def _quiet_hashes(engine: Engine, skus: list[str]) -> dict[str, dict[str, str]]:
    """The SKU hashes once a second passes without any change (an event changing only as_of may still land)."""
    previous: dict[str, dict[str, str]] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        current = {sku: engine.sku_hash(sku) for sku in skus}
        if current == previous:
            return current
        previous = current
        time.sleep(1.0)
    raise AssertionError("the SKU hashes never stopped changing\n" + flow_log(engine))


def test_a_lost_sku_hash_is_written_whole_on_its_next_event(engine_on_own_redis: Engine) -> None:
    engine = engine_on_own_redis
    engine.start_api()
    engine.start_flow()
    stream = Stream(engine, 2000, skus=20)
    stream.start()
    stream.settle()
    sku = stream.skus[0]
    nodes_before = set(engine.positions(sku))
    engine.redis.delete(engine.keys.sku(sku))  # e.g. evicted, or deleted by hand
    extra = random_stream(stream.seed + 1, [sku], 5)[-3:]  # a few events of that SKU only
    stream.events += extra
    engine.produce(extra)
    nodes = wait_for(lambda: set(engine.positions(sku)), lambda seen: seen >= nodes_before, 30)
    assert nodes >= nodes_before, "a partial write must not leave the SKU with nodes missing"
    stream.settle(timeout=30)
    assert engine.stats().get("lost_sku_writes", 0) >= 1
