"""Reads of the Redis projection (layout in ``projection``); never writes.

SKU hashes are read by ``read_cache.SkuReader`` (through the per-process read cache).

Each function is one round trip unless its docstring says otherwise. Redis errors
propagate: the error handlers answer 503 for connection problems and timeouts.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, cast

import orjson
from redis import exceptions as redis_errors

from availability_api.types import RedisClient
from projection import CHANNEL_PREFIX, Keys, backlog_field


async def _wait(pending: Awaitable[Any] | Any) -> Any:
    return await cast(Awaitable[Any], pending)


async def read_rules(redis: RedisClient, keys: Keys) -> str | None:
    return cast(str | None, await _wait(redis.get(keys.rules)))


@dataclass(frozen=True, slots=True)
class Page:
    skus: list[str]
    values: list[str | None]
    """Each SKU's live shown quantity for the channel (None: never computed for it, 0)."""
    last: str | None
    """The SKU to continue after, or None when this page ends the channel."""
    feed_seq: int | None = None
    """On the first page only: the channel's last delta seq, read before any SKU value."""
    backlog: int = 0
    """SKUs waiting in the channel's throttle when the page was read: the feed trails the values by these."""


async def read_channel_page(redis: RedisClient, keys: Keys, channel: str, after: str | None, limit: int) -> Page:
    """Up to ``limit`` SKUs in byte order after ``after`` with their live shown quantity (two round trips).

    On the first page (``after`` None) the feed's seq is read first, in the same round trip
    as the SKUs, and every value after it: a value is never older than the feed up to that
    seq, and the feed after it brings every later change (the throttle always publishes a
    SKU's newest value in the end), so snapshot + feed from the seq ends at the current
    numbers. A delta the snapshot already reflects sets the same number again.
    """
    start = "(" + after if after is not None else "-"
    pipe = redis.pipeline(transaction=False)
    if after is None:
        pipe.get(keys.feed_seq(channel))
    pipe.zrange(keys.skus, start, "+", bylex=True, offset=0, num=limit + 1)
    answers = await pipe.execute()
    feed_seq = int(answers[0] or 0) if after is None else None
    found = cast(list[str], answers[-1])
    skus, more = found[:limit], len(found) > limit
    pipe = redis.pipeline(transaction=False)
    shown = CHANNEL_PREFIX + channel
    for sku in skus:
        pipe.hget(keys.sku(sku), shown)
    pipe.hget(keys.stats, backlog_field(channel))
    values = cast(list[str | None], await pipe.execute())
    backlog = values.pop()
    return Page(skus, values, skus[-1] if more else None, feed_seq, int(backlog or 0))


FeedEntry = tuple[str, dict[str, str]]
"""One stream entry: its id (``"<seq>-0"``) and its fields (``d``: the delta JSON, ``t``: µs released)."""


async def read_feed_bounds(redis: RedisClient, keys: Keys, channel: str) -> tuple[int, int | None]:
    """The feed's last seq given out and the seq of its oldest retained entry (None: empty), atomically."""
    pipe = redis.pipeline(transaction=True)  # both keys share the channel's hash tag
    pipe.get(keys.feed_seq(channel))
    pipe.xrange(keys.feed(channel), "-", "+", count=1)
    last_seq, oldest = await pipe.execute()
    return int(last_seq or 0), entry_seq(oldest[0][0]) if oldest else None


async def read_feed(
    redis: RedisClient, keys: Keys, channel: str, after_seq: int, until_seq: int, count: int,
) -> list[FeedEntry]:
    """Up to ``count`` entries with a seq above ``after_seq`` and up to ``until_seq``, oldest first."""
    start, end = f"{after_seq + 1}-0", f"{until_seq}-0"
    return cast(list[FeedEntry], await _wait(redis.xrange(keys.feed(channel), start, end, count=count)))


async def read_feed_newest(redis: RedisClient, keys: Keys, channel: str) -> tuple[str, int]:
    """Where a feed reader starts: the newest entry's id (``"0-0"``: none) and the last seq given out.

    Read atomically. A feed with no delta yet holds no entry but has a seq (its origin): streams starting
    now start after that seq, and the first delta is the one after it.
    """
    pipe = redis.pipeline(transaction=True)  # both keys share the channel's hash tag
    pipe.get(keys.feed_seq(channel))
    pipe.xrevrange(keys.feed(channel), "+", "-", count=1)
    last_seq, newest = await pipe.execute()
    newest_id = newest[0][0] if newest else "0-0"
    return newest_id, max(int(last_seq or 0), entry_seq(newest_id))


