"""A per-process cache of SKU hashes, kept correct by Redis invalidation messages.

``ReadCache`` is the pure part (no I/O): bounded, with a short safety TTL, and only
used while ``InvalidationListener`` (``availability_api/invalidation.py``) holds a
tracking connection to Redis. Redis then tells us about every change of a SKU hash
(``CLIENT TRACKING ... BCAST PREFIX <prefix>:sku:``), and ``invalidate`` drops it.

Three rules keep every answer as fresh as an uncached read would be:

- a read that was in flight while its key was invalidated is answered but not cached
  (the value may predate the change that the invalidation announced);
- while tracking is not established (not yet, or its connection dropped), the cache is
  empty and bypassed: every read goes to Redis, and reads started before tracking
  came back are never stored;
- an entry older than ``ttl_s`` is never served, whatever happened to invalidations.

Single event loop, no locks: every method runs to completion between awaits.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError

from atp.exceptions import UnknownSku
from availability_api.types import RedisClient, SkuFields
from projection import Keys
from projection.connect import slot_of

Clock = Callable[[], float]
Memo = dict[Any, Any]
"""What was worked out from one cached hash, by what else it depends on (answers rendered per channel view,
schedules per channel, rule set and day), so a hit works nothing out again."""


@dataclass(slots=True)
class CacheStats:
    """Counters since start, exposed on /metrics as ``avail_api_read_cache_total{outcome}``."""

    hit: int = 0
    miss: int = 0
    """Lookups answered from Redis while the cache was live (absent, expired, or in flight)."""
    bypass: int = 0
    """Lookups while tracking was not established (straight to Redis)."""
    invalidation: int = 0
    """Keys named by Redis invalidation messages (whether or not they were cached)."""
    not_stored: int = 0
    """Reads not cached because their key was invalidated (or tracking changed) while they were in flight."""
    flush: int = 0
    """Whole-cache drops: tracking lost or re-established, FLUSHDB/FLUSHALL."""


class ReadCache:
    """SKU key → its hash fields, at most ``max_entries`` (oldest inserted dropped first) for ``ttl_s``."""

    def __init__(
        self, max_entries: int, ttl_s: float, *, clock: Clock = time.monotonic,
        random: Callable[[], float] = random.random,
    ) -> None:
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._clock = clock
        self._random = random
        self._entries: dict[str, tuple[SkuFields, float, Memo]] = {}
        self._in_flight: dict[str, list[int]] = {}
        """key → [reads in flight, invalidations seen since the first of them began]."""
        self._epoch = 0
        """Bumped whenever tracking starts or stops: reads begun before are never stored."""
        self._live = False
        self.stats = CacheStats()

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0

    @property
    def live(self) -> bool:
        """Whether lookups may be answered from memory (tracking established and TTL above 0)."""
        return self._live

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> tuple[SkuFields, Memo] | None:
        """The cached fields of ``key`` and their memo, or None (then read Redis between ``begin`` and ``finish``)."""
        if not self._live:
            self.stats.bypass += 1
            return None
        entry = self._entries.get(key)
        if entry is not None and entry[1] > self._clock():
            self.stats.hit += 1
            return entry[0], entry[2]
        self.stats.miss += 1  # an expired entry stays until its re-read finishes: see ``finish``
        return None

    def get_many(self, keys: Sequence[str]) -> list[tuple[SkuFields, Memo] | None]:
        """``get`` of each key, in one call (batches look up hundreds)."""
        if not self._live:
            self.stats.bypass += len(keys)
            return [None] * len(keys)
        entries, now = self._entries, self._clock()
        found: list[tuple[SkuFields, Memo] | None] = []
        hits = 0
        for key in keys:
            entry = entries.get(key)
            if entry is not None and entry[1] > now:
                hits += 1
                found.append((entry[0], entry[2]))
            else:
                found.append(None)
        self.stats.hit += hits
        self.stats.miss += len(keys) - hits
        return found

    def memoised(self, keys: Callable[[str], str | None], skus: Sequence[str], memo_key: object,
                 ) -> tuple[list[Any], list[int]]:
        """What each SKU's live entry holds under ``memo_key`` in its memo (None when nothing), and where None.

        The hot path of batches, in one pass: ``keys`` gives a SKU's key if known (else None: not
        looked up). Only the values found count, as hits: look the others up with ``get_many``,
        which counts them, so each lookup is counted once.
        """
        if not self._live:
            return [None] * len(skus), list(range(len(skus)))
        entries, now = self._entries.get, self._clock()
        found: list[Any] = []
        missing: list[int] = []
        for at, sku in enumerate(skus):
            entry = entries(keys(sku))  # type: ignore[arg-type]  # None is a key no entry has
            value = entry[2].get(memo_key) if entry is not None and entry[1] > now else None
            if value is None:
                missing.append(at)
            found.append(value)
        self.stats.hit += len(skus) - len(missing)
        return found, missing

    def begin(self, key: str) -> tuple[int, int]:
        """Notes a read of ``key`` going to Redis; pass the ticket to ``finish`` whatever happens."""
        slot = self._in_flight.get(key)
        if slot is None:
            slot = self._in_flight[key] = [0, 0]
        slot[0] += 1
        return self._epoch, slot[1]

    def finish(self, key: str, ticket: tuple[int, int], fields: SkuFields | None) -> Memo:
        """Ends a read begun with ``begin``; caches ``fields`` unless the key changed meanwhile (None: failed).

        Returns the memo to render into: the cached entry's, or a throwaway one.
        """
        slot = self._in_flight[key]
        unchanged = ticket[0] == self._epoch and ticket[1] == slot[1]
        slot[0] -= 1
        if slot[0] == 0:
            del self._in_flight[key]
        memo: Memo = {}
        if fields is None or not self._live:
            return memo
        if not unchanged:
            self.stats.not_stored += 1
            return memo
        entries = self._entries
        held = entries.get(key)
        if held is None:
            if len(entries) >= self.max_entries:
                del entries[next(iter(entries))]
        else:
            del entries[key]  # re-inserted below: the oldest inserted is dropped first
            if held[0] == fields:
                # An expired entry read again unchanged: what was rendered from it still holds (answers
                # depend on the fields and the memo's keys only), so a TTL expiry costs a read, not a render.
                memo = held[2]
        # Each entry lives a random 50-100 % of the TTL: entries cached together (a batch, a burst after a
        # flush) would otherwise all expire together and send a stampede of misses to Redis at once.
        entries[key] = (fields, self._clock() + self.ttl_s * (0.5 + 0.5 * self._random()), memo)
        return memo

    def invalidate(self, keys: Iterable[str] | None) -> None:
        """Redis said these keys changed; None means every key (FLUSHDB, FLUSHALL)."""
        if keys is None:
            self._flush()
            return
        for key in keys:
            self.stats.invalidation += 1
            self._entries.pop(key, None)
            slot = self._in_flight.get(key)
            if slot is not None:
                slot[1] += 1

    def go_live(self) -> None:
        """Tracking is established: start caching, from empty."""
        self._flush()
        self._live = self.enabled

    def go_dark(self) -> None:
        """Tracking is lost (or stopping): empty the cache and bypass it."""
        self._live = False
        self._flush()

    def _flush(self) -> None:
        self.stats.flush += 1
        self._epoch += 1
        self._entries.clear()


class _Coalescer:
    """Sends the reads that requests ask for in one loop iteration in one round trip.

    Under load many requests miss at once, and each command costs the client far more
    CPU (and a pooled connection) than one more key in a shared command does: the
    misses of several requests go out as one script call (``HGETALL_MANY``). A read
    waits at most one loop iteration.
    """

    def __init__(self, redis: RedisClient) -> None:
        self._redis = redis
        self._hgetall_script = redis.register_script(HGETALL_MANY)
        self._by_slot = isinstance(redis, RedisCluster)
        self._pending: list[tuple[list[str], asyncio.Future[list[SkuFields]]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def hgetall(self, keys: list[str]) -> asyncio.Future[list[SkuFields]]:
        """Each key's hash, in order, from the next round trip."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[list[SkuFields]] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((keys, answer))
        return answer

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._tasks.add(task)  # a reference until done, so the task is not collected midway
        task.add_done_callback(self._tasks.discard)

    async def _pipelined(self, chunks: list[list[str]]) -> list[list[list[str]]]:
        """On a cluster: every chunk's script call in one pipeline (one connection and round trip per master).

        Separate calls would each hold a connection of their master's pool, and redis-py's
        cluster pools refuse rather than wait when they run out.
        """
        replies = await self._pipeline_once(chunks)
        if any(isinstance(reply, NoScriptError) for reply in replies):
            await self._redis.script_load(HGETALL_MANY)  # a new cluster, or a master restarted
            replies = await self._pipeline_once(chunks)
        failed = next((reply for reply in replies if isinstance(reply, Exception)), None)
        if failed is not None:
            raise failed
        return cast(list[list[list[str]]], replies)

    async def _pipeline_once(self, chunks: list[list[str]]) -> list[Any]:
        pipe = self._redis.pipeline(transaction=False)
        for chunk in chunks:
            await self._hgetall_script(keys=chunk, client=pipe)  # type: ignore[arg-type]  # queues it
        return await pipe.execute(raise_on_error=False)

    async def _send(self, batch: list[tuple[list[str], asyncio.Future[list[SkuFields]]]]) -> None:
        try:
            # Each key once: requests missing the same hot key at once share its read.
            keys = list(dict.fromkeys(key for wanted, _ in batch for key in wanted))
            if len(keys) == 1:
                answers = [await _await(self._redis.hgetall(keys[0]))]
            else:
                if self._by_slot:  # a script may touch one slot only: keys sorted by slot, cut where it changes
                    keys.sort(key=slot_of)
                    replies = await self._pipelined(_chunks(keys, slot_of))
                else:
                    replies = await asyncio.gather(*(
                        self._hgetall_script(keys=chunk) for chunk in _chunks(keys, None)
                    ))
                answers = [fields for reply in replies for fields in _hashes(reply)]
        except BaseException as exc:  # every waiter gets the failure (503), even a cancellation
            for _, answer in batch:
                if not answer.done():
                    answer.set_exception(exc if isinstance(exc, Exception) else asyncio.CancelledError())
            if not isinstance(exc, Exception):
                raise
            return
        by_key = dict(zip(keys, answers, strict=True))
        for wanted, answer in batch:
            if not answer.done():
                answer.set_result([by_key[key] for key in wanted])


