"""A channel adapter that bootstraps while the throttle trails far behind: the snapshot shows every unit there is."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from atp.events import Receipt
from tests.e2e.test_feed import Follower, live, stop_followers
from tests.integration.test_flow import HOUR, now_us
from tests.support.engine import ADMIN_KEY, RULES_YAML, Engine, flow_log, running_engine, wait_for

pytestmark = pytest.mark.e2e

RATE = 25  # deltas a second on amazon: 300 SKUs take 12 s to publish
SLOW_AMAZON = RULES_YAML.replace("    min_available: 3\n",
                                 f"    min_available: 3\n    publish: {{max_per_second: {RATE}}}\n")
SKUS = 300


@pytest.fixture(scope="module")
def engine(kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    with running_engine(kafka_bootstrap, redis_url, tmp_path_factory.mktemp("bootstrap"), SLOW_AMAZON) as engine:
        yield engine


def snapshot(engine: Engine, channel: str) -> tuple[dict[str, int], list[int]]:
    """Every SKU's number on all pages, and each page's pending_deltas."""
    numbers: dict[str, int] = {}
    pending: list[int] = []
    cursor: str | None = None
    while True:
        page = engine.get(f"/v1/channels/{channel}/snapshot", limit="200", **({"cursor": cursor} if cursor else {}))
        assert page.status_code == 200, page.text
        body = page.json()
        numbers.update({item["sku"]: item["available"] for item in body["items"]})
        pending.append(body["pending_deltas"])
        cursor = body["next_cursor"]
        if cursor is None:
            return numbers, pending


def backlog_metric(engine: Engine, channel: str) -> int:
    text = engine.get("/metrics", key=ADMIN_KEY).text
    found = re.search(rf'^avail_feed_backlog{{channel="{channel}"}} (\S+)$', text, re.M)
    return int(float(found[1])) if found else -1


def test_a_bootstrap_mid_backlog_shows_the_live_numbers_and_the_feed_ends_at_them(engine: Engine) -> None:
    skus = [f"HDPH-boot-{engine.name}-{i:04d}" for i in range(SKUS)]
    t = now_us() - HOUR
    engine.produce([Receipt(f"{sku}-1", sku, "dc-east", 50, t) for sku in skus])
    expected = 50 * 80 // 100 - 2  # amazon: 80 %, buffer 2
    assert wait_for(lambda: live(engine, "amazon", skus), lambda numbers: set(numbers.values()) == {expected},
                    timeout=60), flow_log(engine)

    # The throttle has published a small part: the snapshot must not show the rest as 0.
    numbers, pending = snapshot(engine, "amazon")
    published = engine.redis.hgetall(engine.keys.published("amazon"))
    not_yet_published = [sku for sku in skus if int(published.get(sku, 0)) != expected]
    assert len(not_yet_published) > SKUS // 2, "the test needs a backlog: the throttle was too quick"
    assert {sku: numbers.get(sku) for sku in skus} == dict.fromkeys(skus, expected)
    assert max(pending) > 0
    assert backlog_metric(engine, "amazon") > 0

    # An adapter bootstrapping now, then following the feed, ends at the live numbers once the backlog drains.
    follower = Follower(engine, "amazon", every=None)
    follower.start()
    try:
        drained = wait_for(lambda: snapshot(engine, "amazon")[1], lambda p: max(p) == 0, timeout=SKUS / RATE + 60)
        assert max(drained) == 0, flow_log(engine)
        assert backlog_metric(engine, "amazon") == 0
        final = live(engine, "amazon", skus)
        assert wait_for(lambda: {sku: follower.numbers.get(sku) for sku in skus}, lambda seen: seen == final,
                        timeout=30) == final
        assert all(follower.numbers[sku] == expected for sku in not_yet_published)
    finally:
        stop_followers(follower)
