"""Per-channel throttle of the delta feed (contract section 5), keyed by channel.

One logic per channel, so wherever the SKU's state lives, all of a channel's deltas
meet in one place and its limits hold for the whole cluster. While a SKU waits only
its newest value is kept (it keeps its place in the queue), and it is always
released in the end. Releases are at most ``max_per_second`` in any window of one
second plus ``margin`` (slack for the jitter between release and delivery), and per
SKU at most one every ``min_interval_ms``.

In a backlog a rate-limited channel's queue holds nearly every SKU, so the throttle's
snapshot, like a state shard's, is a position in a state log (``state_log``): each epoch
appends the offers and releases since the last one, not the queue.
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from bytewax.operators import StatefulBatchLogic

from dataflows.background_writes import BackgroundWriter, WorkerWriters
from dataflows.messages import Backlog, ChannelDelta, FeedItem, Release
from dataflows.rules_reload import ActiveRules
from dataflows.state_log import LogPosition, ShardLog, StateLog

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SECOND = 1_000_000


def now_us() -> int:
    return time.time_ns() // 1000


class Throttle:
    """The pure part: what to release at ``now``, and when to look again."""

    def __init__(self) -> None:
        self.pending: dict[str, ChannelDelta] = {}
        self.last_released: dict[str, int] = {}
        self.window: deque[int] = deque()
        self.next_at: int | None = None
        self.ops: list[tuple[str, ChannelDelta | None]] = []  # offers and releases since the last record

    def offer(self, delta: ChannelDelta) -> bool:
        """Queues the SKU's new number; True when it replaced one still waiting (coalesced)."""
        coalesced = delta.sku in self.pending
        self.pending[delta.sku] = delta  # an update keeps the SKU's place in the queue
        self.ops.append((delta.sku, delta))
        return coalesced

    def release(self, now: int, max_per_second: int | None, min_interval_us: int, margin_us: int) -> list[Release]:
        if max_per_second is None and not min_interval_us:
            return self._release_all(now)
        span = SECOND + margin_us
        window = self.window
        while window and window[0] <= now - span:
            window.popleft()
        released: list[Release] = []
        wake: int | None = None
        limit = SECOND * SECOND if max_per_second is None else max_per_second
        last_released = self.last_released
        for sku, delta in self.pending.items():  # no copy: a backlog can hold every SKU, the window few
            if len(window) >= limit:
                wake = window[0] + span if wake is None else min(wake, window[0] + span)
                break
            last = last_released.get(sku)
            if last is not None and now - last < min_interval_us:
                due = last + min_interval_us
                wake = due if wake is None else min(wake, due)
                continue
            last_released[sku] = now
            window.append(now)
            released.append(Release(delta, now))
        for release in released:
            del self.pending[release.delta.sku]
            self.ops.append((release.delta.sku, None))
        if len(self.last_released) > 4 * len(self.pending) + 10_000:
            self.last_released = {s: t for s, t in self.last_released.items() if now - t < min_interval_us}
        self.next_at = wake if self.pending else None
        return released

    def _release_all(self, now: int) -> list[Release]:
        """An unlimited channel: everything waiting goes now, and no release needs remembering."""
        released = [Release(delta, now) for delta in self.pending.values()]
        self.ops.extend((sku, None) for sku in self.pending)
        self.pending.clear()
        self.window.clear()
        self.last_released.clear()
        self.next_at = None
        return released

    def drop_settled(self, mark: int, joined: list[str]) -> None:
        """Forgets the offers and releases since ``ops[mark]`` of SKUs that joined the queue and left it again.

        Restoring them would add a SKU and remove it: an unlimited channel releases every
        offer it gets, and its state log would otherwise hold each of them twice.
        """
        pending = self.pending
        settled = {sku for sku in joined if sku not in pending}
        if settled:
            ops = self.ops
            ops[mark:] = [op for op in ops[mark:] if op[0] not in settled]

    def take_record(self, channel: str, now: int, min_interval_us: int, *, whole: bool = False) -> ThrottleRecord:
        """What changed since the last record, or the whole queue.

        A change is the queue's offers and releases in order; both kinds carry the releases
        recent enough to matter.
        """
        ops, self.ops = self.ops, []
        recent = {sku: t for sku, t in self.last_released.items() if now - t < min_interval_us}
        entries: list[tuple[str, DeltaValues | None]]
        if whole:
            entries = [(sku, _flat(delta)) for sku, delta in self.pending.items()]
        else:
            entries = [(sku, None if delta is None else _flat(delta)) for sku, delta in ops]
        return channel, whole, entries, recent, list(self.window), self.next_at

    @staticmethod
    def restore(records: list[ThrottleRecord]) -> Throttle:
        throttle = Throttle()
        pending = throttle.pending
        for _, whole, entries, recent, window, next_at in records:
            if whole:
                pending.clear()
            for sku, values in entries:
                if values is None:
                    del pending[sku]
                else:
                    pending[sku] = ChannelDelta(*values)
            throttle.last_released, throttle.window, throttle.next_at = recent, deque(window), next_at
        return throttle


