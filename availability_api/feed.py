"""Each channel's delta feed, fanned out to the SSE clients of this process (contract §5).

One ``FeedHub`` per process. The first subscriber of a channel starts one reader task
for it: one Redis connection doing ``XREAD BLOCK`` on the channel's stream from the
entry that was newest when it started, handing each batch it reads to every
subscriber's queue. The reader stops when the last subscriber leaves, and on a Redis
error, which ends every stream of the channel (clients resume with ``Last-Event-ID``).

A stream (``delta_stream.follow``) subscribes first: from then on its queue receives
every entry after ``live_after``, the last seq the reader had handed out. It then sends
the backlog between its position and ``live_after``, from the reader's memory of the
last ``RECENT_DELTAS`` deltas when that covers it (a reconnecting client costs Redis
nothing) or else read with ``XRANGE`` in pages, and then its queue, skipping seqs
already sent. So nothing is missed and nothing is sent twice. A subscriber whose queue
would hold more than ``client_buffer`` deltas is ended; it resumes from what it got.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field

from redis import exceptions as redis_errors

from availability_api import queries, sse
from availability_api.errors import PositionAhead
from availability_api.types import RedisClient
from projection import Keys

log = logging.getLogger(__name__)

READ_BLOCK_MS = 2000
"""How long one XREAD waits for new entries; the reader's socket timeout must exceed it."""
READ_COUNT = 1000
HISTORY_PAGE = 1000
RECENT_DELTAS = 4096
"""Deltas each reader keeps in memory, so resuming clients need no Redis read."""

CLIENT_GONE = "client_gone"
SLOW_CLIENT = "slow_client"
REDIS_UNAVAILABLE = "redis_unavailable"
FEED_GAP = "feed_gap"
SHUTDOWN = "shutdown"
INTERNAL_ERROR = "internal_error"


@dataclass(frozen=True, slots=True)
class Delta:
    seq: int
    frame: bytes
    """The SSE event, built once and sent to every subscriber."""


def parse_entries(entries: Sequence[queries.FeedEntry]) -> list[Delta]:
    deltas = []
    for entry_id, fields in entries:
        seq = queries.entry_seq(entry_id)
        data = fields.get("d")
        if data is None:  # nothing to send, but its seq counts: no gap follows
            log.error("feed entry %s has no 'd' field; skipped", entry_id)
        deltas.append(Delta(seq, sse.delta_frame(seq, data) if data is not None else b""))
    return deltas


class FeedEnded(Exception):
    """The hub ended a subscription; ``reason`` is one of the module's reason constants."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_END: list[Delta] = []  # queued when a subscription ends, to wake its stream


@dataclass(eq=False)
class Subscription:
    """One stream's queue of live deltas, bounded by the number of deltas it holds."""

    reader: _Reader
    limit: int
    ended: str | None = None
    live_after: int = 0
    """The queue receives every delta after this seq (set before ``FeedHub.subscribe`` returns)."""
    backlog: list[Delta] | None = None
    """The deltas between the stream's position and ``live_after`` from the reader's memory; None: read Redis."""
    _queue: asyncio.Queue[list[Delta]] = field(default_factory=asyncio.Queue)
    _pending: int = 0

    def offer(self, batch: list[Delta]) -> None:
        """Called by the reader for each batch; ends the subscription when the queue would overflow."""
        if self.ended is not None:
            return
        if self._pending + len(batch) > self.limit:
            self.end(SLOW_CLIENT)
            return
        self._pending += len(batch)
        self._queue.put_nowait(batch)

    def end(self, reason: str) -> None:
        if self.ended is None:
            self.ended = reason
            self._queue.put_nowait(_END)

    async def next(self, timeout: float) -> list[Delta] | None:
        """Every delta queued, waiting up to ``timeout`` for one; None when none came.

        Raises:
            FeedEnded: the hub ended this subscription (what is still queued is dropped).
        """
        if self.ended is None and self._queue.empty():
            try:
                async with asyncio.timeout(timeout):
                    first = await self._queue.get()
            except TimeoutError:
                return None
            batches = [first]
        else:
            batches = []
        while not self._queue.empty():
            batches.append(self._queue.get_nowait())
        if self.ended is not None:
            raise FeedEnded(self.ended)
        self._pending = 0
        return [delta for batch in batches for delta in batch]


