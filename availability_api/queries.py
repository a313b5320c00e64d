"""Reads of the Redis projection (layout in ``avail.projection``); never writes.

Each function is one round trip unless its docstring says otherwise. Redis errors
propagate: the error handlers answer 503 for connection problems and timeouts.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson
from redis import exceptions as redis_errors

from atp.exceptions import UnknownSku
from avail.projection import Keys
from availability_api.types import RedisClient, SkuFields


async def _wait(pending: Awaitable[Any] | Any) -> Any:
    return await cast(Awaitable[Any], pending)


async def read_sku(redis: RedisClient, keys: Keys, sku: str) -> SkuFields:
    """The SKU's hash; ``UnknownSku`` when the engine never saw it."""
    fields = cast(dict[str, str], await _wait(redis.hgetall(keys.sku(sku))))
    if not fields:
        raise UnknownSku(sku)
    return fields


async def read_skus(redis: RedisClient, keys: Keys, skus: Sequence[str]) -> list[SkuFields]:
    """Every SKU's hash in request order (empty for one never seen), pipelined in one round trip."""
    pipe = redis.pipeline(transaction=False)
    for sku in skus:
        pipe.hgetall(keys.sku(sku))
    return cast(list[SkuFields], await pipe.execute())


async def read_rules(redis: RedisClient, keys: Keys) -> str | None:
    return cast(str | None, await _wait(redis.get(keys.rules)))


@dataclass(frozen=True, slots=True)
class Page:
    skus: list[str]
    values: list[str | None]
    last: str | None
    """The SKU to continue after, or None when this page ends the channel."""


async def read_channel_page(redis: RedisClient, keys: Keys, channel: str, after: str | None, limit: int) -> Page:
    """Up to ``limit`` SKUs in byte order after ``after`` with their shown quantity (two round trips)."""
    start = "(" + after if after is not None else "-"
    found = cast(
        list[str], await _wait(redis.zrange(keys.skus, start, "+", bylex=True, offset=0, num=limit + 1)),
    )
    skus, more = found[:limit], len(found) > limit
    values = cast(list[str | None], await _wait(redis.hmget(keys.channel(channel), skus))) if skus else []
    return Page(skus, values, skus[-1] if more else None)


async def read_flow_stats(redis: RedisClient, keys: Keys) -> dict[str, str]:
    return cast(dict[str, str], await _wait(redis.hgetall(keys.stats)))


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


async def read_readiness(redis: RedisClient, keys: Keys) -> Readiness:
    """PING, rules document present, newest heartbeat: one pipelined round trip; never raises."""
    pipe = redis.pipeline(transaction=False)
    pipe.ping()
    pipe.exists(keys.rules)
    pipe.hvals(keys.heartbeat)
    pipe.get(keys.rules_version)
    pipe.get(keys.rules_error)
    try:
        _, rules_count, beats, version, refused = await pipe.execute()
    except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
        return Readiness(f"not answering ({type(exc).__name__})", False, None)
    except redis_errors.RedisError as exc:
        return Readiness(f"error: {exc}", False, None)
    newest = max((int(b) for b in beats if b.lstrip("-").isdigit()), default=None)
    age = None if newest is None else (time.time_ns() // 1000 - newest) / 1e6
    return Readiness(None, bool(rules_count), age, version, _refused_in_words(refused))


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
