"""The schedule and promise routes (contract section 7) against a real Redis: the real API process,
and the app in process with its clock set a second before and after midnight."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from atp.supply import DAY, Arrival, utc_day
from availability_api import create_app
from engine_settings import ApiSettings
from projection import Keys, rules_document
from projection.codec import encode_arrivals
from projection.connect import SyncClient, sync_client
from rulebook import published_rules
from tests.support.api import RunningApi, delete_prefix, serving_api, write_heartbeat

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def redis_url(any_redis_url: str) -> str:
    """This module runs on one Redis and again on a Redis Cluster."""
    return any_redis_url


PREFIX = f"promisetest-{uuid.uuid4().hex[:8]}"
KEYS = Keys(PREFIX)
READ_KEY = secrets.token_urlsafe(24)
WEB_KEY = secrets.token_urlsafe(24)
AMAZON_KEY = secrets.token_urlsafe(24)
API_KEYS = {READ_KEY: ["read"], WEB_KEY: ["read:web"], AMAZON_KEY: ["read:amazon"]}

SOURCES = {
    "rules.yaml": """\
nodes:
  - {id: dc-east, type: dc}
  - {id: store-001, type: store, tags: [ship_from_store]}
promise:
  horizon_days: 30
  lead_days: {dc: 1}
channels:
  web:
    nodes: {types: [dc], tags: [ship_from_store]}
    percent: 80
    buffer: 2
    future_supply: true
  amazon:
    nodes: {types: [dc]}
