"""The hub and one client's stream over an in-memory stream: ordering, gaps, overflow, failures."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest
from redis import exceptions as redis_errors

from availability_api.delta_stream import follow, take_fresh
from availability_api.errors import PositionAhead, PositionTrimmed
from availability_api.feed import Delta, FeedEnded, FeedHub, Subscription, parse_entries
from availability_api.metrics import ApiMetrics
from availability_api.sse import KEEPALIVE, Position
from projection import Keys

KEYS = Keys("unit")
CHANNEL = "web"


def _seq(entry_id: str) -> int:
    return int(entry_id.partition("-")[0])


class FakeStreams:
    """The few stream commands the hub uses, over one in-memory stream per key; XREAD blocks for real."""

    def __init__(self) -> None:
        self.entries: dict[str, list[tuple[str, dict[str, str]]]] = {}
        self.appended = asyncio.Condition()
        self.down = False
        self.xreads = 0
        self.reads = 0
        """Commands other than XREAD: what a stream's start costs Redis."""
        self.top = 0

    def _check(self) -> None:
        if self.down:
            raise redis_errors.ConnectionError("Connection refused (fake)")

    def pipeline(self, transaction: bool = True) -> FakePipeline:
        return FakePipeline(self)

    async def get(self, key: str) -> str | None:
        """The feed's seq counter (the fake has one channel): the highest seq ever appended."""
        self._check()
        self.reads += 1
        return str(self.top) if self.top else None

    async def append(self, key: str, seq: int) -> None:
        self.top = max(self.top, seq)
        delta = {"channel": CHANNEL, "sku": f"S{seq % 7}", "available": seq, "previous": seq - 1, "seq": seq}
        self.entries.setdefault(key, []).append((f"{seq}-0", {"d": orjson.dumps(delta).decode(), "t": "1"}))
        async with self.appended:
            self.appended.notify_all()

    async def fail(self) -> None:
        self.down = True
        async with self.appended:
            self.appended.notify_all()

    async def xrange(self, key: str, min: str = "-", max: str = "+", count: int | None = None) -> list[Any]:
        self._check()
        self.reads += 1
        await asyncio.sleep(0)
        low = 0 if min == "-" else _seq(min)
        high = 2**63 if max == "+" else _seq(max)
        found = [e for e in self.entries.get(key, []) if low <= _seq(e[0]) <= high]
        return found[:count] if count is not None else found

    async def xrevrange(self, key: str, max: str = "+", min: str = "-", count: int | None = None) -> list[Any]:
        self._check()
        self.reads += 1
        await asyncio.sleep(0)
        return list(reversed(self.entries.get(key, [])))[:count]

    async def xread(self, streams: dict[str, str], count: int | None = None, block: int | None = None) -> list[Any]:
        ((key, after_id),) = streams.items()
        self.xreads += 1

        def newer() -> list[Any]:
            return [e for e in self.entries.get(key, []) if _seq(e[0]) > _seq(after_id)][:count]

        async with self.appended:
            try:
                await asyncio.wait_for(self.appended.wait_for(lambda: self.down or bool(newer())), (block or 0) / 1000)
            except TimeoutError:
                return []
        self._check()
        return [[key, newer()]]


class FakePipeline:
    def __init__(self, fake: FakeStreams) -> None:
        self.fake, self.calls = fake, []  # type: ignore[var-annotated]

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: self.calls.append((name, args, kwargs))

    async def execute(self) -> list[Any]:
        return [await getattr(self.fake, name)(*args, **kwargs) for name, args, kwargs in self.calls]


def hub_over(fake: FakeStreams, client_buffer: int = 10_000) -> FeedHub:
    return FeedHub(fake, fake, KEYS, client_buffer=client_buffer, read_block_ms=200)  # type: ignore[arg-type]


async def never_disconnected() -> bool:
    return False


def stream(
    hub: FeedHub, after: int, heartbeat_s: float = 5.0, metrics: ApiMetrics | None = None,
    is_disconnected: Callable[[], Awaitable[bool]] = never_disconnected,
) -> AsyncIterator[bytes]:
    return follow(hub, CHANNEL, after, heartbeat_s=heartbeat_s, is_disconnected=is_disconnected,
                  metrics=metrics or ApiMetrics())