DeltaValues = tuple[str, str, int, int | None, str]
ThrottleRecord = tuple[str, bool, list[tuple[str, DeltaValues | None]], dict[str, int], list[int], int | None]
"""channel, whole?, the queue (whole) or its offers (values) and releases (None) in order,
recent releases per SKU, the rate window, the next wake-up."""


def _flat(delta: ChannelDelta) -> DeltaValues:
    return delta.channel, delta.sku, delta.available, delta.as_of, delta.rules_version


def log_stem(channel: str) -> str:
    """A file stem for a channel's throttle log (channel names may hold dots)."""
    return "throttle-" + hashlib.sha256(channel.encode()).hexdigest()[:16]


class ThrottleLogic(StatefulBatchLogic[list[ChannelDelta], FeedItem, LogPosition | None]):
    """One channel's throttle; each item is one shard activation's deltas for the channel.

    Besides the releases it emits a ``Backlog`` whenever the number of waiting SKUs changed,
    numbers were coalesced (a SKU's new number replacing one still waiting) or deltas were
    throttled (held back on arrival by the channel's limits), so operators and adapters can
    see how far the feed trails the live numbers.
    """

    def __init__(self, active: ActiveRules, margin_us: int, resume: LogPosition | None,
                 log: StateLog | None = None, writers: WorkerWriters | None = None) -> None:
        self.writer: BackgroundWriter | None = None if writers is None else writers.current()
        self.active = active
        self.margin_us = margin_us
        self.log = log
        self.channel_log: ShardLog | None = None
        self.throttle = Throttle()
        self.channel = ""
        self.reported: int | None = None  # the backlog last emitted
        self.coalesced = 0  # numbers replaced while waiting, since the last Backlog
        self.throttled = 0  # deltas the channel's limits held back on arrival, since the last Backlog
        if resume is not None:
            if log is None:
                raise ValueError("a snapshot names a state log, but the flow was given none")
            self.channel_log, epochs = log.resume(resume)
            records = [record for records in epochs for record in records]
            self.throttle = Throttle.restore(records)
            self.channel = records[-1][0] if records else ""

    def on_batch(self, values: list[list[ChannelDelta]]) -> tuple[Iterable[FeedItem], bool]:
        offer = self.throttle.offer
        mark = len(self.throttle.ops)
        coalesced = 0
        queued: list[str] = []  # SKUs that joined the queue now (a coalesced one was already held)
        for deltas in values:
            for delta in deltas:
                self.channel = delta.channel
                if offer(delta):
                    coalesced += 1
                else:
                    queued.append(delta.sku)
        self.coalesced += coalesced
        released = self._release()
        pending = self.throttle.pending
        self.throttled += sum(1 for sku in queued if sku in pending)
        self.throttle.drop_settled(mark, queued)
        return self._report(released), StatefulBatchLogic.RETAIN

    def on_notify(self) -> tuple[Iterable[FeedItem], bool]:
        return self._report(self._release()), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[FeedItem], bool]:
        if self.writer is not None:
            self.writer.drain()
        return (), StatefulBatchLogic.RETAIN

    def _report(self, released: list[Release]) -> list[FeedItem]:
        out: list[FeedItem] = list(released)
        pending = len(self.throttle.pending)
        if (pending != self.reported or self.coalesced or self.throttled) and self.channel:
            self.reported = pending
            out.append(Backlog(self.channel, pending, self.coalesced, self.throttled))
            self.coalesced = self.throttled = 0
        if self.writer is not None and out:  # the feed step gets nothing: the worker's feed writer publishes
            self.writer.submit_all(out)
            return []
        return out

    def notify_at(self) -> datetime | None:
        at = self.throttle.next_at
        return None if at is None else _EPOCH + timedelta(microseconds=at)

    def snapshot(self) -> LogPosition | None:
        if self.writer is not None:  # before the epoch can commit
            self.writer.drain()
        if self.log is None or not self.channel:
            self.throttle.ops.clear()
            return None
        channel = self.active.current().channels.get(self.channel)
        min_interval_us = channel.publish.min_interval_ms * 1000 if channel is not None else 0
        if self.channel_log is None:
            self.channel_log = self.log.fresh(log_stem(self.channel))
        whole = self.channel_log.wants_compaction()
        record = self.throttle.take_record(self.channel, now_us(), min_interval_us, whole=whole)
        return self.channel_log.rewrite([record]) if whole else self.channel_log.append([record])

    def _release(self) -> list[Release]:
        if not self.channel:
            self.channel = next(iter(self.throttle.pending.values())).channel if self.throttle.pending else ""
        channel = self.active.current().channels.get(self.channel)
        if channel is None:  # the channel left the rules: nothing more to publish for it
            self.throttle.ops.extend((sku, None) for sku in self.throttle.pending)
            self.throttle.pending.clear()
            self.throttle.next_at = None
            return []
        publish = channel.publish
        return self.throttle.release(now_us(), publish.max_per_second, publish.min_interval_ms * 1000, self.margin_us)


def throttle_builder(
    active: ActiveRules, margin_ms: float, log: StateLog | None = None, writers: WorkerWriters | None = None,
) -> Callable[[LogPosition | None], ThrottleLogic]:
    def build(resume: LogPosition | None) -> ThrottleLogic:
        return ThrottleLogic(active, int(margin_ms * 1000), resume, log, writers)

    return build