""",
}
RULES = published_rules(SOURCES)
assert RULES is not None
VERSION = RULES.version

T0 = time.time_ns() // 1000 // DAY * DAY
"""Midnight (UTC) starting the day the module loads. Every line is expected two days on or later, so the
dates below hold even when midnight passes during the run: only ``today`` moves."""
D0 = utc_day(T0)
HOUR = DAY // 24


def day(n: int) -> str:
    return (D0 + timedelta(days=n)).isoformat()


SKUS: dict[str, dict[str, str | int]] = {
    # the worked example: a pre-order of 30 for web at no node; a PO line of 100 at dc-east on day 2
    "PRE-1": {"c:web": 0, "c:amazon": 0, "u:web": 30,
              "s": encode_arrivals([Arrival("dc-east", 100, T0 + 2 * DAY + 14 * HOUR)])},
    # stock on hand and nothing on its way: flat
    "STOCK-1": {"c:web": 30, "c:amazon": 40, "n:dc-east": "40,0,0,0,0,40"},  # 40 → 32 − 2
    # on hand 10 + 3 (web 13 → 10 − 2 = 8); 5 at the store on day 5 (no lead): 18 → 12; 20 at the DC on day 9
    # (+1 lead): 38 → 28; amazon has no future_supply: its 10 every day
    "MIX-1": {"c:web": 8, "c:amazon": 10, "n:dc-east": "10,0,0,0,0,10", "n:store-001": "3,0,0,0,0,3",
              "s": encode_arrivals([Arrival("store-001", 5, T0 + 5 * DAY), Arrival("dc-east", 20, T0 + 9 * DAY)])},
    # past the horizon of 30 days: left out
    "FAR-1": {"c:web": 0, "c:amazon": 0, "s": encode_arrivals([Arrival("store-001", 9, T0 + 40 * DAY)])},
}
EXPECTED = {  # web: (today's number, [(day, shown)])
    "PRE-1": (0, [(day(3), 54)]),
    "STOCK-1": (30, []),
    "MIX-1": (8, [(day(5), 12), (day(10), 28)]),
    "FAR-1": (0, []),
    "NEVER-SEEN": (0, []),
}


def publish_rules(store: SyncClient, keys: Keys) -> None:
    """What a flow publishes when it loads the rules (``dataflows/rules_reload.py``)."""
    pipe = store.pipeline(transaction=True)  # engine-wide keys: one slot
    pipe.set(keys.rules_source, orjson.dumps({"version": VERSION, "sources": SOURCES}))
    pipe.set(keys.rules, orjson.dumps(rules_document(RULES)))
    pipe.set(keys.rules_version, VERSION)
    pipe.execute()


def write_sku(store: SyncClient, keys: Keys, sku: str, fields: dict[str, str | int]) -> None:
    pipe = store.pipeline(transaction=False)
    pipe.hset(keys.sku(sku), mapping={"v": 1, "a": T0 + HOUR, "r": VERSION} | fields)
    pipe.zadd(keys.skus, {sku: 0})
    pipe.execute()


@pytest.fixture(scope="module")
def store(redis_url: str) -> Iterator[SyncClient]:
    client = sync_client(redis_url, decode_responses=True)
    publish_rules(client, KEYS)
    for sku, fields in SKUS.items():
        write_sku(client, KEYS, sku, fields)
    write_heartbeat(client, KEYS)
    yield client
    delete_prefix(client, PREFIX)
    client.close()


@pytest.fixture(scope="module")
def api(redis_url: str, store: SyncClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApi]:
    with serving_api(redis_url, PREFIX, API_KEYS, tmp_path_factory.mktemp("api-promise")) as running:
        yield running


@pytest.fixture(scope="module")
def http(api: RunningApi) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.base_url, headers={"X-API-Key": READ_KEY}, timeout=10) as client:
        yield client


def error_of(response: httpx.Response) -> dict[str, str | None]:
    assert response.headers["content-type"] == "application/json", response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "field"}, body
    return body["error"]


def fresh(response: httpx.Response) -> dict[str, Any]:
    """The answer without its freshness fields, once they are checked to be there (this data has no flow)."""
    body: dict[str, Any] = response.json()
    assert isinstance(body.pop("stale"), bool) and response.headers["x-availability-stale"]
    body.pop("stale_reason", None)
    return body


def today_of(body: dict[str, Any]) -> str:
    today = body["today"]
    assert today in (day(0), day(1)), today  # the API's clock: the day the module loaded, or midnight passed
    return str(today)


class TestSchedule:
    @pytest.mark.parametrize("sku", sorted(EXPECTED))
    def test_today_and_each_change_after_it(self, http: httpx.Client, sku: str) -> None:
        response = http.get(f"/v1/availability/{sku}/schedule", params={"channel": "web"})

        assert response.status_code == 200, response.text
        body = response.json()
        available, changes = EXPECTED[sku]
        assert fresh(response) == {
            "sku": sku, "channel": "web", "rules_version": VERSION,
            "as_of": None if sku == "NEVER-SEEN" else f"{day(0)}T01:00:00.000Z", "today": today_of(body),
            "horizon_days": 30, "available": available,
            "schedule": [{"date": d, "available": a} for d, a in changes],
        }

    @pytest.mark.parametrize("sku", sorted(EXPECTED))
    def test_today_is_what_the_availability_route_shows(self, http: httpx.Client, sku: str) -> None:
        for channel in ("web", "amazon"):
            schedule = http.get(f"/v1/availability/{sku}/schedule", params={"channel": channel}).json()
            if sku == "NEVER-SEEN":
                assert http.get(f"/v1/availability/{sku}", params={"channel": channel}).status_code == 404
                assert schedule["available"] == 0
                continue
            shown = http.get(f"/v1/availability/{sku}", params={"channel": channel}).json()["channels"][channel]
            assert schedule["available"] == shown

    def test_a_channel_without_future_supply_is_flat(self, http: httpx.Client) -> None:
        body = http.get("/v1/availability/MIX-1/schedule", params={"channel": "amazon"}).json()

        assert (body["available"], body["schedule"], body["horizon_days"]) == (10, [], 30)

    def test_unknown_and_missing_channel_name_the_channel(self, http: httpx.Client) -> None:
        unknown = http.get("/v1/availability/PRE-1/schedule", params={"channel": "ebay"})
        assert unknown.status_code == 422
        assert error_of(unknown)["code"] == "unknown_channel" and error_of(unknown)["field"] == "channel"
        missing = http.get("/v1/availability/PRE-1/schedule")
        assert missing.status_code == 422 and error_of(missing)["field"] == "channel"

    def test_a_bad_sku_names_the_sku(self, http: httpx.Client) -> None:
        response = http.get("/v1/availability/bad%20sku/schedule", params={"channel": "web"})
        assert response.status_code == 422 and error_of(response)["field"] == "sku"


LINES = [  # (sku, qty) -> (date: a day number, "today" or None; available)
    (("PRE-1", 10), (3, 54)),
    (("PRE-1", 54), (3, 54)),
    (("PRE-1", 55), (None, 54)),
    (("MIX-1", 8), ("today", 8)),
    (("MIX-1", 9), (5, 12)),
    (("MIX-1", 28), (10, 28)),
    (("MIX-1", 29), (None, 28)),
    (("STOCK-1", 30), ("today", 30)),
    (("STOCK-1", 31), (None, 30)),
    (("FAR-1", 1), (None, 0)),
    (("NEVER-SEEN", 1), (None, 0)),
    (("PRE-1", 10), (3, 54)),  # a repeat is answered on its own, not added up
]


class TestPromise:
    def test_each_line_gets_its_earliest_date(self, http: httpx.Client) -> None:
        lines = [{"sku": sku, "qty": qty} for (sku, qty), _ in LINES]

        response = http.post("/v1/availability/promise", json={"channel": "web", "lines": lines})

        assert response.status_code == 200, response.text
        body = fresh(response)
        today = today_of(body)
        assert set(body) == {"channel", "rules_version", "today", "results"}
        assert (body["channel"], body["rules_version"]) == ("web", VERSION)
        assert body["results"] == [
            {"sku": sku, "qty": qty, "available": available,
             "date": today if when == "today" else day(when) if isinstance(when, int) else None}
            for (sku, qty), (when, available) in LINES
        ]

    def test_the_dates_agree_with_the_schedule(self, http: httpx.Client) -> None:
        schedule = http.get("/v1/availability/MIX-1/schedule", params={"channel": "web"}).json()
        steps = [(schedule["today"], schedule["available"])]
        steps += [(step["date"], step["available"]) for step in schedule["schedule"]]
        lines = [{"sku": "MIX-1", "qty": qty} for qty in range(1, 31)]

        results = http.post("/v1/availability/promise", json={"channel": "web", "lines": lines}).json()["results"]

        for result in results:
            first = next(((d, a) for d, a in steps if a >= result["qty"]), (None, steps[-1][1]))
            assert (result["date"], result["available"]) == first, result

    def test_a_channel_without_future_supply_promises_stock_on_hand_only(self, http: httpx.Client) -> None:
        lines = [{"sku": "MIX-1", "qty": 10}, {"sku": "MIX-1", "qty": 11}, {"sku": "PRE-1", "qty": 1}]

        body = http.post("/v1/availability/promise", json={"channel": "amazon", "lines": lines}).json()

        assert [(r["date"], r["available"]) for r in body["results"]] == [(body["today"], 10), (None, 10), (None, 0)]

    def test_a_thousand_lines_over_every_slot_group_in_one_call(self, http: httpx.Client) -> None:
        skus = [*EXPECTED, *(f"MANY-{i:04d}" for i in range(995))]
        lines = [{"sku": sku, "qty": 1} for sku in skus]

        response = http.post("/v1/availability/promise", json={"channel": "web", "lines": lines})

        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert [r["sku"] for r in results] == skus
        assert [r["available"] for r in results[:5]] == [54, 30, 8, 0, 0]  # PRE-1 from day 3, the rest today
        assert {(r["date"], r["available"]) for r in results[5:]} == {(None, 0)}

    @pytest.mark.parametrize(("body", "status", "code", "field"), [
        ({"channel": "ebay", "lines": [{"sku": "PRE-1", "qty": 1}]}, 422, "unknown_channel", "channel"),
        ({"lines": [{"sku": "PRE-1", "qty": 1}]}, 422, "invalid_request", "channel"),
        ({"channel": "web", "lines": []}, 422, "invalid_request", "lines"),
        ({"channel": "web", "lines": [{"sku": "PRE-1", "qty": 1}] * 1001}, 422, "too_many_lines", "lines"),
        ({"channel": "web", "lines": [{"sku": "PRE-1", "qty": 1}] * 3 + [{"sku": "PRE-1", "qty": 0}]}, 422,
         "invalid_request", "lines[3].qty"),
        ({"channel": "web", "lines": [{"sku": "PRE-1", "qty": 1.5}]}, 422, "invalid_request", "lines[0].qty"),
        ({"channel": "web", "lines": [{"sku": "PRE 1", "qty": 1}]}, 422, "invalid_sku", "lines[0].sku"),
        ({"channel": "web", "lines": [{"sku": "PRE-1", "qty": 1, "x": 1}]}, 422, "unknown_field", "lines[0].x"),
        ({"channel": "web", "lines": [{"qty": 1}]}, 422, "invalid_request", "lines[0].sku"),
        ({"channel": "web", "lines": "PRE-1"}, 422, "invalid_request", "lines"),
    ])
    def test_a_bad_body_names_the_field(
        self, http: httpx.Client, body: dict[str, Any], status: int, code: str, field: str,
    ) -> None:
        response = http.post("/v1/availability/promise", json=body)

        assert response.status_code == status, response.text
        assert (error_of(response)["code"], error_of(response)["field"]) == (code, field)

    def test_malformed_json_names_the_body(self, http: httpx.Client) -> None:
        response = http.post("/v1/availability/promise", content=b'{"channel": "web", "lines": [',
                             headers={"content-type": "application/json"})

        assert response.status_code == 400 and error_of(response)["field"] == "body"


class TestScopes:
    @pytest.mark.parametrize(("key", "channel", "status"), [
        (WEB_KEY, "web", 200), (WEB_KEY, "amazon", 403), (AMAZON_KEY, "web", 403), (AMAZON_KEY, "amazon", 200),
        (READ_KEY, "amazon", 200), (None, "web", 401), ("not-a-key-0123456789", "web", 401),
    ], ids=["web-key-web", "web-key-amazon", "amazon-key-web", "amazon-key-amazon", "read-key", "no-key",
            "unknown-key"])  # the keys are random: ids every test process collects alike
    def test_a_channel_key_reads_only_its_channel(
        self, api: RunningApi, key: str | None, channel: str, status: int,
    ) -> None:
        headers = {"X-API-Key": key} if key else {}
        with httpx.Client(base_url=api.base_url, headers=headers, timeout=5) as http:
            schedule = http.get("/v1/availability/PRE-1/schedule", params={"channel": channel})
            promise = http.post("/v1/availability/promise",
                                json={"channel": channel, "lines": [{"sku": "PRE-1", "qty": 1}]})

        assert (schedule.status_code, promise.status_code) == (status, status)
        if status == 403:
            assert error_of(schedule)["code"] == error_of(promise)["code"] == "forbidden"


# -- the clock: answers follow the UTC date with no event --------------------------------

MIDNIGHT = T0 + 400 * DAY
"""A midnight far from now, so no real one interferes; the app's clock is set around it."""
M = utc_day(MIDNIGHT)
ROLL = {"c:web": 0, "c:amazon": 0, "s": encode_arrivals([
    Arrival("store-001", 5, MIDNIGHT + 12 * HOUR),  # expected on M, at a store (no lead time)
    Arrival("store-001", 7, MIDNIGHT + 30 * DAY),  # on M + 30: one day past the horizon until midnight
])}