def ids_in(chunk: bytes) -> list[int]:
    return [int(line[4:]) for line in chunk.decode().split("\n") if line.startswith("id: ")]


async def read_until(body: AsyncIterator[bytes], last: int) -> tuple[list[int], list[bytes]]:
    ids: list[int] = []
    comments: list[bytes] = []
    async for chunk in body:
        if chunk.startswith(b":"):
            comments.append(chunk)
        ids += ids_in(chunk)
        if ids and ids[-1] >= last:
            break
    return ids, comments


def delta(seq: int) -> Delta:
    return Delta(seq, f"id: {seq}\n\n".encode())


class TestTakeFresh:
    def test_skips_what_was_sent_and_keeps_order(self) -> None:
        fresh, gap = take_fresh([delta(s) for s in (3, 4, 5, 6)], last=4)
        assert [d.seq for d in fresh] == [5, 6] and gap is False

    def test_stops_at_a_gap(self) -> None:
        fresh, gap = take_fresh([delta(s) for s in (5, 6, 8, 9)], last=4)
        assert [d.seq for d in fresh] == [5, 6] and gap is True

    def test_a_batch_starting_after_a_gap(self) -> None:
        assert take_fresh([delta(7)], last=4) == ([], True)


class TestParseEntries:
    def test_builds_each_frame_once_from_the_stored_json(self) -> None:
        (parsed,) = parse_entries([("12-0", {"d": '{"seq":12}', "t": "1"})])
        assert parsed == Delta(12, b'id: 12\nevent: delta\ndata: {"seq":12}\n\n')

    def test_an_entry_without_data_keeps_its_seq_and_sends_nothing(self) -> None:
        assert parse_entries([("3-0", {"t": "1"})]) == [Delta(3, b"")]


class TestSubscription:
    def test_gives_every_queued_delta_at_once(self) -> None:
        async def main() -> None:
            sub = Subscription(reader=None, limit=10)  # type: ignore[arg-type]
            sub.offer([delta(1), delta(2)])
            sub.offer([delta(3)])
            assert [d.seq for d in await sub.next(1.0) or []] == [1, 2, 3]
            assert await sub.next(0.01) is None

        asyncio.run(main())

    def test_overflow_ends_it_and_drops_what_was_queued(self) -> None:
        async def main() -> None:
            sub = Subscription(reader=None, limit=3)  # type: ignore[arg-type]
            sub.offer([delta(1), delta(2)])
            sub.offer([delta(3), delta(4)])
            assert sub.ended == "slow_client"
            with pytest.raises(FeedEnded) as ended:
                await sub.next(1.0)
            assert ended.value.reason == "slow_client"

        asyncio.run(main())


