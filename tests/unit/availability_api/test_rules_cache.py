import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import orjson
import pytest

from availability_api.errors import RulesUnavailable, UnknownChannel
from availability_api.rules_cache import RulesCache, RulesView

T = TypeVar("T")

DOC = {"version": "v1", "channels": {"web": {"nodes": ["dc-east", "store-001"]}, "amazon": {"nodes": ["dc-east"]}}}


def run(make: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await make()

    return asyncio.run(main())


class FakeStore:
    """Stands in for Redis: holds the document text and counts loads."""

    def __init__(self, doc: object | None) -> None:
        self.text = None if doc is None else orjson.dumps(doc).decode()
        self.loads = 0

    async def load(self) -> str | None:
        self.loads += 1
        return self.text


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_parse() -> None:
    view = RulesView.parse(orjson.dumps(DOC).decode())
    assert view.version == "v1"
    assert view.channels["web"] == frozenset({"dc-east", "store-001"})
    assert view.channel_names == ["amazon", "web"]


@pytest.mark.parametrize("text", ["nope", "[]", '{"channels": {}}', '{"version": "v", "channels": {"w": {}}}',
                                  '{"version": "v", "channels": {"w": {"nodes": [1]}}}'])
def test_parse_rejects_malformed_documents(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        RulesView.parse(text)


def test_reloads_at_most_once_per_ttl() -> None:
    store, clock = FakeStore(DOC), FakeClock()
    cache = RulesCache(store.load, ttl_s=1.0, clock=clock)

    async def scenario() -> None:
        for _ in range(5):
            assert (await cache.require()).version == "v1"
        assert store.loads == 1
        clock.now += 0.99
        await cache.current()
        assert store.loads == 1
        clock.now += 0.02
        await cache.current()
        assert store.loads == 2

    run(scenario)


def test_an_unchanged_document_keeps_its_objects_and_a_changed_one_replaces_them() -> None:
    store, clock = FakeStore(DOC), FakeClock()
    cache = RulesCache(store.load, ttl_s=1.0, clock=clock)

    async def scenario() -> None:
        first, nodes = await cache.channel("web")
        clock.now += 1.1
        again, nodes_again = await cache.channel("web")
        assert store.loads == 2
        assert again is first and nodes_again is nodes  # memoised answers key on these objects
        store.text = orjson.dumps({**DOC, "version": "v2"}).decode()
        clock.now += 1.1
        changed, _ = await cache.channel("web")
        assert changed is not first and changed.version == "v2"

    run(scenario)


def test_concurrent_requests_share_one_reload() -> None:
    store = FakeStore(DOC)
    cache = RulesCache(store.load, clock=FakeClock())

    async def scenario() -> None:
        await asyncio.gather(*(cache.current() for _ in range(20)))

    run(scenario)
    assert store.loads == 1


def test_unknown_channel_reloads_early_then_refuses() -> None:
    store, clock = FakeStore(DOC), FakeClock()
    cache = RulesCache(store.load, ttl_s=1.0, miss_refresh_s=0.1, clock=clock)

    async def scenario() -> None:
        await cache.channel("web")
        store.text = orjson.dumps({"version": "v2", "channels": {**DOC["channels"], "ebay": {"nodes": []}}}).decode()
        clock.now += 0.2
        view, nodes = await cache.channel("ebay")
        assert (view.version, nodes) == ("v2", frozenset())
        assert store.loads == 2
        with pytest.raises(UnknownChannel) as refused:
            await cache.channel("nosuch")
        assert "amazon, ebay, web" in refused.value.message
        assert store.loads == 2, "a miss right after a load does not reload again"

    run(scenario)


def test_no_document_means_rules_unavailable_and_none() -> None:
    cache = RulesCache(FakeStore(None).load, clock=FakeClock())

    async def scenario() -> None:
        assert await cache.current() is None
        with pytest.raises(RulesUnavailable):
            await cache.channel("web")

    run(scenario)


def test_malformed_document_is_treated_as_absent(caplog: pytest.LogCaptureFixture) -> None:
    store = FakeStore(None)
    store.text = "{not json"
    cache = RulesCache(store.load, clock=FakeClock())
    assert run(cache.current) is None
    assert "malformed rules document" in caplog.text


def test_while_one_request_reloads_the_others_go_on_with_the_copy() -> None:
    store, clock = FakeStore(DOC), FakeClock()
    cache = RulesCache(store.load, ttl_s=1.0, clock=clock)
    release = asyncio.Event()

    async def slow_load() -> str | None:
        await release.wait()
        return await store.load()

    async def scenario() -> None:
        first = await cache.require()
        cache._load = slow_load  # Redis answering slowly from now on
        store.text = orjson.dumps({**DOC, "version": "v2"}).decode()
        clock.now += 1.1
        reloading = asyncio.ensure_future(cache.require())
        await asyncio.sleep(0)
        assert await cache.require() is first  # not queued behind the reload
        clock.now += 1.0  # the copy is now over twice the TTL old: wait for the reload
        waiting = asyncio.ensure_future(cache.require())
        await asyncio.sleep(0)
        assert not waiting.done()
        release.set()
        assert (await reloading).version == "v2"
        assert (await waiting).version == "v2"
        assert store.loads == 2

    run(scenario)
