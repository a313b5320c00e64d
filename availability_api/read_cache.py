"""A per-process cache of SKU hashes, kept correct by Redis invalidation messages.

``ReadCache`` is the pure part (no I/O): bounded, with a short safety TTL, and only
used while ``InvalidationListener`` (``availability_api/invalidation.py``) holds a
tracking connection to Redis. Redis then tells us about every change of a SKU hash
(``CLIENT TRACKING ... BCAST PREFIX <prefix>:sku:``), and ``invalidate`` drops it.

Three rules keep every answer as fresh as an uncached read would be, but for one bounded
exception:

- a read that was in flight while its key was invalidated is answered but not cached
  (the value may predate the change that the invalidation announced);
- while tracking is not established (not yet, or its connection dropped), the cache is
  empty and bypassed: every read goes to Redis, and reads started before tracking
  came back are never stored;
- an entry older than ``ttl_s`` is never served, whatever happened to invalidations;
- the exception: an invalidated entry that requests were using, while a refresher reads it
  again at once, is served for at most ``stale_grace_s`` more (0: dropped at once). Without
  it every request for a hot SKU just changed waits for that read, behind all the others
  the event loop holds: the batch tail under writes.

Hashes that requests use are re-read before their TTL runs out (``SkuReader.keep_fresh``,
in the background and many keys a command), under the same rules, so hot SKUs are not
missed every TTL; an entry not used since it was read is left to expire.

Single event loop, no locks: every method runs to completion between awaits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError, RedisError

from atp.exceptions import UnknownSku
from availability_api.types import RedisClient, SkuFields
from projection import Keys
from projection.connect import slot_of

log = logging.getLogger(__name__)
Clock = Callable[[], float]
Memo = dict[Any, Any]
"""What was worked out from one cached hash, by what else it depends on (answers rendered per channel view,
schedules per channel, rule set and day), so a hit works nothing out again."""
Entry = list[Any]
"""``[fields, expires_at, memo, used]``; every lookup that finds it sets ``used`` (then refresh it in time)."""


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
    grace: int = 0
    """Invalidated entries served on for at most ``stale_grace_s`` while they were read again."""
    not_stored: int = 0
    """Reads not cached because their key was invalidated (or tracking changed) while they were in flight."""
    flush: int = 0
    """Whole-cache drops: tracking lost or re-established, FLUSHDB/FLUSHALL."""
    refreshed: int = 0
    """Used entries re-read before they expired, or at once when invalidated (``SkuReader.keep_fresh``), whether
    or not they were stored."""


class ReadCache:
    """SKU key → its hash fields, at most ``max_entries`` (oldest inserted dropped first) for ``ttl_s``."""

    def __init__(
        self, max_entries: int, ttl_s: float, *, stale_grace_s: float = 0.0, clock: Clock = time.monotonic,
        random: Callable[[], float] = random.random,
    ) -> None:
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self.stale_grace_s = min(stale_grace_s, ttl_s)
        self._clock = clock
        self._random = random
        self._entries: dict[str, Entry] = {}
        self._in_flight: dict[str, list[int]] = {}
        """key → [reads in flight, invalidations seen since the first of them began]."""
        self._epoch = 0
        """Bumped whenever tracking starts or stops: reads begun before are never stored."""
        self._live = False
        self.stats = CacheStats()
        self.refreshing = False
        """Whether a refresher re-reads used entries before they expire (``due``); set by it."""
        self.on_drop: Callable[[str], None] | None = None
        """Called with the key of each used entry an invalidation drops (the refresher reads it again at once)."""
        self.refresh_step_s = max(ttl_s / 16, 0.01)
        self._refresh_lead_s = ttl_s / 8
        """An entry is due this long before it expires: time enough for the read, and none wasted."""
        self._schedule: dict[int, list[tuple[str, Entry]]] = {}
        """Refresh time (in ``refresh_step_s``) → the entries stored for then (some since replaced or dropped)."""
        self._indexes: dict[object, dict[str, tuple[Entry, Any]]] = {}
        """Memo key → name → (entry, what its memo holds under that key): ``memoised`` finds them in one lookup.

        A record is good while its entry is: a dropped entry's expiry is set to 0 (``_drop``)."""

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
            entry[3] = True
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
                entry[3] = True
                found.append((entry[0], entry[2]))
            else:
                found.append(None)
        self.stats.hit += hits
        self.stats.miss += len(keys) - hits
        return found

    def memoised(self, keys: Callable[[str], str | None], names: Sequence[str], memo_key: object,
                 ) -> tuple[list[Any], list[int]]:
        """What each name's live entry holds under ``memo_key`` in its memo (None when nothing), and where None.

        The hot path of batches: ``names`` are the caller's (SKUs), ``keys`` gives a name's cache key
        if known (else None: not looked up). What was found before is found by name in one lookup
        (an index per memo key), the rest through the entries. Only the values found count, as hits:
        look the others up with ``get_many``, which counts them, so each lookup is counted once.
        """
        if not self._live:
            return [None] * len(names), list(range(len(names)))
        now = self._clock()
        index = self._indexes.get(memo_key)
        if index is None or len(index) > self.max_entries:  # bounded: records of dropped entries go too
            if len(self._indexes) >= _MAX_INDEXES:
                self._indexes.clear()
            index = self._indexes[memo_key] = {}
        recorded = index.get
        found: list[Any] = []
        missing: list[int] = []
        for at, name in enumerate(names):
            record = recorded(name)
            if record is not None:
                entry = record[0]
                if entry[1] > now:
                    entry[3] = True
                    found.append(record[1])
                    continue
            missing.append(at)
            found.append(None)
        if missing:
            entries, still = self._entries.get, []
            for at in missing:
                name = names[at]
                held = entries(keys(name))  # type: ignore[arg-type]  # None is a key no entry has
                if held is not None and held[1] > now:
                    held[3] = True
                    value = held[2].get(memo_key)
                    if value is not None:
                        index[name] = held, value
                        found[at] = value
                        continue
                still.append(at)
            missing = still
        self.stats.hit += len(names) - len(missing)
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
        # Each entry lives a random 50-100 % of the TTL: entries cached together (a batch, a burst after a
        # flush) would otherwise all expire together and send a stampede of misses to Redis at once.
        expires = self._clock() + self.ttl_s * (0.5 + 0.5 * self._random())
        entry = entries.get(key)
        if entry is None:
            if len(entries) >= self.max_entries:
                _drop(entries.pop(next(iter(entries))))
            entry = [fields, expires, memo, False]
        else:
            del entries[key]  # re-inserted below: the oldest inserted is dropped first
            if entry[0] == fields:
                # Read again unchanged (a refresh, or an expired entry): the entry lives on, with what was
                # rendered from it (answers depend on the fields and the memo's keys only), so a TTL expiry
                # costs a read, not a render.
                entry[1], entry[3] = expires, False
            else:
                _drop(entry)
                entry = [fields, expires, memo, False]
        entries[key] = entry
        memo = entry[2]
        if self.refreshing:
            self._schedule.setdefault(int((expires - self._refresh_lead_s) / self.refresh_step_s), []).append(
                (key, entry),
            )
        return memo

    def due(self) -> list[str]:
        """The keys of entries used since they were read and about to expire: re-read them now (once each)."""
        if not self._live or not self._schedule:
            return []
        now = int(self._clock() / self.refresh_step_s)
        entries = self._entries
        keys = []
        step, lead = self.refresh_step_s, self._refresh_lead_s
        for at in [at for at in self._schedule if at <= now]:
            for key, entry in self._schedule.pop(at):
                # Used, still the entry of its key, and this is its latest refresh time (it lives on when re-read
                # unchanged, and is scheduled again).
                if entry[3] and entries.get(key) is entry and int((entry[1] - lead) / step) == at:
                    keys.append(key)
        return keys

    def stop_refreshing(self) -> None:
        self.refreshing = False
        self._schedule.clear()

    def invalidate(self, keys: Iterable[str] | None) -> None:
        """Redis said these keys changed; None means every key (FLUSHDB, FLUSHALL)."""
        if keys is None:
            self._flush()
            return
        entries, grace = self._entries, self.stale_grace_s
        until = self._clock() + grace
        for key in keys:
            self.stats.invalidation += 1
            entry = entries.get(key)
            if entry is not None:
                if entry[3] and self.on_drop is not None:
                    if grace > 0:  # served on until the re-read lands (``finish`` replaces it), or for grace_s
                        self.stats.grace += 1
                        entry[1] = min(entry[1], until)
                    else:
                        _drop(entries.pop(key))
                    self.on_drop(key)
                else:
                    _drop(entries.pop(key))
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
        self._schedule.clear()
        self._indexes.clear()


