"""The read cache's rules: no value outlives an invalidation, a lost tracking connection or its TTL."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest

from atp.exceptions import UnknownSku
from availability_api.read_cache import ReadCache, SkuReader
from projection import Keys

KEY = Keys("p").sku("A")
KEY_B = Keys("p").sku("B")
OLD = {"v": "1", "c:web": "4"}
NEW = {"v": "2", "c:web": "9"}


def in_loop(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    @functools.wraps(test)
    def run(*args: Any) -> None:
        asyncio.run(test(*args))

    return run


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def live_cache(
    max_entries: int = 10, ttl_s: float = 2.0, clock: Clock | None = None, jitter: float = 1.0,
) -> ReadCache:
    cache = ReadCache(max_entries, ttl_s, clock=clock or Clock(), random=lambda: jitter)
    cache.go_live()
    return cache


def store(cache: ReadCache, key: str, fields: dict[str, str]) -> None:
    cache.finish(key, cache.begin(key), fields)


def cached(cache: ReadCache, key: str) -> object:
    found = cache.get(key)
    return None if found is None else found[0]


class TestReadCache:
    def test_a_stored_read_is_served_until_invalidated(self) -> None:
        cache = live_cache()
        store(cache, KEY, OLD)
        assert cached(cache, KEY) == OLD
        cache.invalidate([KEY])
        assert cached(cache, KEY) is None
        assert (cache.stats.hit, cache.stats.miss, cache.stats.invalidation) == (1, 1, 1)

    def test_a_read_invalidated_while_in_flight_is_answered_but_not_stored(self) -> None:
        cache = live_cache()
        ticket = cache.begin(KEY)
        cache.invalidate([KEY])  # the write landed after Redis answered the read: the answer may be old
        cache.finish(KEY, ticket, OLD)
        assert cached(cache, KEY) is None
        assert cache.stats.not_stored == 1

    def test_a_read_begun_after_the_invalidation_is_stored(self) -> None:
        cache = live_cache()
        first = cache.begin(KEY)
        cache.invalidate([KEY])
        second = cache.begin(KEY)
        cache.finish(KEY, first, OLD)
        cache.finish(KEY, second, NEW)
        assert cached(cache, KEY) == NEW

    def test_an_invalidation_of_another_key_does_not_block_storing(self) -> None:
        cache = live_cache()
        ticket = cache.begin(KEY)
        cache.invalidate(["p:sku:{B}"])
        cache.finish(KEY, ticket, OLD)
        assert cached(cache, KEY) == OLD

    def test_nothing_is_cached_or_served_before_tracking_is_established(self) -> None:
        cache = ReadCache(10, 2.0)
        store(cache, KEY, OLD)
        assert cached(cache, KEY) is None
        assert cache.stats.bypass == 1

    def test_losing_tracking_empties_and_bypasses_the_cache(self) -> None:
        cache = live_cache()
        store(cache, KEY, OLD)
        cache.go_dark()
        assert cached(cache, KEY) is None
        store(cache, KEY, OLD)
        assert len(cache) == 0

    def test_a_read_begun_before_tracking_came_back_is_not_stored(self) -> None:
        cache = live_cache()
        ticket = cache.begin(KEY)
        cache.go_dark()  # invalidations sent meanwhile were lost with the connection
        cache.go_live()
        cache.finish(KEY, ticket, OLD)
        assert cached(cache, KEY) is None

    def test_a_flush_message_drops_every_entry(self) -> None:
        cache = live_cache()
        store(cache, KEY, OLD)
        ticket = cache.begin("p:sku:{B}")
        cache.invalidate(None)
        cache.finish("p:sku:{B}", ticket, NEW)
        assert len(cache) == 0

    def test_an_entry_is_not_served_past_its_ttl(self) -> None:
        clock = Clock()
        cache = live_cache(ttl_s=2.0, clock=clock)
        store(cache, KEY, OLD)
        clock.now += 1.9
        assert cached(cache, KEY) == OLD
        clock.now += 0.2
        assert cached(cache, KEY) is None

    @pytest.mark.parametrize(("read_again", "memo"), [
        (OLD, {("web",): b"rendered"}),  # unchanged: what was rendered from it still holds
        (NEW, {}),  # changed: rendered anew
    ])
    def test_an_expired_entry_read_again_keeps_its_renders_only_when_unchanged(
        self, read_again: dict[str, str], memo: dict[object, bytes],
    ) -> None:
        clock = Clock()
        cache = live_cache(ttl_s=2.0, clock=clock)
        cache.finish(KEY, cache.begin(KEY), dict(OLD))[("web",)] = b"rendered"
        clock.now += 2.1
        assert cache.get(KEY) is None
        assert cache.finish(KEY, cache.begin(KEY), dict(read_again)) == memo
        assert cache.get(KEY) == (read_again, memo)

    def test_a_read_again_counts_as_the_newest_entry(self) -> None:
        clock = Clock()
        cache = live_cache(max_entries=2, ttl_s=2.0, clock=clock)
        store(cache, "p:sku:{A}", OLD)
        store(cache, "p:sku:{B}", OLD)
        clock.now += 2.1
        store(cache, "p:sku:{A}", OLD)  # A expired and read again: B is now the oldest
        store(cache, "p:sku:{C}", OLD)
        assert cached(cache, "p:sku:{A}") == OLD
        assert cached(cache, "p:sku:{B}") is None

    def test_entries_cached_together_expire_spread_over_the_second_half_of_the_ttl(self) -> None:
        clock = Clock()
        cache = live_cache(ttl_s=2.0, clock=clock, jitter=0.0)
        store(cache, KEY, OLD)
        clock.now += 0.99
        assert cached(cache, KEY) == OLD
        clock.now += 0.02
        assert cached(cache, KEY) is None

    def test_the_oldest_entry_makes_room_when_full(self) -> None:
        cache = live_cache(max_entries=2)
        for name in "ABC":
            store(cache, f"p:sku:{{{name}}}", OLD)
        assert len(cache) == 2
        assert cached(cache, "p:sku:{A}") is None
        assert cached(cache, "p:sku:{C}") == OLD

    def test_a_zero_ttl_never_goes_live(self) -> None:
        cache = live_cache(ttl_s=0)
        store(cache, KEY, OLD)
        assert not cache.live
        assert cached(cache, KEY) is None


class SlowRedis:
    """Answers HGETALL (and the script reading many hashes) from a dict, each read held until ``release`` is set."""

    def __init__(self, data: dict[str, dict[str, str]]) -> None:
        self.data = data
        self.release = asyncio.Event()
        self.started = asyncio.Event()
        self.reads = 0

    async def _read(self, keys: list[str]) -> list[dict[str, str]]:
        self.reads += 1
        answer = [dict(self.data.get(key, {})) for key in keys]  # what Redis had when it ran the command
        self.started.set()
        await self.release.wait()
        return answer

    def hgetall(self, key: str) -> Awaitable[dict[str, str]]:
        async def one() -> dict[str, str]:
            return (await self._read([key]))[0]
        return one()

    def register_script(self, script: str) -> Callable[..., Awaitable[list[list[str]]]]:
        async def hgetall_many(keys: list[str]) -> list[list[str]]:
            # As Redis answers HGETALL inside a script: each hash a flat list of fields and values.
            return [[item for pair in fields.items() for item in pair] for fields in await self._read(keys)]
        return hgetall_many


def reader(redis: SlowRedis, cache: ReadCache) -> SkuReader:
    return SkuReader(redis, Keys("p"), cache)  # type: ignore[arg-type]  # a fake of the two calls used


class TestSkuReader:
    @in_loop
    async def test_a_read_raced_by_a_write_is_not_cached(self) -> None:
        redis, cache = SlowRedis({KEY: OLD}), live_cache()
        skus = reader(redis, cache)
        pending = asyncio.ensure_future(skus.one("A"))
        await redis.started.wait()
        redis.data[KEY] = NEW
        cache.invalidate([KEY])  # arrives before the (old) answer
        redis.release.set()
        assert await pending == OLD  # as an uncached read would have answered
        assert await skus.one("A") == NEW

    @in_loop
    async def test_a_second_read_is_a_hit(self) -> None:
        redis, cache = SlowRedis({KEY: OLD}), live_cache()
        redis.release.set()
        skus = reader(redis, cache)
        assert await skus.one("A") == OLD
        assert await skus.one("A") == OLD
        assert redis.reads == 1

    @in_loop
    async def test_concurrent_misses_share_one_read(self) -> None:
        redis, cache = SlowRedis({KEY: OLD, KEY_B: NEW}), live_cache()
        redis.release.set()
        skus = reader(redis, cache)
        assert await asyncio.gather(skus.one("A"), skus.one("B")) == [OLD, NEW]
        assert redis.reads == 1

    @in_loop
    async def test_an_unknown_sku_raises_and_is_remembered_until_created(self) -> None:
        redis, cache = SlowRedis({}), live_cache()
        redis.release.set()
        skus = reader(redis, cache)
        for _ in range(2):
            with pytest.raises(UnknownSku):
                await skus.one("A")
        assert redis.reads == 1
        redis.data[KEY] = NEW
        cache.invalidate([KEY])
        assert await skus.one("A") == NEW

    @in_loop
    async def test_a_batch_mixes_hits_and_misses_in_request_order(self) -> None:
        redis, cache = SlowRedis({KEY: OLD, KEY_B: NEW}), live_cache()
        redis.release.set()
        skus = reader(redis, cache)
        await skus.one("B")
        assert await skus.many(["A", "B", "C"]) == [OLD, NEW, {}]
        assert redis.reads == 2

    @in_loop
    async def test_a_batch_read_raced_by_a_write_is_not_cached(self) -> None:
        redis, cache = SlowRedis({KEY: OLD}), live_cache()
        skus = reader(redis, cache)
        pending = asyncio.ensure_future(skus.many(["A"]))
        await redis.started.wait()
        redis.data[KEY] = NEW
        cache.invalidate([KEY])
        redis.release.set()
        assert await pending == [OLD]
        assert await skus.many(["A"]) == [NEW]


VIEW = object()


def memoised(cache: ReadCache, *names: str) -> tuple[list[object], list[int]]:
    return cache.memoised(lambda name: Keys("p").sku(name), names, VIEW)


class TestMemoised:
    """The batch lookup by name: what a live entry's memo holds, never more than ``get`` would serve."""

    def test_finds_what_the_memos_of_live_entries_hold_and_says_where_nothing(self) -> None:
        cache = live_cache()
        cache.finish(KEY, cache.begin(KEY), OLD)[VIEW] = b"A"
        store(cache, KEY_B, NEW)  # cached, nothing rendered for the view yet
        for _ in range(2):  # the second time from its index
            assert memoised(cache, "A", "B", "C", "A") == ([b"A", None, None, b"A"], [1, 2])
        assert cache.stats.hit == 4  # the others are counted when looked up with get_many

    def test_an_invalidated_entry_is_not_found_again(self) -> None:
        cache = live_cache()
        cache.finish(KEY, cache.begin(KEY), OLD)[VIEW] = b"A"
        assert memoised(cache, "A") == ([b"A"], [])
        cache.invalidate([KEY])
        assert memoised(cache, "A") == ([None], [0])
        cache.finish(KEY, cache.begin(KEY), NEW)  # read again: rendered anew
        assert memoised(cache, "A") == ([None], [0])

    def test_an_entry_is_not_found_past_its_ttl_nor_after_a_flush(self) -> None:
        clock = Clock()
        cache = live_cache(ttl_s=2.0, clock=clock)
        cache.finish(KEY, cache.begin(KEY), OLD)[VIEW] = b"A"
        assert memoised(cache, "A") == ([b"A"], [])
        clock.now += 2.1
        assert memoised(cache, "A") == ([None], [0])
        cache.finish(KEY, cache.begin(KEY), dict(OLD))  # read again unchanged: its renders hold
        assert memoised(cache, "A") == ([b"A"], [])
        cache.invalidate(None)
        cache.finish(KEY, cache.begin(KEY), dict(OLD))
        assert memoised(cache, "A") == ([None], [0])

    def test_an_evicted_entry_is_not_found(self) -> None:
        cache = live_cache(max_entries=1)
        cache.finish(KEY, cache.begin(KEY), OLD)[VIEW] = b"A"
        assert memoised(cache, "A") == ([b"A"], [])
        store(cache, KEY_B, NEW)
        assert memoised(cache, "A") == ([None], [0])

    def test_nothing_is_found_while_tracking_is_down(self) -> None:
        cache = live_cache()
        cache.finish(KEY, cache.begin(KEY), OLD)[VIEW] = b"A"
        cache.go_dark()
        assert memoised(cache, "A") == ([None], [0])