class TestFollow:
    def test_catches_up_from_history_then_streams_live_with_no_gap_or_repeat(self) -> None:
        async def main() -> None:
            fake, rng = FakeStreams(), random.Random(3)
            key = KEYS.feed(CHANNEL)
            for seq in range(1, 301):
                await fake.append(key, seq)
            hub = hub_over(fake)

            async def write() -> None:
                for seq in range(301, 1501):
                    await fake.append(key, seq)
                    if rng.random() < 0.2:
                        await asyncio.sleep(0)

            async def client(after: int, delay: int) -> list[int]:
                for _ in range(delay):
                    await asyncio.sleep(0)
                ids, _ = await read_until(stream(hub, after), 1500)
                return ids

            starts = [(0, 0), (150, 3), (299, 10), (300, 40), (1000, 200), (0, 400)]
            writer = asyncio.create_task(write())
            results = await asyncio.gather(*[client(after, delay) for after, delay in starts])
            await writer
            for (after, _), ids in zip(starts, results, strict=True):
                assert ids == list(range(after + 1, 1501)), after
            await asyncio.sleep(0)
            assert hub.readers() == []  # every client left: the reader stopped
            await hub.close()

        asyncio.run(main())

    def test_one_reader_serves_every_client_of_a_channel(self) -> None:
        async def main() -> None:
            fake = FakeStreams()
            hub = hub_over(fake)
            bodies = [stream(hub, 0) for _ in range(50)]
            for body in bodies:
                assert (await anext(body)).startswith(b": connected, from seq 0")
            pending = [asyncio.ensure_future(anext(body)) for body in bodies]
            await asyncio.sleep(0.01)
            assert hub.readers() == [CHANNEL]
            before = fake.xreads
            await fake.append(KEYS.feed(CHANNEL), 1)
            chunks = await asyncio.gather(*pending)
            assert all(ids_in(chunk) == [1] for chunk in chunks)
            assert fake.xreads - before <= 2  # one reader's read (and its next), not one per client
            for body in bodies:
                await body.aclose()  # type: ignore[attr-defined]
            assert hub.readers() == []
            await hub.close()

        asyncio.run(main())

    def test_an_idle_stream_sends_keepalives_and_stops_once_the_client_is_gone(self) -> None:
        async def main() -> None:
            hub, gone = hub_over(FakeStreams()), False
            metrics = ApiMetrics()

            async def is_disconnected() -> bool:
                return gone

            body = stream(hub, 0, heartbeat_s=0.02, metrics=metrics, is_disconnected=is_disconnected)
            assert await anext(body) == b": connected, from seq 0\n\n"
            assert await anext(body) == KEEPALIVE
            assert metrics.sse_clients.labels(CHANNEL)._value.get() == 1
            gone = True
            with pytest.raises(StopAsyncIteration):
                await anext(body)
            assert hub.readers() == []
            assert metrics.sse_clients.labels(CHANNEL)._value.get() == 0
            assert metrics.streams_ended.labels(CHANNEL, "client_gone")._value.get() == 1
            await hub.close()

        asyncio.run(main())

    def test_a_client_too_far_behind_is_ended_with_a_comment(self) -> None:
        async def main() -> None:
            fake, metrics = FakeStreams(), ApiMetrics()
            hub = hub_over(fake, client_buffer=5)
            body = stream(hub, 0, metrics=metrics)
            await anext(body)
            first = asyncio.ensure_future(anext(body))
            await asyncio.sleep(0.01)
            await fake.append(KEYS.feed(CHANNEL), 1)
            assert ids_in(await first) == [1]
            for seq in range(2, 30):  # the client reads nothing meanwhile
                await fake.append(KEYS.feed(CHANNEL), seq)
                await asyncio.sleep(0)
            rest = [chunk async for chunk in body]
            assert rest[-1].startswith(b": too far behind") and b"Last-Event-ID" in rest[-1]
            assert metrics.streams_ended.labels(CHANNEL, "slow_client")._value.get() == 1
            assert hub.readers() == []
            await hub.close()

        asyncio.run(main())

    def test_a_gap_in_the_history_ends_the_stream_after_what_precedes_it(self) -> None:
        async def main() -> None:
            fake = FakeStreams()
            key = KEYS.feed(CHANNEL)
            for seq in (1, 2, 3, 5, 6):
                await fake.append(key, seq)
            chunks = [chunk async for chunk in stream(hub_over(fake), 0)]
            assert [i for chunk in chunks for i in ids_in(chunk)] == [1, 2, 3]
            assert chunks[-1].startswith(b": the next delta is no longer retained")

        asyncio.run(main())

    def test_redis_failing_ends_every_stream_of_the_channel(self) -> None:
        async def main() -> None:
            fake, metrics = FakeStreams(), ApiMetrics()
            hub = hub_over(fake)
            bodies = [stream(hub, 0, metrics=metrics) for _ in range(3)]
            for body in bodies:
                await anext(body)
            pending = [asyncio.ensure_future(anext(body)) for body in bodies]
            await asyncio.sleep(0.01)
            await fake.fail()
            for chunk in await asyncio.gather(*pending):
                assert b"Redis" in chunk and b"Last-Event-ID" in chunk
            for body in bodies:
                with pytest.raises(StopAsyncIteration):
                    await anext(body)
            assert metrics.streams_ended.labels(CHANNEL, "redis_unavailable")._value.get() == 3
            assert hub.readers() == []
            fake.down = False  # a new client starts a new reader
            body = stream(hub, 0)
            await anext(body)
            nxt = asyncio.ensure_future(anext(body))
            await asyncio.sleep(0.01)
            await fake.append(KEYS.feed(CHANNEL), 1)
            assert ids_in(await nxt) == [1]
            await body.aclose()  # type: ignore[attr-defined]
            await hub.close()

        asyncio.run(main())

    def test_shutdown_ends_open_streams(self) -> None:
        async def main() -> None:
            hub = hub_over(FakeStreams())
            body = stream(hub, 0)
            await anext(body)
            nxt = asyncio.ensure_future(anext(body))
            await asyncio.sleep(0.01)
            hub.end_all("shutdown")
            assert (await nxt).startswith(b": the server is shutting down")
            with pytest.raises(StopAsyncIteration):
                await anext(body)
            await hub.close()

        asyncio.run(main())