def in_process(redis_url: str, clock: Callable[[], float], requests: Callable[[httpx.AsyncClient], Any]) -> Any:
    """Runs ``requests`` against the app built in this process with ``clock``, inside its lifespan."""
    settings = ApiSettings(redis_url=SecretStr(redis_url), redis_prefix=PREFIX,
                           api_keys={SecretStr(READ_KEY): ["read"]})
    app = create_app(settings, clock=clock)

    async def main() -> Any:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://in-process",
                                         headers={"X-API-Key": READ_KEY}) as client:
                return await requests(client)

    return asyncio.run(main())


def test_at_midnight_today_the_schedule_and_the_dates_move_on_without_any_write(
    redis_url: str, store: SyncClient,
) -> None:
    write_sku(store, KEYS, "ROLL-1", ROLL)
    now = [MIDNIGHT / 1e6 - 1]

    async def both_sides(client: httpx.AsyncClient) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        answers = []
        for at in (MIDNIGHT / 1e6 - 1, MIDNIGHT / 1e6 + 1):
            now[0] = at
            schedule = await client.get("/v1/availability/ROLL-1/schedule", params={"channel": "web"})
            promise = await client.post("/v1/availability/promise", json={"channel": "web", "lines": [
                {"sku": "ROLL-1", "qty": 2}, {"sku": "ROLL-1", "qty": 7},
            ]})
            assert schedule.status_code == promise.status_code == 200, (schedule.text, promise.text)
            answers.append((schedule.json(), promise.json()))
        return answers

    (before, promised_before), (after, promised_after) = in_process(redis_url, lambda: now[0], both_sides)

    def on(n: int) -> str:
        return (M + timedelta(days=n)).isoformat()

    # 5 at the store: 5 → 4 − 2 = 2; with the 7 more: 12 → 9 − 2 = 7
    assert (before["today"], before["available"], before["schedule"]) == (on(-1), 0, [{"date": on(0), "available": 2}])
    # M is today now, and stock not here is never promised for today: the 5 move to tomorrow; the horizon
    # reaches M + 30, where the 7 join
    assert (after["today"], after["available"], after["schedule"]) == (
        on(0), 0, [{"date": on(1), "available": 2}, {"date": on(30), "available": 7}])
    assert [(r["date"], r["available"]) for r in promised_before["results"]] == [(on(0), 2), (None, 2)]
    assert [(r["date"], r["available"]) for r in promised_after["results"]] == [(on(1), 2), (on(30), 7)]
    assert promised_before["today"] == on(-1) and promised_after["today"] == on(0)