_MAX_INDEXES = 64


def _drop(entry: Entry) -> None:
    """Marks an entry no longer cached: the records of ``memoised`` that point to it are void from now on."""
    entry[1] = 0.0


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
            # The task's first step runs in the next loop iteration and takes what was asked until then.
            # Every hop through the loop's queue costs a waiting request a turn behind all the others.
            task = loop.create_task(self._send_pending())
            self._tasks.add(task)  # a reference until done, so the task is not collected midway
            task.add_done_callback(self._tasks.discard)
        self._pending.append((keys, answer))
        return answer

    async def _send_pending(self) -> None:
        batch, self._pending = self._pending, []
        await self._send(batch)

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
                    chunks = _chunks(keys, None)
                    replies = [await self._hgetall_script(keys=chunks[0])] if len(chunks) == 1 else (
                        await asyncio.gather(*(self._hgetall_script(keys=chunk) for chunk in chunks))
                    )
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
        self._invalidated: list[str] = []
        self._tasks: set[asyncio.Task[None]] = set()

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
            answers, memos = await self._read([keys[i] for i in missing])
            for n, i in enumerate(missing):
                found[i] = answers[n], memos[n]
        return cast(list[tuple[SkuFields, Memo]], found)

    async def _read(self, keys: list[str]) -> tuple[list[SkuFields], list[Memo]]:
        """Each key's hash from Redis, stored in the cache unless it changed meanwhile, and the memos to use."""
        cache = self.cache
        tickets = [cache.begin(key) for key in keys]
        answers: list[SkuFields] | None = None
        memos: list[Memo] = []
        try:
            answers = await self._reads.hgetall(keys)
        finally:
            memos = [cache.finish(key, tickets[n], answers[n] if answers is not None else None)
                     for n, key in enumerate(keys)]
        return answers, memos

    async def keep_fresh(self) -> None:
        """Until cancelled: re-reads the hashes requests used shortly before they expire, many a command.

        A hot SKU is then never missed for its TTL alone: requests find it (and what was rendered
        from it, kept while the hash reads back unchanged) instead of waiting for Redis. The reads
        follow the cache's rules (one raced by an invalidation is not stored); a failed one leaves
        its entries to expire, and requests read them again.
        """
        cache = self.cache
        cache.refreshing = True
        cache.on_drop = self._read_again
        try:
            while True:
                await asyncio.sleep(cache.refresh_step_s)
                keys = cache.due()
                if not keys:
                    continue
                cache.stats.refreshed += len(keys)
                try:
                    await self._read(keys)
                except RedisError:
                    pass  # requests see Redis failing on their own reads
                except Exception:
                    log.exception("refreshing the read cache failed")
        finally:
            cache.on_drop = None
            cache.stop_refreshing()

    def _read_again(self, key: str) -> None:
        """A used hash was invalidated: read it again now, so that the requests after it need not wait for it.

        The keys invalidated in one loop iteration go in one read (a task: the reads follow the cache's rules).
        """
        if not self._invalidated:
            task = asyncio.get_running_loop().create_task(self._read_invalidated())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._invalidated.append(key)

    async def _read_invalidated(self) -> None:
        keys, self._invalidated = list(dict.fromkeys(self._invalidated)), []
        self.cache.stats.refreshed += len(keys)
        with contextlib.suppress(RedisError):  # requests see Redis failing on their own reads
            await self._read(keys)