class TestMemory:
    def test_a_reconnecting_client_is_served_from_memory_without_reading_redis(self) -> None:
        async def main() -> None:
            fake = FakeStreams()
            key = KEYS.feed(CHANNEL)
            hub = hub_over(fake)
            keeper = stream(hub, 0)  # keeps the reader running
            await anext(keeper)
            nxt = asyncio.ensure_future(anext(keeper))
            await asyncio.sleep(0.01)
            for seq in range(1, 101):
                await fake.append(key, seq)
            await nxt
            await asyncio.sleep(0.01)
            reads = fake.reads
            for position in (0, 37, 99, 100, None):
                start = await hub.start_after(CHANNEL, Position(position, "after") if position is not None else None)
                assert start == (position if position is not None else 100)
                body = stream(hub, start)
                assert await anext(body) == f": connected, from seq {start}\n\n".encode()
                if start < 100:
                    ids, _ = await read_until(body, 100)
                    assert ids == list(range(start + 1, 101))
                await body.aclose()  # type: ignore[attr-defined]
            assert fake.reads == reads, "positions held in memory cost no Redis read"
            await keeper.aclose()  # type: ignore[attr-defined]
            await hub.close()

        asyncio.run(main())

    def test_a_position_older_than_memory_is_checked_and_read_in_redis(self) -> None:
        async def main() -> None:
            fake = FakeStreams()
            key = KEYS.feed(CHANNEL)
            for seq in range(1, 11):
                await fake.append(key, seq)
            fake.entries[key] = fake.entries[key][4:]  # 1..4 trimmed
            hub = hub_over(fake)
            keeper = stream(hub, 10)
            await anext(keeper)
            nxt = asyncio.ensure_future(anext(keeper))
            await asyncio.sleep(0.01)
            assert hub.readers() == [CHANNEL]
            assert await hub.start_after(CHANNEL, Position(4, "after")) == 4  # memory holds none: Redis says
            ids, _ = await read_until(stream(hub, 4), 10)
            assert ids == [5, 6, 7, 8, 9, 10]
            with pytest.raises(PositionTrimmed):
                await hub.start_after(CHANNEL, Position(3, "after"))
            with pytest.raises(PositionAhead):
                await hub.start_after(CHANNEL, Position(11, "after"))
            nxt.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await nxt
            await keeper.aclose()  # type: ignore[attr-defined]
            await hub.close()

        asyncio.run(main())

    def test_streams_starting_together_share_one_read_of_the_bounds(self) -> None:
        async def main() -> None:
            fake = FakeStreams()
            for seq in range(1, 6):
                await fake.append(KEYS.feed(CHANNEL), seq)
            hub = hub_over(fake)
            starts = await asyncio.gather(*[hub.start_after(CHANNEL, Position(2, "after")) for _ in range(50)])
            assert starts == [2] * 50
            assert fake.reads == 2  # one GET and one XRANGE, for all fifty
            await hub.close()

        asyncio.run(main())
