"""The SSE body of one delta-feed client: history, then live deltas, in order, once each."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence

from redis import exceptions as redis_errors

from availability_api import sse
from availability_api.feed import (
    CLIENT_GONE,
    FEED_GAP,
    INTERNAL_ERROR,
    REDIS_UNAVAILABLE,
    SHUTDOWN,
    SLOW_CLIENT,
    Delta,
    FeedEnded,
    FeedHub,
    Subscription,
)
from availability_api.metrics import ApiMetrics

log = logging.getLogger(__name__)

_LAST_WORDS = {
    SLOW_CLIENT: "too far behind: disconnecting; reconnect with Last-Event-ID",
    REDIS_UNAVAILABLE: "the availability store (Redis) is not answering; reconnect with Last-Event-ID",
    FEED_GAP: "the next delta is no longer retained; reconnect with Last-Event-ID (a 410 answer means: "
              "re-bootstrap from the snapshot)",
    SHUTDOWN: "the server is shutting down; reconnect with Last-Event-ID",
    INTERNAL_ERROR: "internal error (see the API log); reconnect with Last-Event-ID",
}


def take_fresh(batch: Sequence[Delta], last: int) -> tuple[list[Delta], bool]:
    """The deltas of ``batch`` that follow seq ``last`` without a gap, and whether a gap came next."""
    fresh: list[Delta] = []
    for delta in batch:
        if delta.seq <= last:
            continue
        if delta.seq != last + 1:
            return fresh, True
        fresh.append(delta)
        last = delta.seq
    return fresh, False


async def _batches(
    hub: FeedHub, sub: Subscription, channel: str, after: int, idle_s: float,
) -> AsyncGenerator[list[Delta] | None]:
    """The backlog after ``after``, then the live queue; None after each ``idle_s`` without a delta."""
    if sub.backlog is not None:
        yield sub.backlog
    else:
        async with contextlib.aclosing(hub.history(channel, after, sub.live_after)) as pages:
            async for page in pages:
                yield page
    while True:
        yield await sub.next(idle_s)


async def follow(
    hub: FeedHub, channel: str, after: int, *, heartbeat_s: float,
    is_disconnected: Callable[[], Awaitable[bool]], metrics: ApiMetrics,
) -> AsyncIterator[bytes]:
    """Every delta of ``channel`` after seq ``after`` as SSE, plus comments; for a StreamingResponse.

    Stops when the client disconnects (the server cancels it, or the idle check sees it),
    when the hub ends the subscription, on a gap in the feed and when Redis fails, and
    always unsubscribes. A final comment says why the server ended it.
    """
    clients, sent = metrics.sse_clients.labels(channel), metrics.deltas_sent.labels(channel)
    clients.inc()
    reason, sub, last = CLIENT_GONE, None, after
    try:
        yield sse.comment(f"connected, from seq {after}")
        sub = await hub.subscribe(channel, after)
        async with contextlib.aclosing(_batches(hub, sub, channel, after, heartbeat_s)) as batches:
            async for batch in batches:
                if batch is None:
                    if await is_disconnected():
                        return
                    yield sse.KEEPALIVE
                    continue
                fresh, gap = take_fresh(batch, last)
                if fresh:
                    last = fresh[-1].seq
                    sent.inc(len(fresh))
                    yield b"".join(delta.frame for delta in fresh)
                if gap:
                    raise FeedEnded(FEED_GAP)
    except FeedEnded as ended:
        reason = ended.reason
        yield sse.comment(_LAST_WORDS[reason])
    except redis_errors.RedisError as exc:
        log.warning("delta stream of channel %r ended: Redis %s: %s", channel, type(exc).__name__, exc)
        reason = REDIS_UNAVAILABLE
        yield sse.comment(_LAST_WORDS[reason])
    finally:
        if sub is not None:
            hub.unsubscribe(sub)
        clients.dec()
        metrics.streams_ended.labels(channel, reason).inc()
