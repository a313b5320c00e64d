"""The delta feed under a burst: throttled, coalesced, complete, the same in Redis and Kafka."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from atp.events import Receipt, Sale
from tests.integration.test_flow import HOUR, now_us
from tests.support.engine import ADMIN_KEY, READ_KEY, RULES_YAML, Engine, flow_log, running_engine, wait_for

pytestmark = pytest.mark.e2e

MAX_PER_SECOND = 400
MIN_INTERVAL_MS = 300
LIMITS = f"{{max_per_second: {MAX_PER_SECOND}, min_interval_ms: {MIN_INTERVAL_MS}}}"
THROTTLED = RULES_YAML.replace(
    "    node_buffer: {store: 1}\n", f"    node_buffer: {{store: 1}}\n    publish: {LIMITS}\n", 1,
)


@pytest.fixture(scope="module")
def engine(kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    with running_engine(kafka_bootstrap, redis_url, tmp_path_factory.mktemp("feed"), THROTTLED) as engine:
        yield engine


def stream(engine: Engine, channel: str) -> list[tuple[int, dict[str, object], int]]:
    """(seq, delta, released_at µs) of every retained entry, oldest first."""
    entries = engine.redis.xrange(engine.keys.feed(channel))
    return [(int(entry_id.split("-")[0]), orjson.loads(fields["d"]), int(fields["t"])) for entry_id, fields in entries]


def live(engine: Engine, channel: str, skus: list[str]) -> dict[str, int]:
    results = engine.post("/v1/availability/batch", {"skus": skus, "channel": channel}).json()["results"]
    return {r["sku"]: r["channels"][channel] for r in results}


def max_in_any_window(times_us: list[int], window_us: int = 1_000_000) -> int:
    best, start = 0, 0
    for end, t in enumerate(times_us):
        while t - times_us[start] >= window_us:
            start += 1
        best = max(best, end - start + 1)
    return best


class Follower(threading.Thread):
    """An adapter-like client: snapshot during the burst, then the feed, reconnecting every ``every`` deltas."""

    def __init__(self, engine: Engine, channel: str, every: int | None, after: int | None = None) -> None:
        """``after``: follow from this seq without a snapshot; None: bootstrap from the snapshot first."""
        super().__init__(daemon=True)
        self.engine, self.channel, self.every, self.after = engine, channel, every, after
        self.numbers: dict[str, int] = {}
        self.seqs: list[int] = []
        self.received_at: list[float] = []
        self.connections = 0
        self.last: int | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        assert self.engine.api is not None
        with httpx.Client(base_url=self.engine.api.base_url, headers={"X-API-Key": READ_KEY},
                          timeout=httpx.Timeout(10, read=2)) as client:
            cursor, self.last = None, self.after
            while self.after is None:
                params = {"limit": "200", **({"cursor": cursor} if cursor else {})}
                page = client.get(f"/v1/channels/{self.channel}/snapshot", params=params).json()
                self.last = self.last if self.last is not None else int(page["delta_cursor"])
                self.numbers.update({item["sku"]: item["available"] for item in page["items"]})
                cursor = page["next_cursor"]
                if cursor is None:
                    break
                time.sleep(0.01)  # page slowly, so the burst runs on underneath
            while not self.stop.is_set():
                self.connections += 1
                try:
                    self._follow(client)
                except httpx.ReadTimeout:
                    continue

    def _follow(self, client: httpx.Client) -> None:
        seen = 0
        with client.stream("GET", f"/v1/channels/{self.channel}/deltas",
                           headers={"Last-Event-ID": str(self.last)}) as answer:
            for line in answer.iter_lines():
                if line.startswith("data: "):
                    delta = orjson.loads(line[6:])
                    self.numbers[delta["sku"]] = delta["available"]
                    self.seqs.append(delta["seq"])
                    self.received_at.append(time.monotonic())
                    self.last, seen = delta["seq"], seen + 1
                    if (self.every is not None and seen >= self.every) or self.stop.is_set():
                        return  # hang up and resume with Last-Event-ID


def stop_followers(*followers: Follower, until: int | None = None) -> None:
    for client in followers:
        if until is not None:
            wait_for(lambda c=client: c.seqs[-1] if c.seqs else 0, lambda seq: seq >= until, timeout=30)
        client.stop.set()
        client.join(10)


def test_a_burst_is_throttled_coalesced_and_every_final_value_delivered(engine: Engine) -> None:
    skus = [f"TV-burst-{engine.name}-{i:04d}" for i in range(1000)]
    t = now_us() - HOUR
    events = [Receipt(f"{sku}-{k}", sku, "dc-east", 1 + (k % 3), t + k) for k in range(50) for sku in skus]
    now_at = int(engine.get("/v1/channels/web/snapshot", limit="1").json()["delta_cursor"])
    listener = Follower(engine, "web", every=None, after=now_at)  # connected throughout: the rate it sees
    listener.start()
    engine.produce(events[:2000])
    follower = Follower(engine, "web", every=500)  # snapshot mid-burst, then the feed with reconnects
    follower.start()
    try:
        started = time.monotonic()
        for i in range(2000, len(events), 5000):
            engine.produce(events[i:i + 5000])
        produced_in = time.monotonic() - started

        final_web = sum(1 + (k % 3) for k in range(50))  # every receipt is at dc-east, which feeds web in full

        def settled() -> bool:
            numbers = live(engine, "web", skus)
            published = engine.redis.hgetall(engine.keys.published("web"))
            return all(numbers[sku] == final_web and int(published.get(sku, 0)) == final_web for sku in skus)

        assert wait_for(settled, bool, timeout=90, every=0.5), flow_log(engine)
        entries = [e for e in stream(engine, "web") if str(e[1]["sku"]).startswith(f"TV-burst-{engine.name}")]
        released = [t_us for _, _, t_us in entries]
        assert released == sorted(released)
        busiest = max_in_any_window(released)
        print(f"\n50,000 events in {produced_in:.1f} s -> {len(entries)} web deltas; busiest 1 s window: {busiest}")
        assert busiest <= MAX_PER_SECOND
        assert len(entries) < 20_000, "coalescing: far fewer deltas than changes"
        metrics = engine.get("/metrics", key=ADMIN_KEY).text
        coalesced = [float(line.split()[-1]) for line in metrics.splitlines()
                     if line.startswith('avail_feed_deltas_coalesced_total{channel="web"}')]
        assert coalesced and coalesced[0] > 0, "numbers replaced while they waited are counted"
        throttled = [float(line.split()[-1]) for line in metrics.splitlines()
                     if line.startswith('avail_feed_deltas_throttled_total{channel="web"}')]
        assert throttled and throttled[0] > 0, "deltas the limits held back are counted"
        last_by_sku: dict[str, tuple[int, int]] = {}
        for seq, delta, t_us in entries:
            sku = str(delta["sku"])
            assert delta["available"] != delta["previous"], "no delta without a change"
            assert delta["seq"] == seq and delta["channel"] == "web"
            if sku in last_by_sku:
                assert t_us - last_by_sku[sku][1] >= MIN_INTERVAL_MS * 1000, f"{sku} released too soon"
                assert delta["previous"] == last_by_sku[sku][0], "previous is the value last published"
            last_by_sku[sku] = (int(delta["available"]), t_us)  # type: ignore[call-overload]
        final = live(engine, "web", skus)
        assert {sku: last_by_sku[sku][0] for sku in skus} == final

        stop_followers(follower, listener, until=entries[-1][0])
        assert {sku: follower.numbers.get(sku, 0) for sku in skus} == final, "snapshot + feed = current numbers"
        all_seqs = [seq for seq, _, _ in stream(engine, "web")]
        received = follower.seqs
        assert received == sorted(set(received)), "no delta twice, in order"
        assert received == [seq for seq in all_seqs if received[0] <= seq <= received[-1]], "no delta lost"
        assert follower.connections >= 3
        ours = {e[0] for e in entries}
        heard = [at for at, seq in zip(listener.received_at, listener.seqs, strict=True) if seq in ours]
        assert len(heard) == len(entries), "the connected listener heard every delta"
        at_client = max_in_any_window([int(at * 1e6) for at in heard])
        # Reported, not asserted: the guarantee is made at release (asserted above); a connected client sees
        # deltas bunched when the flow worker stalls between release and write (docs/feeds.md, "limits").
        print(f"follower: {follower.connections} connections; busiest 1 s window at a connected client: {at_client}")
    finally:
        stop_followers(follower, listener)


def test_seq_has_no_gaps_and_kafka_carries_the_same_deltas(engine: Engine) -> None:
    skus = [f"PHN-kafka-{engine.name}-{i:02d}" for i in range(40)]
    t = now_us() - HOUR
    engine.produce([Receipt(f"{sku}-1", sku, "dc-west", 10, t) for sku in skus])
    engine.produce([Sale(f"{sku}-2", sku, "dc-west", 2, t + 1) for sku in skus])
    # amazon (no publish limits): floor(10 x 80 %) - 2 = 6, then floor(8 x 80 %) - 2 = 4
    assert wait_for(lambda: live(engine, "amazon", skus), lambda numbers: set(numbers.values()) == {4})
    entries = wait_for(lambda: stream(engine, "amazon"),
                       lambda es: sum(1 for _, d, _ in es if d["sku"] in skus and d["available"] == 4) == len(skus))
    seqs = [seq for seq, _, _ in entries]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    ours = {(str(d["sku"]), d["available"]) for _, d, _ in entries if str(d["sku"]).startswith("PHN-kafka")}
    assert ours <= {(sku, 6) for sku in skus} | {(sku, 4) for sku in skus}
    assert {sku for sku, n in ours if n == 4} == set(skus)

    consumer = Consumer({"bootstrap.servers": engine.bootstrap, "group.id": f"deltas-{engine.name}",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 50})
    topic = f"{engine.name}.deltas.amazon"
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    received: dict[int, tuple[bytes, dict[str, object]]] = {}
    deadline = time.monotonic() + 20
    try:
        while len(received) < len(entries) and time.monotonic() < deadline:
            for message in consumer.consume(500, 0.2):
                if message.error() is None:
                    delta = orjson.loads(message.value())
                    received[int(delta["seq"])] = (message.key(), delta)
    finally:
        consumer.close()
    assert sorted(received) == seqs
    for seq, delta, _ in entries:
        key, sent = received[seq]
        assert sent == delta and key == str(delta["sku"]).encode()
