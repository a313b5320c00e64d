"""Per-key request limits are shared by every API process (contract section 6), on one Redis and on a cluster.

Two API processes serve one engine. A partner key at 20 requests a second gets 20 in
all, whichever process answers (a per-process limit would let 40 through); a storefront
key without ``rate_per_s`` is never refused.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from projection import Keys
from projection.connect import sync_client
from tests.support.api import RunningApi, delete_prefix, serving_api, write_heartbeat

pytestmark = pytest.mark.integration

PREFIX = f"limits-{secrets.token_hex(4)}"
KEYS = Keys(PREFIX)
PARTNER = secrets.token_urlsafe(24)
STOREFRONT = secrets.token_urlsafe(24)
API_KEYS = {PARTNER: {"scopes": ["read"], "rate_per_s": 20}, STOREFRONT: ["read"]}
RULES = {"version": "l1", "channels": {"web": {"nodes": ["dc-east"]}}}


@pytest.fixture(scope="module")
def redis_url(any_redis_url: str) -> str:
    """This module runs on one Redis and again on a Redis Cluster."""
    return any_redis_url


@pytest.fixture(scope="module")
def apis(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RunningApi]]:
    store = sync_client(redis_url, decode_responses=True)
    store.set(KEYS.rules, orjson.dumps(RULES))
    store.hset(KEYS.sku("TV-55"), mapping={"v": 1, "a": 1, "r": "l1", "c:web": 7, "n:dc-east": "7,0,0,0,0,7"})
    write_heartbeat(store, KEYS)
    logs = Path(tmp_path_factory.mktemp("limits"))
    (logs / "a").mkdir()
    (logs / "b").mkdir()
    try:
        with serving_api(redis_url, PREFIX, API_KEYS, logs / "a") as first, \
                serving_api(redis_url, PREFIX, API_KEYS, logs / "b") as second:
            yield [first, second]
    finally:
        delete_prefix(store, PREFIX)
        store.close()


async def burst(apis: list[RunningApi], key: str, count: int) -> tuple[list[tuple[int, int]], float]:
    """``count`` requests at once, alternating between the processes: (process, status) each, and the time taken."""
    async with httpx.AsyncClient(headers={"X-API-Key": key}, timeout=10) as client:
        started = time.monotonic()
        answers = await asyncio.gather(*(
            client.get(f"{apis[i % len(apis)].base_url}/v1/availability/TV-55") for i in range(count)
        ))
        return [(i % len(apis), answer.status_code) for i, answer in enumerate(answers)], time.monotonic() - started


def test_a_limited_key_gets_its_rate_across_both_processes_not_per_process(apis: list[RunningApi]) -> None:
    time.sleep(1.1)  # nothing of an earlier run left in the window
    answers, took = asyncio.run(burst(apis, PARTNER, 80))
    assert took < 1.0, f"the burst took {took:.2f} s: longer than the window, the count would not say anything"
    statuses = Counter(status for _, status in answers)
    assert statuses == {200: 20, 429: 60}
    # Which process serves the first 20 depends on which answers first; that each refuses
    # some of its 40 while 20 in all got through is what shows one shared count.
    refused_by = Counter(process for process, status in answers if status == 429)
    assert set(refused_by) == {0, 1}, "both processes refused from the one shared count"


def test_a_key_without_a_rate_is_never_refused(apis: list[RunningApi]) -> None:
    answers, _ = asyncio.run(burst(apis, STOREFRONT, 300))
    assert Counter(status for _, status in answers) == {200: 300}


def test_a_refused_request_says_when_to_retry(apis: list[RunningApi]) -> None:
    time.sleep(1.1)
    answers, _ = asyncio.run(burst(apis, PARTNER, 25))
    assert sum(1 for _, status in answers if status == 429) == 5
    refused = httpx.get(f"{apis[1].base_url}/v1/availability/TV-55", headers={"X-API-Key": PARTNER})
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert refused.headers["retry-after"] == "1"