async def wait_for_feed(
    redis: RedisClient, keys: Keys, channel: str, after_id: str, count: int, block_ms: int,
) -> list[FeedEntry]:
    """Entries after ``after_id``, waiting up to ``block_ms`` for one (XREAD BLOCK); [] when none came.

    The client's socket timeout must be longer than ``block_ms``.
    """
    answer: Any = await _wait(redis.xread({keys.feed(channel): after_id}, count=count, block=block_ms))
    if not answer:
        return []
    if isinstance(answer, dict):  # RESP3
        return cast(list[FeedEntry], next(iter(answer.values()))[0])
    return cast(list[FeedEntry], answer[0][1])


def entry_seq(entry_id: str) -> int:
    """``"42-0"`` → 42."""
    return int(entry_id.partition("-")[0])


async def read_flow_stats(redis: RedisClient, keys: Keys) -> dict[str, str]:
    return cast(dict[str, str], await _wait(redis.hgetall(keys.stats)))


async def read_flow_stats_and_rules(redis: RedisClient, keys: Keys) -> tuple[dict[str, str], str | None]:
    """The flow's stats hash and the running rules version, pipelined (engine-wide keys share one slot)."""
    pipe = redis.pipeline(transaction=False)
    pipe.hgetall(keys.stats)
    pipe.get(keys.rules_version)
    stats, version = await pipe.execute()
    return cast(dict[str, str], stats), cast(str | None, version)


async def read_progress(redis: RedisClient, keys: Keys) -> tuple[list[str], dict[str, str]]:
    """The flow's heartbeats (values) and its progress hash, pipelined in one round trip."""
    pipe = redis.pipeline(transaction=False)
    pipe.hvals(keys.heartbeat)
    pipe.hgetall(keys.progress)
    beats, progress = await pipe.execute()
    return cast(list[str], beats), cast(dict[str, str], progress)


@dataclass(frozen=True, slots=True)
class Readiness:
    redis: str | None
    """None when Redis answered PING, else why not."""
    rules_present: bool
    heartbeat_age_s: float | None
    """Age of the newest flow heartbeat; None when there is none."""
    rules_version: str | None = None
    rules_refused: str | None = None
    """The last refused rules change, in words, while it is the newest change."""
    heartbeats: list[str] | None = None
    progress: dict[str, str] | None = None
    """The flow's heartbeat values and progress hash (freshness); None when Redis did not answer."""


async def read_readiness(redis: RedisClient, keys: Keys) -> Readiness:
    """Rules document present, heartbeats, progress: one pipelined round trip (all in one slot); never raises."""
    pipe = redis.pipeline(transaction=False)
    pipe.exists(keys.rules)
    pipe.hvals(keys.heartbeat)
    pipe.get(keys.rules_version)
    pipe.get(keys.rules_error)
    pipe.hgetall(keys.progress)
    try:
        rules_count, beats, version, refused, progress = await pipe.execute()
    except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
        return Readiness(f"not answering ({type(exc).__name__})", False, None)
    except (redis_errors.RedisError, redis_errors.RedisClusterException) as exc:
        return Readiness(f"error: {exc}", False, None)
    newest = max((int(b) for b in beats if b.lstrip("-").isdigit()), default=None)
    age = None if newest is None else (time.time_ns() // 1000 - newest) / 1e6
    return Readiness(None, bool(rules_count), age, version, _refused_in_words(refused), beats, progress)


def _refused_in_words(document: str | None) -> str | None:
    if document is None:
        return None
    try:
        refused = orjson.loads(document)
        problems = refused["problems"]
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        first = problems[0] if problems else "no detail"
        return f"change refused at {refused['at']}, still running {refused['kept_version']}: {first}{more}"
    except (orjson.JSONDecodeError, KeyError, TypeError, IndexError):
        return "a change was refused (unreadable report)"


async def read_incidents(redis: RedisClient, keys: Keys, limit: int) -> list[str]:
    """The latest ``limit`` oversells and phantom sales (JSON each), newest first."""
    return cast(list[str], await _wait(redis.zrevrange(keys.incidents, 0, limit - 1)))


@dataclass(frozen=True, slots=True)
class Overview:
    stats: dict[str, str]
    rules_version: str | None
    rules_error: str | None
    """JSON of the last refused rules change, while it is the newest change."""
    rejects: list[str]
    incidents: list[str]


async def read_overview(redis: RedisClient, keys: Keys, rejects: int, incidents: int) -> Overview:
    """What the operations page shows, in one round trip (engine-wide keys share one slot)."""
    pipe = redis.pipeline(transaction=False)
    pipe.hgetall(keys.stats)
    pipe.get(keys.rules_version)
    pipe.get(keys.rules_error)
    pipe.lrange(keys.rejects, 0, rejects - 1)
    pipe.zrevrange(keys.incidents, 0, incidents - 1)
    stats, version, error, latest_rejects, latest_incidents = await pipe.execute()
    # LRANGE 0 -1 is the whole list: asking for none must list none
    return Overview(stats, version, error, latest_rejects if rejects else [], latest_incidents if incidents else [])