HGETALL_MANY = ("local hashes = {} for i, key in ipairs(KEYS) do hashes[i] = redis.call('HGETALL', key) end "
                "return hashes")
"""Every key's hash in one command: a pipeline of HGETALLs costs the client ~20 µs of Python per key, this ~1."""
READ_CHUNK = 250
"""Keys per script call: one call holds Redis, and the parsing of its reply the API, for about a millisecond
(the chunks of a big read go out together, and other requests run between their replies)."""


def _chunks(keys: list[str], slot: Callable[[str], int] | None) -> list[list[str]]:
    """Runs of at most ``READ_CHUNK`` keys, each within one slot when ``slot`` is given."""
    chunks: list[list[str]] = []
    current: list[str] = []
    at = -1
    for key in keys:
        here = slot(key) if slot is not None else at
        if current and (len(current) == READ_CHUNK or here != at):
            chunks.append(current)
            current = []
        current.append(key)
        at = here
    if current:
        chunks.append(current)
    return chunks


def _hashes(replies: list[list[str]]) -> list[SkuFields]:
    hashes: list[SkuFields] = []
    for flat in replies:
        pairs = iter(flat)
        hashes.append(dict(zip(pairs, pairs, strict=False)))
    return hashes


async def _await(pending: Any) -> Any:
    return await pending