@dataclass(eq=False)
class _Reader:
    channel: str
    subscribers: set[Subscription] = field(default_factory=set)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    stopped: bool = False
    task: asyncio.Task[None] | None = None
    last_seq: int | None = None
    """The last seq handed to subscribers (at start: the newest in the stream); None until started."""
    recent: deque[Delta] = field(default_factory=lambda: deque(maxlen=RECENT_DELTAS))

    def backlog(self, after: int, until: int) -> list[Delta] | None:
        """The deltas after ``after`` up to ``until`` from memory; None unless memory holds every one."""
        if after >= until:
            return []
        if not self.recent:
            return None
        skip = after + 1 - self.recent[0].seq
        if skip < 0:
            return None
        found = list(itertools.islice(self.recent, skip, skip + until - after))
        if not found or found[0].seq != after + 1 or found[-1].seq != until or len(found) != until - after:
            return None  # not contiguous in memory (an entry without data, or a gap): let Redis say
        return found


class FeedHub:
    """The readers of this process, one per channel with subscribers.

    ``redis`` serves short reads (the reader's start, the history); ``blocking_redis``
    serves ``XREAD BLOCK`` and needs a socket timeout above ``read_block_ms``.
    """

    def __init__(
        self, redis: RedisClient, blocking_redis: RedisClient, keys: Keys, *,
        client_buffer: int, read_block_ms: int = READ_BLOCK_MS,
    ) -> None:
        self._redis = redis
        self._blocking_redis = blocking_redis
        self._keys = keys
        self._client_buffer = client_buffer
        self._read_block_ms = read_block_ms
        self._read_count = min(READ_COUNT, client_buffer)  # one batch never overflows a client keeping up
        self._readers: dict[str, _Reader] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._bounds_reads: dict[str, asyncio.Future[sse.FeedBounds]] = {}

    def readers(self) -> list[str]:
        """The channels being read now."""
        return sorted(self._readers)

    async def start_after(self, channel: str, position: sse.Position | None) -> int:
        """The seq a new stream starts after (``sse.start_after``), checked against what the feed holds.

        Answered from the reader's memory when this process reads the channel already and
        the position is one it holds (a reconnect storm costs Redis nothing), else from Redis.
        """
        reader = self._readers.get(channel)
        if reader is not None and reader.last_seq is not None:
            first = reader.recent[0].seq if reader.recent else reader.last_seq + 1
            if position is None:
                return reader.last_seq
            if first - 1 <= position.seq <= reader.last_seq:
                return position.seq
        try:
            return sse.start_after(position, await self._shared_bounds(channel), channel)
        except PositionAhead:  # the shared read may predate the seq this client saw: ask again, alone
            return sse.start_after(position, await self._bounds(channel), channel)

    async def _bounds(self, channel: str) -> sse.FeedBounds:
        last_seq, oldest_seq = await queries.read_feed_bounds(self._redis, self._keys, channel)
        return sse.FeedBounds(last_seq, oldest_seq)

    async def _shared_bounds(self, channel: str) -> sse.FeedBounds:
        """One Redis read for every stream starting meanwhile: a burst of connects costs one round trip."""
        pending = self._bounds_reads.get(channel)
        if pending is None:
            pending = self._bounds_reads[channel] = asyncio.ensure_future(self._bounds(channel))
            pending.add_done_callback(lambda done: self._forget_bounds_read(channel, done))
        return await asyncio.shield(pending)  # one client leaving does not cancel the others' read

    def _forget_bounds_read(self, channel: str, done: asyncio.Future[sse.FeedBounds]) -> None:
        if self._bounds_reads.get(channel) is done:
            del self._bounds_reads[channel]
        if not done.cancelled():
            done.exception()  # retrieved: every waiter may have left

    async def subscribe(self, channel: str, after: int) -> Subscription:
        """A subscription for a stream at seq ``after``: its ``live_after`` and, when memory has it, ``backlog``.

        Raises:
            FeedEnded: the reader could not start (Redis did not answer).
        """
        reader = self._readers.get(channel)
        if reader is None:
            reader = self._readers[channel] = _Reader(channel)
            reader.task = asyncio.create_task(self._read(reader), name=f"feed-reader-{channel}")
            self._tasks.add(reader.task)
            reader.task.add_done_callback(self._tasks.discard)
        sub = Subscription(reader, self._client_buffer)
        reader.subscribers.add(sub)
        if reader.last_seq is not None:  # running: with no await since the line above, nothing slips between
            sub.live_after = reader.last_seq
        try:
            await reader.started.wait()  # a reader starting sets live_after of its waiting subscribers
            if sub.ended is not None:
                raise FeedEnded(sub.ended)
        except BaseException:
            self.unsubscribe(sub)
            raise
        sub.backlog = reader.backlog(after, sub.live_after)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Never waits, so it is safe in a ``finally`` of a cancelled stream; the last one stops the reader."""
        reader = sub.reader
        reader.subscribers.discard(sub)
        if not reader.subscribers and not reader.stopped:
            self._stop(reader)
            if reader.task is not None:
                # Python 3.11 can lose a cancel that lands while redis-py connects (asyncio.wait_for),
                # so the reader also checks ``stopped`` after each read, at most read_block_ms away.
                reader.task.cancel()

    def end_all(self, reason: str) -> None:
        """Ends every subscription (their streams say why and close); readers stop as they leave."""
        for reader in list(self._readers.values()):
            for sub in reader.subscribers:
                sub.end(reason)

    async def close(self) -> None:
        """Ends every subscription and stops every reader (cancelling again until each has stopped)."""
        self.end_all(SHUTDOWN)
        for reader in list(self._readers.values()):
            self._stop(reader)
        while self._tasks:
            for task in self._tasks:
                task.cancel()
            await asyncio.wait(list(self._tasks), timeout=0.05)

    async def history(self, channel: str, after: int, until: int) -> AsyncGenerator[list[Delta]]:
        """Pages of the stored entries after seq ``after`` up to seq ``until``."""
        while after < until:
            entries = await queries.read_feed(self._redis, self._keys, channel, after, until, HISTORY_PAGE)
            if not entries:
                return
            page = parse_entries(entries)
            yield page
            after = page[-1].seq

    def _stop(self, reader: _Reader) -> None:
        reader.stopped = True
        if self._readers.get(reader.channel) is reader:
            del self._readers[reader.channel]
        reader.started.set()  # wakes subscribers still waiting for a start that will not come

    async def _read(self, reader: _Reader) -> None:
        channel = reader.channel
        try:
            last_id, reader.last_seq = await queries.read_feed_newest(self._redis, self._keys, channel)
            for sub in reader.subscribers:
                sub.live_after = reader.last_seq
            reader.started.set()
            while not reader.stopped:
                entries = await queries.wait_for_feed(
                    self._blocking_redis, self._keys, channel, last_id, self._read_count, self._read_block_ms,
                )
                if not entries:
                    continue
                last_id = entries[-1][0]
                batch = parse_entries(entries)
                # No await from here to the end of the loop: a subscriber is either offered this
                # batch or sees last_seq after it, never neither.
                reader.recent.extend(batch)
                reader.last_seq = batch[-1].seq
                for sub in reader.subscribers:
                    sub.offer(batch)
        except redis_errors.RedisError as exc:
            log.warning("feed reader of channel %r stopped: Redis %s: %s", channel, type(exc).__name__, exc)
            self._fail(reader, REDIS_UNAVAILABLE)
        except Exception:
            log.exception("feed reader of channel %r failed", channel)
            self._fail(reader, INTERNAL_ERROR)

    def _fail(self, reader: _Reader, reason: str) -> None:
        for sub in reader.subscribers:
            sub.end(reason)
        self._stop(reader)
