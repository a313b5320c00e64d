"""The delta feed over HTTP (contract §4, §5): SSE and the snapshot bootstrap, real uvicorn over real Redis.

The feed is written here exactly as the flow's Lua writes it (``dataflows/feed_sink.py``):
INCR the channel's seq, XADD ``<seq>-0`` with ``d`` (the delta JSON) and ``t``, HSET the
published value, all in one script.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import random
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest
import redis
from redis.cluster import RedisCluster

from dataflows.feed_sink import PUBLISH_SCRIPT, pack_deltas
from local_servers import LOOPBACK, start_redis
from projection import Keys
from projection.connect import SyncClient, sync_client
from tests.support.api import RunningApi, delete_prefix, serving_api, start_api, write_heartbeat

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def redis_url(any_redis_url: str) -> str:
    """This module runs on one Redis and again on a Redis Cluster."""
    return any_redis_url

PREFIX = f"feedtest-{uuid.uuid4().hex[:8]}"
KEYS = Keys(PREFIX)
READ_KEY = secrets.token_urlsafe(24)
AMAZON_KEY = secrets.token_urlsafe(24)
API_KEYS = {READ_KEY: ["read"], AMAZON_KEY: ["read:amazon"]}
CHANNELS = [
    "amazon", "beat", "boot", "gone", "live", "many", "quiet", "race", "racemem", "resume", "shut", "slow", "snap",
    "trim", "web",
]
RULES = {"version": "feedv1", "channels": {name: {"nodes": ["dc-east"]} for name in CHANNELS}}
AS_OF = '"2026-11-23T10:15:00.123Z"'

class Feed:
    """One channel's feed, written as the flow writes it."""

    def __init__(self, store: SyncClient, channel: str, keys: Keys = KEYS) -> None:
        self.store, self.channel, self.keys = store, channel, keys
        self.script = store.register_script(PUBLISH_SCRIPT)  # the flow's own publish script

    def publish(self, *changes: tuple[str, int]) -> list[int]:
        deltas = [(sku, available, AS_OF, RULES["version"], time.time_ns() // 1000) for sku, available in changes]
        args = [1_000_000, self.channel, 0, pack_deltas(deltas)]
        keys = [self.keys.feed(self.channel), self.keys.feed_seq(self.channel), self.keys.published(self.channel)]
        published = self.script(keys=keys, args=args)  # (sku, delta JSON) of each delta given a seq
        return [int(orjson.loads(published[i + 1])["seq"]) for i in range(0, len(published), 2)]

    def change(self, *changes: tuple[str, int]) -> list[int]:
        """As the flow does: the live number into the SKU's hash, then (throttled, here at once) the delta."""
        pipe = self.store.pipeline(transaction=False)
        for sku, available in changes:
            pipe.hset(self.keys.sku(sku), f"c:{self.channel}", available)
        pipe.execute()
        return self.publish(*changes)

    def live(self, skus: list[str]) -> dict[str, int]:
        return {sku: int(self.store.hget(self.keys.sku(sku), f"c:{self.channel}") or 0) for sku in skus}

    def seq(self) -> int:
        return int(self.store.get(self.keys.feed_seq(self.channel)) or 0)

    def published(self) -> dict[str, int]:
        return {sku: int(v) for sku, v in self.store.hgetall(self.keys.published(self.channel)).items()}


def fresh_heartbeat(store: SyncClient, keys: Keys = KEYS) -> None:
    write_heartbeat(store, keys)


@dataclass(frozen=True)
class Item:
    """One event (``id``, ``event``, ``data``) or one comment of a stream."""

    id: str | None = None
    event: str | None = None
    data: str | None = None
    comment: str | None = None


def sse_items(lines: Iterator[str]) -> Iterator[Item]:
    event: dict[str, str] = {}
    for line in lines:
        if line.startswith(":"):
            yield Item(comment=line[1:].strip())
        elif not line:
            if event:
                yield Item(event.get("id"), event.get("event"), event.get("data"))
            event = {}
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            event[name] = event[name] + "\n" + value if name == "data" and name in event else value


def deltas(items: Iterator[Item], count: int) -> list[Item]:
    got = []
    for item in items:
        if item.comment is None:
            got.append(item)
            if len(got) == count:
                break
    return got


@dataclass
class Stream:
    response: httpx.Response
    items: Iterator[Item]
    connected: str


@contextlib.contextmanager
def open_stream(
    api: RunningApi, channel: str, *, key: str = READ_KEY, after: str | None = None, last_event_id: str | None = None,
    timeout: float = 10,
) -> Iterator[Stream]:
    """A stream that answered 200 and sent its first comment."""
    headers = {"X-API-Key": key} | ({"Last-Event-ID": last_event_id} if last_event_id is not None else {})
    params = {"after": after} if after is not None else {}
    url = f"{api.base_url}/v1/channels/{channel}/deltas"
    with httpx.stream("GET", url, headers=headers, params=params, timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        items = sse_items(response.iter_lines())
        first = next(items)
        assert first.comment is not None
        yield Stream(response, items, first.comment)


def get_deltas(api: RunningApi, channel: str, key: str = READ_KEY, **params: str) -> httpx.Response:
    """A request expected to be refused before streaming (a 200 would hang; the timeout guards that)."""
    headers = {"X-API-Key": key}
    if "last_event_id" in params:
        headers["Last-Event-ID"] = params.pop("last_event_id")
    with httpx.stream("GET", f"{api.base_url}/v1/channels/{channel}/deltas", headers=headers, params=params,
                      timeout=5) as response:
        assert response.status_code != 200, f"{channel} {params} streamed"
        response.read()
        return response


def error_of(response: httpx.Response) -> dict[str, str | None]:
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "field"}
    return body["error"]


def metric(api: RunningApi, line_start: str) -> float | None:
    text = httpx.get(f"{api.base_url}/metrics", headers={"X-API-Key": READ_KEY}).text
    found = [line for line in text.splitlines() if line.startswith(line_start + " ")]
    return float(found[0].split()[-1]) if found else None


def nodes(store: SyncClient) -> list[redis.Redis]:
    """Each Redis holding the data: the one, or every cluster master."""
    if isinstance(store, RedisCluster):
        return [node.redis_connection for node in store.get_primaries()]  # type: ignore[misc]
    return [store]


def xread_connections(store: SyncClient) -> int:
    """Connections blocked in XREAD now: the feed readers running (idle pooled connections not counted)."""
    return sum(1 for node in nodes(store) for client in node.client_list()
               if client.get("cmd") == "xread" and "b" in client.get("flags", ""))


def xrange_calls(store: SyncClient) -> int:
    return sum(int(node.info("commandstats").get("cmdstat_xrange", {}).get("calls", 0)) for node in nodes(store))


def wait_until(condition: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def store(redis_url: str) -> Iterator[SyncClient]:
    client = sync_client(redis_url, decode_responses=True)
    client.set(KEYS.rules, orjson.dumps(RULES))
    fresh_heartbeat(client)
    yield client
    delete_prefix(client, PREFIX)
    client.close()


@pytest.fixture(scope="module")
def api(redis_url: str, store: SyncClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApi]:
    with serving_api(redis_url, PREFIX, API_KEYS, tmp_path_factory.mktemp("api-feed")) as running:
        yield running


@pytest.fixture(scope="module")
def tuned_api(redis_url: str, store: SyncClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApi]:
    """Heartbeats every 0.5 s and at most 200 deltas buffered per client."""
    tuning = {"AVAIL_SSE_HEARTBEAT_S": "0.5", "AVAIL_SSE_CLIENT_BUFFER": "200"}
    with serving_api(redis_url, PREFIX, API_KEYS, tmp_path_factory.mktemp("api-feed-tuned"), tuning) as running:
        yield running


class TestStream:
    def test_from_now_sends_each_new_delta_once_in_order_with_its_seq_as_id(
        self, api: RunningApi, store: SyncClient,
    ) -> None:
        feed = Feed(store, "live")
        feed.publish(("OLD-1", 1), ("OLD-2", 2))
        with open_stream(api, "live") as stream:
            assert stream.connected == "connected, from seq 2"
            assert stream.response.headers["content-type"].startswith("text/event-stream")
            assert stream.response.headers["cache-control"] == "no-cache"
            assert stream.response.headers["x-accel-buffering"] == "no"
            seqs = feed.publish(*[(f"LIVE-{i}", 10 + i) for i in range(5)])
            got = deltas(stream.items, 5)
        assert seqs == [3, 4, 5, 6, 7]
        assert [(item.id, item.event) for item in got] == [(str(s), "delta") for s in seqs]
        stored = {entry_id: fields["d"] for entry_id, fields in store.xrange(KEYS.feed("live"))}
        assert [item.data for item in got] == [stored[f"{s}-0"] for s in seqs]  # the stored JSON, as is
        first = orjson.loads(got[0].data or "")
        assert first == {"channel": "live", "sku": "LIVE-0", "available": 10, "previous": 0,
                         "as_of": "2026-11-23T10:15:00.123Z", "rules_version": "feedv1", "seq": 3}

    def test_raw_frames_are_id_event_data(self, api: RunningApi, store: SyncClient) -> None:
        feed = Feed(store, "web")
        feed.publish(("RAW-1", 5))
        url = f"{api.base_url}/v1/channels/web/deltas"
        with httpx.stream("GET", url, headers={"X-API-Key": READ_KEY}, params={"after": "0"}, timeout=5) as response:
            raw = b""
            for chunk in response.iter_bytes():
                raw += chunk
                if raw.count(b"\n\n") >= 2:
                    break
        d = store.xrange(KEYS.feed("web"), "1-0", "1-0")[0][1]["d"]
        assert raw == b": connected, from seq 0\n\nid: 1\nevent: delta\ndata: " + d.encode() + b"\n\n"

    @pytest.mark.parametrize("how", ["last_event_id", "after"])
    def test_resuming_sends_what_followed_then_new_deltas(
        self, api: RunningApi, store: SyncClient, how: str,
    ) -> None:
        channel = "resume"
        feed = Feed(store, channel)
        start = feed.seq()
        feed.publish(*[(f"RES-{how}-{i}", i + 1) for i in range(5)])
        position = {how: str(start + 2)}
        with open_stream(api, channel, **position) as stream:
            assert stream.connected == f"connected, from seq {start + 2}"
            assert [item.id for item in deltas(stream.items, 3)] == [str(start + s) for s in (3, 4, 5)]
            feed.publish((f"RES-{how}-new", 99), (f"RES-{how}-new2", 98))
            assert [item.id for item in deltas(stream.items, 2)] == [str(start + 6), str(start + 7)]

    def test_last_event_id_wins_over_after(self, api: RunningApi, store: SyncClient) -> None:
        feed = Feed(store, "resume")
        feed.publish(("WIN-1", 1), ("WIN-2", 2), ("WIN-3", 3))
        top = feed.seq()
        with open_stream(api, "resume", after="0", last_event_id=str(top - 1)) as stream:
            assert stream.connected == f"connected, from seq {top - 1}"
            assert [item.id for item in deltas(stream.items, 1)] == [str(top)]

    @pytest.mark.parametrize("reader_kept", [False, True], ids=["reader-restarts", "reader-kept-running"])
    def test_reconnecting_while_2000_deltas_are_written_loses_and_repeats_nothing(
        self, api: RunningApi, store: SyncClient, reader_kept: bool,
    ) -> None:
        # Alone, each reconnect starts a new reader and reads what it missed from Redis; with
        # another client keeping the reader running, reconnects are served from its memory.
        channel = "racemem" if reader_kept else "race"
        feed, total = Feed(store, channel), 2000
        writing_done = threading.Event()

        def write() -> None:
            for start in range(0, total, 20):
                feed.publish(*[(f"RACE-{n % 97}", n + 1) for n in range(start, start + 20)])
                time.sleep(0.004)
            writing_done.set()

        received: list[Item] = []
        reconnects_while_writing = 0
        chunks = iter([137, 251, 89, 313, 173, 59, 401] * 10)
        with contextlib.ExitStack() as keeper:
            if reader_kept:
                keeper.enter_context(open_stream(api, channel))
                assert wait_until(lambda: metric(api, f'avail_api_sse_clients{{channel="{channel}"}}') == 1.0)
            xranges = xrange_calls(store)
            writer = threading.Thread(target=write)
            writer.start()
            try:
                while len(received) < total:
                    position = {"last_event_id": received[-1].id} if received else {"after": "0"}
                    with open_stream(api, channel, **position) as stream:  # type: ignore[arg-type]
                        received += deltas(stream.items, min(next(chunks), total - len(received)))
                    reconnects_while_writing += not writing_done.is_set()
            finally:
                writer.join()
            xranges = xrange_calls(store) - xranges
        ids = [int(item.id or 0) for item in received]
        assert ids == list(range(1, total + 1))
        assert [orjson.loads(item.data or "")["seq"] for item in received] == ids
        assert reconnects_while_writing >= 3, "the writer finished too soon for the test to mean anything"
        gaps = metric(api, f'avail_api_sse_streams_ended_total{{channel="{channel}",reason="feed_gap"}}')
        assert gaps is None, f"{gaps} streams hit a gap between history and live deltas"
        assert (xranges == 0) == reader_kept, f"{xranges} XRANGE calls"
        print(f"2,000 deltas over {reconnects_while_writing} reconnects during the writes "
              f"({'reader kept' if reader_kept else 'reader restarted'}, {xranges} XRANGE): none lost or repeated")

    def test_a_channel_key_streams_only_its_channel(self, api: RunningApi) -> None:
        response = get_deltas(api, "web", key=AMAZON_KEY)
        assert (response.status_code, error_of(response)["code"]) == (403, "forbidden")
        assert "read:web" in str(error_of(response)["message"])
        with open_stream(api, "amazon", key=AMAZON_KEY) as stream:
            assert stream.connected.startswith("connected, from seq")
        no_key = httpx.get(f"{api.base_url}/v1/channels/web/deltas", timeout=5)
        assert (no_key.status_code, error_of(no_key)["code"]) == (401, "unauthorized")

    def test_unknown_channel_answers_422(self, api: RunningApi) -> None:
        response = get_deltas(api, "nosuch")
        assert (response.status_code, error_of(response)["code"], error_of(response)["field"]) == (
            422, "unknown_channel", "channel")

    def test_disconnected_clients_are_let_go_and_the_reader_stops(self, api: RunningApi, store: SyncClient) -> None:
        gauge = 'avail_api_sse_clients{channel="gone"}'
        with contextlib.ExitStack() as streams:
            for _ in range(3):
                streams.enter_context(open_stream(api, "gone"))
            assert wait_until(lambda: metric(api, gauge) == 3.0), metric(api, gauge)
            assert wait_until(lambda: xread_connections(store) == 1), "one reader for the channel"
        assert wait_until(lambda: metric(api, gauge) == 0.0), metric(api, gauge)
        assert wait_until(lambda: xread_connections(store) == 0, timeout=8), "the reader stops with its last client"
        assert metric(api, 'avail_api_sse_streams_ended_total{channel="gone",reason="client_gone"}') == 3.0


class TestPositions:
    @pytest.mark.parametrize(("params", "field"), [
        ({"after": "abc"}, "after"), ({"after": "-1"}, "after"), ({"after": "1.5"}, "after"), ({"after": ""}, "after"),
        ({"after": "9" * 20}, "after"), ({"last_event_id": "x"}, "Last-Event-ID"),
        ({"last_event_id": "1", "after": "x"}, "after"),
    ])
    def test_malformed_position_answers_422_naming_the_field(
        self, api: RunningApi, params: dict[str, str], field: str,
    ) -> None:
        response = get_deltas(api, "web", **params)
        assert response.status_code == 422
        assert (error_of(response)["code"], error_of(response)["field"]) == ("invalid_position", field)

    def test_a_position_not_given_out_yet_answers_422(self, api: RunningApi, store: SyncClient) -> None:
        top = Feed(store, "web").seq()
        response = get_deltas(api, "web", after=str(top + 1))
        assert (response.status_code, error_of(response)["code"]) == (422, "feed_position_ahead")
        assert f"at {top}" in str(error_of(response)["message"])
        with open_stream(api, "web", after=str(top)) as stream:
            assert stream.connected == f"connected, from seq {top}"

    def test_a_trimmed_position_answers_410_and_the_oldest_retained_still_streams(
        self, api: RunningApi, store: SyncClient,
    ) -> None:
        feed = Feed(store, "trim")
        feed.publish(*[(f"TRIM-{i}", i + 1) for i in range(150)])
        store.xtrim(KEYS.feed("trim"), minid="101-0", approximate=False)
        assert store.xrange(KEYS.feed("trim"), count=1)[0][0] == "101-0"
        for params in ({"after": "10"}, {"after": "99"}, {"last_event_id": "0"}):
            response = get_deltas(api, "trim", **params)
            assert response.status_code == 410, params
            error = error_of(response)
            assert error["code"] == "feed_position_trimmed"
            assert error["field"] == ("after" if "after" in params else "Last-Event-ID")
            assert "oldest retained is 101" in str(error["message"]) and "snapshot" in str(error["message"])
        with open_stream(api, "trim", after="100") as stream:
            assert [item.id for item in deltas(stream.items, 50)] == [str(s) for s in range(101, 151)]

    def test_an_emptied_stream_serves_only_from_its_seq(self, api: RunningApi, store: SyncClient) -> None:
        feed = Feed(store, "trim")
        top = feed.seq()
        store.xtrim(KEYS.feed("trim"), maxlen=0, approximate=False)
        response = get_deltas(api, "trim", after=str(top - 1))
        assert (response.status_code, error_of(response)["code"]) == (410, "feed_position_trimmed")
        assert f"oldest retained is {top + 1}" in str(error_of(response)["message"])
        with open_stream(api, "trim", after=str(top)) as stream:
            feed.publish(("TRIM-after-empty", 1))
            assert [item.id for item in deltas(stream.items, 1)] == [str(top + 1)]


class TestTunedStreams:
    def test_an_idle_stream_gets_keepalive_comments(self, tuned_api: RunningApi) -> None:
        with open_stream(tuned_api, "beat") as stream:
            started = time.monotonic()
            first = next(stream.items)
            second = next(stream.items)
            took = time.monotonic() - started
        assert first.comment == "keepalive" and second.comment == "keepalive"
        assert 0.8 < took < 3, took

    def test_a_client_too_far_behind_is_ended_and_resumes_with_last_event_id(
        self, tuned_api: RunningApi, store: SyncClient,
    ) -> None:
        feed, total = Feed(store, "slow"), 60_000
        sku = "S" * 60
        with open_stream(tuned_api, "slow") as stream:
            for start in range(0, total, 1000):  # ~15 MB of events the client does not read yet
                feed.publish(*[(f"{sku}{n % 4}", n + 1) for n in range(start, start + 1000)])
            time.sleep(1.0)
            got: list[Item] = []
            last_words = None
            for item in stream.items:
                if item.comment is not None and item.comment != "keepalive":
                    last_words = item.comment
                elif item.comment is None:
                    got.append(item)
        assert last_words is not None and "too far behind" in last_words
        assert [int(item.id or 0) for item in got] == list(range(1, len(got) + 1))
        assert len(got) < total
        with open_stream(tuned_api, "slow", last_event_id=got[-1].id) as stream:
            rest = deltas(stream.items, total - len(got))
        assert [int(item.id or 0) for item in rest] == list(range(len(got) + 1, total + 1))
        ended = metric(tuned_api, 'avail_api_sse_streams_ended_total{channel="slow",reason="slow_client"}')
        assert ended == 1.0
        print(f"slow client ended after {len(got)} of {total} deltas; resumed with the rest")


class TestManyClients:
    def test_streams_joining_a_feed_with_no_delta_yet_all_get_its_first_one(
        self, api: RunningApi, store: SyncClient,
    ) -> None:
        """A new feed has a seq (its origin) but no entry: later streams join the running reader from that seq."""
        origin = 1_700_000_000_000_000
        store.set(KEYS.feed_seq("quiet"), origin, nx=True)  # as the flow starts a channel's feed

        async def main() -> list[tuple[str, str]]:
            async with httpx.AsyncClient(base_url=api.base_url, headers={"X-API-Key": READ_KEY}, timeout=10) as client:

                async def one(connected: asyncio.Event) -> tuple[str, str]:
                    async with client.stream("GET", "/v1/channels/quiet/deltas") as response:
                        lines = response.aiter_lines()
                        greeting = await anext(lines)
                        connected.set()
                        async for line in lines:
                            if line.startswith("id: ") or line.startswith(": the next delta"):
                                return greeting, line
                    raise AssertionError("stream ended early")

                tasks = []
                for _ in range(3):  # one after the other: the first starts the reader, the others join it
                    connected = asyncio.Event()
                    tasks.append(asyncio.create_task(one(connected)))
                    await asyncio.wait_for(connected.wait(), 5)
                await asyncio.to_thread(Feed(store, "quiet").publish, ("QUIET-1", 3))
                return await asyncio.wait_for(asyncio.gather(*tasks), 10)

        answers = asyncio.run(main())
        assert answers == [(f": connected, from seq {origin}", f"id: {origin + 1}")] * 3

    def test_one_process_fans_out_to_300_streams(self, api: RunningApi, store: SyncClient) -> None:
        clients, count = 300, 5
        feed = Feed(store, "many")
        start = feed.seq()

        async def main() -> tuple[float, float, list[list[str]]]:
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
            connected = 0
            all_connected = asyncio.Event()
            async with httpx.AsyncClient(base_url=api.base_url, headers={"X-API-Key": READ_KEY},
                                         timeout=20, limits=limits) as client:

                async def one() -> tuple[list[str], float]:
                    nonlocal connected
                    async with client.stream("GET", "/v1/channels/many/deltas") as response:
                        assert response.status_code == 200
                        ids: list[str] = []
                        lines = response.aiter_lines()
                        assert (await anext(lines)).startswith(": connected")
                        connected += 1
                        if connected == clients:
                            all_connected.set()
                        async for line in lines:
                            if line.startswith("id: "):
                                ids.append(line[4:])
                                if len(ids) == count:
                                    return ids, time.perf_counter()
                    raise AssertionError("stream ended early")

                began = time.perf_counter()
                tasks = [asyncio.create_task(one()) for _ in range(clients)]
                await asyncio.wait_for(all_connected.wait(), 15)
                connect_s = time.perf_counter() - began
                gauge = await client.get("/metrics")
                assert f'avail_api_sse_clients{{channel="many"}} {float(clients)}' in gauge.text
                one_reader = await asyncio.to_thread(wait_until, lambda: xread_connections(store) == 1)
                assert one_reader, f"{xread_connections(store)} XREAD connections: one reader, not one per client"
                published = time.perf_counter()
                await asyncio.to_thread(feed.publish, *[(f"MANY-{i}", i + 1) for i in range(count)])
                results = await asyncio.wait_for(asyncio.gather(*tasks), 15)
                fan_out_s = max(at for _, at in results) - published
                return connect_s, fan_out_s, [ids for ids, _ in results]

        connect_s, fan_out_s, received = asyncio.run(main())
        want = [str(start + i) for i in range(1, count + 1)]
        assert all(ids == want for ids in received)
        print(f"{clients} SSE clients on one API process: connected in {connect_s:.2f} s; "
              f"{count} deltas reached all of them {fan_out_s * 1000:.0f} ms after the write")
        assert fan_out_s < 5
        assert wait_until(lambda: metric(api, 'avail_api_sse_clients{channel="many"}') == 0.0)


class TestSnapshotBootstrap:
    def test_delta_cursor_is_the_feed_seq_of_the_first_page_on_every_page(
        self, api: RunningApi, store: SyncClient,
    ) -> None:
        feed = Feed(store, "snap")
        skus = [f"SNAPF-{i:02d}" for i in range(30)]
        store.zadd(KEYS.skus, dict.fromkeys(skus, 0))
        feed.change(*[(sku, i + 1) for i, sku in enumerate(skus)])
        store.hset(KEYS.sku("SNAPF-05"), "c:snap", 777)  # live, its delta still in the throttle: shown
        http = httpx.Client(base_url=api.base_url, headers={"X-API-Key": READ_KEY}, timeout=5)
        s0 = feed.seq()
        first = http.get("/v1/channels/snap/snapshot", params={"limit": 10}).json()
        assert first["delta_cursor"] == str(s0)
        feed.change(("SNAPF-29", 1000))  # the feed moves on while paging
        cursor, values, cursors = first["next_cursor"], {i["sku"]: i["available"] for i in first["items"]}, []
        while cursor is not None:
            page = http.get("/v1/channels/snap/snapshot", params={"limit": 10, "cursor": cursor}).json()
            cursors.append(page["delta_cursor"])
            values |= {item["sku"]: item["available"] for item in page["items"]}
            cursor = page["next_cursor"]
        assert cursors and set(cursors) == {str(s0)}
        assert {sku: values[sku] for sku in skus} == feed.live(skus)
        assert values["SNAPF-05"] == 777 and values["SNAPF-29"] == 1000
        again = http.get("/v1/channels/snap/snapshot", params={"limit": 10}).json()
        assert again["delta_cursor"] == str(s0 + 1)
        old_format = base64.urlsafe_b64encode(b"SNAPF-09").rstrip(b"=").decode()
        refused = http.get("/v1/channels/snap/snapshot", params={"cursor": old_format})
        assert (refused.status_code, error_of(refused)["code"]) == (422, "invalid_cursor")
        http.close()

    def test_snapshot_plus_the_feed_from_its_cursor_ends_at_the_current_numbers(
        self, api: RunningApi, store: SyncClient,
    ) -> None:
        feed, rng = Feed(store, "boot"), random.Random(6)
        skus = [f"BOOT-{i:04d}" for i in range(1000)]
        store.zadd(KEYS.skus, dict.fromkeys(skus, 0))
        feed.change(*[(sku, rng.randint(0, 50)) for sku in skus[::2]])

        paged = threading.Event()

        def write() -> None:
            # Mostly while the snapshot is paged, and little after: a delta the client misses
            # is rarely corrected by a later one, so a gap shows in the final numbers.
            after_paging = 5
            while after_paging:
                feed.change(*[(rng.choice(skus), rng.randint(0, 50)) for _ in range(20)])
                time.sleep(0.01)
                after_paging -= paged.is_set()
            feed.publish(("BOOT-LAST", 1))  # not a paged SKU: tells the reader the writes are over

        http = httpx.Client(base_url=api.base_url, headers={"X-API-Key": READ_KEY}, timeout=5)
        writer = threading.Thread(target=write)
        writer.start()
        try:
            time.sleep(0.05)
            seen: dict[str, int] = {}
            cursor: str | None = None
            delta_cursor: str | None = None
            while True:
                params: dict[str, str | int] = {"limit": 100} | ({"cursor": cursor} if cursor else {})
                page = http.get("/v1/channels/boot/snapshot", params=params).json()
                delta_cursor = delta_cursor or page["delta_cursor"]
                assert page["delta_cursor"] == delta_cursor
                seen |= {item["sku"]: item["available"] for item in page["items"] if item["sku"] in skus}
                cursor = page["next_cursor"]
                if cursor is None:
                    break
                time.sleep(0.03)
            paged.set()
            moved_while_paging = feed.seq() - int(delta_cursor or 0)
            with open_stream(api, "boot", after=delta_cursor) as stream:
                last = int(delta_cursor or 0)
                for item in stream.items:
                    if item.comment is None:
                        delta = orjson.loads(item.data or "")
                        assert int(item.id or 0) == last + 1 == delta["seq"]
                        if delta["sku"] == "BOOT-LAST":
                            break
                        seen[delta["sku"]] = delta["available"]
                        last += 1
        finally:
            paged.set()
            writer.join()
            http.close()
        assert moved_while_paging > 100, "the writer must publish while the snapshot is paged"
        assert seen == feed.live(skus) == {sku: feed.published().get(sku, 0) for sku in skus}
        print(f"bootstrap of {len(skus)} SKUs with {moved_while_paging} deltas published while paging: exact")


def test_redis_down_ends_streams_and_refuses_new_ones_with_503(tmp_path: Path) -> None:
    server = start_redis()
    url = f"redis://{LOOPBACK}:{server.port}/0"
    running: RunningApi | None = None
    try:
        seed = sync_client(url, decode_responses=True)
        seed.set(KEYS.rules, orjson.dumps(RULES))
        Feed(seed, "web").publish(("DOWN-1", 1))
        seed.close()
        running = start_api(url, PREFIX, API_KEYS, log_dir=tmp_path)
        with open_stream(running, "web", after="0") as stream:
            assert deltas(stream.items, 1)[0].id == "1"
            server.stop()
            stopped = time.monotonic()
            rest = list(stream.items)
            took = time.monotonic() - stopped
        assert rest and rest[-1].comment is not None and "Redis" in rest[-1].comment
        assert took < 5, took
        response = get_deltas(running, "web")
        assert (response.status_code, error_of(response)["code"]) == (503, "redis_unavailable")
    finally:
        if running is not None:
            running.stop()
        server.stop()
    assert "Traceback" not in running.log(), running.log()


def test_shutdown_ends_open_streams_so_the_server_can_stop(
    redis_url: str, store: SyncClient, tmp_path: Path,
) -> None:
    running = start_api(redis_url, PREFIX, API_KEYS, log_dir=tmp_path)
    try:
        with open_stream(running, "shut") as stream:
            stopping = threading.Thread(target=running.stop, kwargs={"timeout": 10})
            began = time.monotonic()
            stopping.start()
            rest = list(stream.items)
            stopping.join()
            took = time.monotonic() - began
    finally:
        running.stop()
    assert rest and rest[-1].comment is not None and "shutting down" in rest[-1].comment
    assert took < 3, f"stopping took {took:.1f} s"
    assert "Traceback" not in running.log(), running.log()
