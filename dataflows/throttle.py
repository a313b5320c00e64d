"""Per-channel throttle of the delta feed (contract section 5), keyed by channel.

One logic per channel, so wherever the SKU's state lives, all of a channel's deltas
meet in one place and its limits hold for the whole cluster. While a SKU waits only
its newest value is kept (it keeps its place in the queue), and it is always
released in the end. Releases are at most ``max_per_second`` in any window of one
second plus ``margin`` (slack for the jitter between release and delivery), and per
SKU at most one every ``min_interval_ms``.
"""

from __future__ import annotations

import pickle
import time
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from bytewax.operators import StatefulBatchLogic

from dataflows.messages import ChannelDelta, Release
from dataflows.rules_reload import ActiveRules

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

    def offer(self, delta: ChannelDelta) -> None:
        self.pending[delta.sku] = delta  # an update keeps the SKU's place in the queue

    def release(self, now: int, max_per_second: int | None, min_interval_us: int, margin_us: int) -> list[Release]:
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
        if len(self.last_released) > 4 * len(self.pending) + 10_000:
            self.last_released = {s: t for s, t in self.last_released.items() if now - t < min_interval_us}
        self.next_at = wake if self.pending else None
        return released

    def to_bytes(self, now: int, min_interval_us: int) -> bytes:
        """The throttle as plain tuples, without releases too old to matter.

        A backlog can leave every SKU of a rate-limited channel pending, and pickling that
        many dataclass objects at every epoch cost ~10 % of the flow's CPU.
        """
        recent = {sku: t for sku, t in self.last_released.items() if now - t < min_interval_us}
        return pickle.dumps((
            [(d.channel, d.sku, d.available, d.as_of, d.rules_version) for d in self.pending.values()],
            recent, list(self.window), self.next_at,
        ), protocol=5)

    @staticmethod
    def from_bytes(data: bytes) -> Throttle:
        loaded = pickle.loads(data)  # noqa: S301 - own snapshot
        if isinstance(loaded, Throttle):  # written before the flat format
            return loaded
        pending, recent, window, next_at = loaded
        throttle = Throttle()
        throttle.pending = {values[1]: ChannelDelta(*values) for values in pending}
        throttle.last_released, throttle.window, throttle.next_at = recent, deque(window), next_at
        return throttle


class ThrottleLogic(StatefulBatchLogic[list[ChannelDelta], Release, bytes]):
    """One channel's throttle; each item is one shard activation's deltas for the channel."""

    def __init__(self, active: ActiveRules, margin_us: int, resume: bytes | None) -> None:
        self.active = active
        self.margin_us = margin_us
        self.throttle = Throttle.from_bytes(resume) if resume is not None else Throttle()
        self.channel = ""

    def on_batch(self, values: list[list[ChannelDelta]]) -> tuple[Iterable[Release], bool]:
        offer = self.throttle.offer
        for deltas in values:
            for delta in deltas:
                self.channel = delta.channel
                offer(delta)
        return self._release(), StatefulBatchLogic.RETAIN

    def on_notify(self) -> tuple[Iterable[Release], bool]:
        return self._release(), StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        at = self.throttle.next_at
        return None if at is None else _EPOCH + timedelta(microseconds=at)

    def snapshot(self) -> bytes:
        channel = self.active.current().channels.get(self.channel)
        min_interval_us = channel.publish.min_interval_ms * 1000 if channel is not None else 0
        return self.throttle.to_bytes(now_us(), min_interval_us)

    def _release(self) -> list[Release]:
        if not self.channel:
            self.channel = next(iter(self.throttle.pending.values())).channel if self.throttle.pending else ""
        channel = self.active.current().channels.get(self.channel)
        if channel is None:  # the channel left the rules: nothing more to publish for it
            self.throttle.pending.clear()
            self.throttle.next_at = None
            return []
        publish = channel.publish
        return self.throttle.release(now_us(), publish.max_per_second, publish.min_interval_ms * 1000, self.margin_us)


def throttle_builder(active: ActiveRules, margin_ms: float) -> Callable[[bytes | None], ThrottleLogic]:
    def build(resume: bytes | None) -> ThrottleLogic:
        return ThrottleLogic(active, int(margin_ms * 1000), resume)

    return build