class TestRefresh:
    """Entries that requests use are re-read before they expire; others are left to expire."""

    def test_only_used_entries_fall_due_shortly_before_they_expire(self) -> None:
        clock = Clock()
        cache = live_cache(ttl_s=2.0, clock=clock)  # entries live 2 s (jitter 1.0); due 0.25 s before
        cache.refreshing = True
        store(cache, KEY, OLD)
        store(cache, KEY_B, OLD)
        assert cache.get(KEY) is not None
        assert cache.due() == []
        clock.now += 1.76
        assert cache.due() == [KEY]
        assert cache.due() == []  # once

    def test_an_entry_read_again_unchanged_lives_on_with_its_renders(self) -> None:
        clock = Clock()
        cache = live_cache(ttl_s=2.0, clock=clock)
        cache.refreshing = True
        cache.finish(KEY, cache.begin(KEY), dict(OLD))[VIEW] = b"A"
        assert memoised(cache, "A") == ([b"A"], [])  # used
        clock.now += 1.8
        assert cache.due() == [KEY]
        cache.finish(KEY, cache.begin(KEY), dict(OLD))
        clock.now += 1.0  # past the first read's TTL, within the second's
        assert memoised(cache, "A") == ([b"A"], [])

    def test_a_used_entry_invalidated_is_served_for_the_grace_at_most_while_read_again(self) -> None:
        clock, again = Clock(), []
        cache = ReadCache(10, 2.0, stale_grace_s=0.1, clock=clock, random=lambda: 1.0)
        cache.go_live()
        cache.on_drop = again.append
        store(cache, KEY, OLD)
        store(cache, KEY_B, OLD)
        assert cached(cache, KEY) == OLD  # used
        cache.invalidate([KEY, KEY_B])
        assert again == [KEY]  # read again at once
        assert cached(cache, KEY_B) is None, "an entry nobody used goes at once"
        clock.now += 0.09
        assert cached(cache, KEY) == OLD
        clock.now += 0.02
        assert cached(cache, KEY) is None, "served past the grace"
        assert cache.stats.grace == 1

    def test_the_read_after_the_invalidation_replaces_the_entry_served_in_grace(self) -> None:
        clock = Clock()
        cache = ReadCache(10, 2.0, stale_grace_s=0.1, clock=clock, random=lambda: 1.0)
        cache.go_live()
        cache.on_drop = lambda key: None
        cache.finish(KEY, cache.begin(KEY), dict(OLD))[VIEW] = b"old"
        assert memoised(cache, "A") == ([b"old"], [])  # used
        in_flight = cache.begin(KEY)  # began before the change: its value may predate it
        cache.invalidate([KEY])
        cache.finish(KEY, in_flight, dict(OLD))
        assert memoised(cache, "A") == ([b"old"], []), "not stored: the grace entry stays"
        again = cache.begin(KEY)
        cache.invalidate([KEY])  # a second change while reading again: the grace is not extended
        cache.finish(KEY, again, dict(NEW))
        clock.now += 0.05
        assert cached(cache, KEY) == OLD
        cache.finish(KEY, cache.begin(KEY), dict(NEW))
        assert cached(cache, KEY) == NEW
        assert memoised(cache, "A") == ([None], [0]), "nothing rendered from the old fields is served"
        clock.now += 1.0
        assert cached(cache, KEY) == NEW

    def test_without_a_refresher_or_a_grace_an_invalidated_entry_goes_at_once(self) -> None:
        for grace, refresher in ((0.0, True), (0.1, False)):
            cache = ReadCache(10, 2.0, stale_grace_s=grace, clock=Clock(), random=lambda: 1.0)
            cache.go_live()
            if refresher:
                cache.on_drop = lambda key: None
            store(cache, KEY, OLD)
            assert cached(cache, KEY) == OLD
            cache.invalidate([KEY])
            assert cached(cache, KEY) is None
            assert cache.stats.grace == 0

    @in_loop
    async def test_the_refresher_rereads_used_entries_and_follows_the_cache_rules(self) -> None:
        redis, cache = SlowRedis({KEY: OLD, KEY_B: OLD}), ReadCache(10, 0.4, random=lambda: 1.0)  # the real clock
        cache.go_live()
        redis.release.set()
        skus = reader(redis, cache)
        refreshing = asyncio.create_task(skus.keep_fresh())
        await asyncio.sleep(0)
        assert await skus.many(["A", "B"]) == [OLD, OLD]
        redis.data[KEY_B] = NEW  # changed without an invalidation reaching us: the TTL still bounds it
        for _ in range(6):  # A stays cached by its refreshes while used (each 0.35 s); B is not used again
            await asyncio.sleep(0.1)
            assert await skus.one("A") == OLD
        assert cache.stats.refreshed >= 1
        assert cache.stats.miss == 2  # the first reads only
        assert await skus.one("B") == NEW  # B expired: read again
        refreshing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await refreshing
        assert not cache.refreshing