class SkuReader:
    """Reads SKU hashes through the cache (when live), else straight from Redis."""

    def __init__(self, redis: RedisClient, keys: Keys, cache: ReadCache) -> None:
        self.redis = redis
        self.keys = keys
        self.cache = cache
        self._reads = _Coalescer(redis)
        self._key_of: dict[str, str] = {}
        """SKU → its Redis key, for as many SKUs as the cache holds (``Keys.sku`` hashes the name each time)."""
        self._key_memo_size = max(cache.max_entries, 1000)

    def key_of(self, sku: str) -> str:
        """``keys.sku(sku)``, remembered."""
        key = self._key_of.get(sku)
        if key is None:
            if len(self._key_of) >= self._key_memo_size:
                self._key_of.clear()
            key = self._key_of[sku] = self.keys.sku(sku)
        return key

    def keys_of(self, skus: Sequence[str]) -> list[str]:
        """Each SKU's Redis key, in order."""
        known = self._key_of.get
        return [known(sku) or self.key_of(sku) for sku in skus]

    def memoised(self, skus: Sequence[str], memo_key: object) -> tuple[list[Any], list[int]]:
        """``ReadCache.memoised`` of these SKUs: the values found, and where none was."""
        return self.cache.memoised(self._key_of.get, skus, memo_key)

    async def one(self, sku: str) -> SkuFields:
        """The SKU's hash; ``UnknownSku`` when the engine never saw it. One round trip on a miss."""
        return (await self.one_with_memo(sku))[0]

    async def one_with_memo(self, sku: str) -> tuple[SkuFields, Memo]:
        """``one``, and the memo where answers rendered from these fields may be kept."""
        key = self.key_of(sku)
        cache = self.cache
        found = cache.get(key)
        if found is None:
            ticket = cache.begin(key)
            read: SkuFields | None = None
            memo: Memo = {}
            try:
                read = (await self._reads.hgetall([key]))[0]
            finally:
                memo = cache.finish(key, ticket, read)
            found = read if read is not None else {}, memo
        if not found[0]:
            raise UnknownSku(sku)
        return found

    async def many(self, skus: Sequence[str]) -> list[SkuFields]:
        """Every SKU's hash in request order (empty for one never seen); the misses in one round trip."""
        return [fields for fields, _ in await self.many_with_memos(skus)]

    async def many_with_memos(self, skus: Sequence[str]) -> list[tuple[SkuFields, Memo]]:
        """``many``, each hash with the memo where answers rendered from it may be kept."""
        return await self.read_keys(self.keys_of(skus))

    async def read_keys(self, keys: Sequence[str]) -> list[tuple[SkuFields, Memo]]:
        """``many_with_memos`` of SKU keys (``keys_of``)."""
        cache = self.cache
        found = cache.get_many(keys)
        missing = [i for i, entry in enumerate(found) if entry is None]
        if missing:
            tickets = [cache.begin(keys[i]) for i in missing]
            answers: list[SkuFields] | None = None
            memos: list[Memo] = []
            try:
                answers = await self._reads.hgetall([keys[i] for i in missing])
            finally:
                memos = [cache.finish(keys[i], tickets[n], answers[n] if answers is not None else None)
                         for n, i in enumerate(missing)]
            for n, i in enumerate(missing):
                found[i] = answers[n], memos[n]
        return cast(list[tuple[SkuFields, Memo]], found)
