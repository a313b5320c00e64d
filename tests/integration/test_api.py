"""The query API as a real uvicorn process over a real Redis (contract §4)."""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from collections.abc import Iterator

import httpx
import orjson
import pytest

from atp.positions import NodePosition
from local_servers import LOOPBACK, start_redis
from projection import Keys, encode_position
from projection.connect import SyncClient, sync_client
from tests.support.api import ApiStartError, RunningApi, delete_prefix, serving_api, start_api, write_heartbeat

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def redis_url(any_redis_url: str) -> str:
    """This module runs on one Redis and again on a Redis Cluster."""
    return any_redis_url

PREFIX = f"apitest-{uuid.uuid4().hex[:8]}"
KEYS = Keys(PREFIX)
READ_KEY = secrets.token_urlsafe(24)
AMAZON_KEY = secrets.token_urlsafe(24)
ADMIN_KEY = secrets.token_urlsafe(24)
API_KEYS = {READ_KEY: ["read"], AMAZON_KEY: ["read:amazon"], ADMIN_KEY: ["admin"]}

RULES = {
    "version": "3f9c2a1b",
    "channels": {
        "amazon": {"nodes": ["dc-east"]},
        "store_pickup": {"nodes": ["store-001"]},
        "web": {"nodes": ["dc-east", "store-001"]},
    },
}
AS_OF_US = 1_795_428_900_123_456  # 2026-11-23T10:15:00.123456Z
SNAPSHOT_SKUS = [f"SNAP-{i:04d}" for i in range(1234)]


def position(node: str, on_hand: int, reserved: int, in_transit: int, unsellable: int, safety: int) -> str:
    return encode_position(
        NodePosition(node, on_hand, reserved, in_transit, unsellable, safety, max(0, on_hand - reserved - safety)),
    )


def write_sku(store: SyncClient, sku: str, fields: dict[str, str | int]) -> None:
    pipe = store.pipeline(transaction=False)
    pipe.hset(KEYS.sku(sku), mapping=fields)
    pipe.zadd(KEYS.skus, {sku: 0})
    pipe.execute()


def fresh_heartbeat(store: SyncClient, age_s: float = 0.0) -> None:
    write_heartbeat(store, KEYS, age_s)
    store.hset(KEYS.heartbeat, "1", 1)  # a long-gone worker: readiness goes by the newest


@pytest.fixture(scope="module")
def store(redis_url: str) -> Iterator[SyncClient]:
    client = sync_client(redis_url, decode_responses=True)
    client.set(KEYS.rules, orjson.dumps(RULES))
    client.set(KEYS.rules_version, RULES["version"])
    write_sku(client, "TV-55", {
        "v": 7, "a": AS_OF_US, "r": "3f9c2a1b", "c:web": 9, "c:amazon": 3, "c:store_pickup": 2,
        "n:store-001": position("store-001", 5, 1, 0, 1, 2), "n:dc-east": position("dc-east", 12, 2, 4, 0, 0),
        "n:undeclared-9": position("undeclared-9", 4, 0, 0, 0, 0),
    })
    write_sku(client, "HDMI/2M:b", {"v": 1, "a": AS_OF_US, "r": "3f9c2a1b", "c:web": 0,
                                    "n:dc-east": position("dc-east", -3, 0, 0, 0, 0)})
    pipe = client.pipeline(transaction=False)
    for i, sku in enumerate(SNAPSHOT_SKUS):
        pipe.zadd(KEYS.skus, {sku: 0})
        if i % 3:
            pipe.hset(KEYS.sku(sku), "c:web", i)  # the live number: what the snapshot shows
            pipe.hset(KEYS.published("web"), sku, i - 1)  # trailing behind in the throttle: not shown
    pipe.hset(KEYS.stats, mapping={
        "applied": 1200, "duplicate": 7, "rejected:not_json": 3, "rejected:bad_qty": 2,
        "undeclared_node_events": 5, "writes": 900, "consumer_lag:pos.sales:1": 42,
    })
    pipe.execute()
    fresh_heartbeat(client)
    yield client
    delete_prefix(client, PREFIX)
    client.close()


@pytest.fixture(scope="module")
def api(redis_url: str, store: SyncClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApi]:
    with serving_api(redis_url, PREFIX, API_KEYS, tmp_path_factory.mktemp("api")) as running:
        yield running


@pytest.fixture(scope="module")
def http(api: RunningApi) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.base_url, headers={"X-API-Key": READ_KEY}, timeout=5) as client:
        yield client


def error_of(response: httpx.Response) -> dict[str, str | None]:
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "field"}
    return body["error"]


class TestSingleSku:
    def test_all_channels_and_nodes_sorted_by_node(self, http: httpx.Client) -> None:
        response = http.get("/v1/availability/TV-55")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert body["sku"] == "TV-55"
        assert body["as_of"] == "2026-11-23T10:15:00.123Z"
        assert body["rules_version"] == "3f9c2a1b"
        assert body["channels"] == {"amazon": 3, "store_pickup": 2, "web": 9}
        assert [n["node"] for n in body["nodes"]] == ["dc-east", "store-001", "undeclared-9"]
        assert body["nodes"][1] == {"node": "store-001", "on_hand": 5, "reserved": 1, "in_transit": 0,
                                    "unsellable": 1, "safety_stock": 2, "atp": 2}

    def test_one_channel_shows_only_its_nodes(self, http: httpx.Client) -> None:
        body = http.get("/v1/availability/TV-55", params={"channel": "amazon"}).json()
        assert body["channels"] == {"amazon": 3}
        assert [n["node"] for n in body["nodes"]] == ["dc-east"]

    def test_sku_with_slash_and_colon_and_negative_on_hand(self, http: httpx.Client) -> None:
        body = http.get("/v1/availability/HDMI/2M:b").json()
        assert body["sku"] == "HDMI/2M:b"
        assert body["nodes"] == [{"node": "dc-east", "on_hand": -3, "reserved": 0, "in_transit": 0,
                                  "unsellable": 0, "safety_stock": 0, "atp": 0}]
        assert http.get("/v1/availability/HDMI%2F2M:b").json()["sku"] == "HDMI/2M:b"

    def test_channel_absent_from_the_hash_reads_zero(self, http: httpx.Client) -> None:
        assert http.get("/v1/availability/HDMI/2M:b", params={"channel": "amazon"}).json()["channels"] == {"amazon": 0}

    def test_unknown_sku_answers_404(self, http: httpx.Client) -> None:
        response = http.get("/v1/availability/NEVER-SEEN")
        assert response.status_code == 404
        assert error_of(response)["code"] == "unknown_sku"
        assert error_of(response)["field"] == "sku"

    @pytest.mark.parametrize("bad", ["bad sku", "x" * 65, "caf\u00e9"])
    def test_bad_sku_charset_answers_422_naming_sku(self, http: httpx.Client, bad: str) -> None:
        response = http.get(f"/v1/availability/{bad}")
        assert response.status_code == 422
        assert error_of(response)["field"] == "sku"
        assert error_of(response)["code"] == "invalid_sku"

    def test_unknown_channel_answers_422_naming_channel(self, http: httpx.Client) -> None:
        response = http.get("/v1/availability/TV-55", params={"channel": "nosuch"})
        assert response.status_code == 422
        assert error_of(response)["code"] == "unknown_channel"
        assert error_of(response)["field"] == "channel"

    def test_channel_added_to_the_rules_is_seen_without_restart(
        self, http: httpx.Client, store: SyncClient,
    ) -> None:
        rules = {**RULES, "channels": {**RULES["channels"], "ebay": {"nodes": ["dc-east"]}}}
        store.set(KEYS.rules, orjson.dumps(rules))
        try:
            time.sleep(0.15)  # the cache reloads on a miss at most every 0.1 s
            response = http.get("/v1/availability/TV-55", params={"channel": "ebay"})
            assert response.status_code == 200
            assert response.json()["channels"] == {"ebay": 0}
        finally:
            store.set(KEYS.rules, orjson.dumps(RULES))
            deadline = time.monotonic() + 3  # the cached copy lives up to 1 s; later tests expect it gone
            while http.get("/v1/availability/TV-55", params={"channel": "ebay"}).status_code != 422:
                assert time.monotonic() < deadline
                time.sleep(0.05)


class TestBatch:
    def test_known_and_unknown_skus_in_request_order(self, http: httpx.Client) -> None:
        skus = ["NOPE-1", "TV-55", "HDMI/2M:b", "NOPE-1"]
        response = http.post("/v1/availability/batch", json={"skus": skus})
        assert response.status_code == 200
        results = response.json()["results"]
        assert [r["sku"] for r in results] == skus
        assert [r["known"] for r in results] == [False, True, True, False]
        assert results[0]["channels"] == {"amazon": 0, "store_pickup": 0, "web": 0}
        assert results[0]["nodes"] == []
        single = http.get("/v1/availability/TV-55").json()
        single.pop("stale"), single.pop("stale_reason", None)  # freshness is per answer: a batch has it once
        assert results[1] == {"known": True, **single}

    def test_one_channel(self, http: httpx.Client) -> None:
        results = http.post("/v1/availability/batch", json={"skus": ["TV-55", "X"], "channel": "web"}).json()["results"]
        assert results[0]["channels"] == {"web": 9}
        assert [n["node"] for n in results[0]["nodes"]] == ["dc-east", "store-001"]
        assert results[1] == {"sku": "X", "known": False, "as_of": None, "rules_version": "3f9c2a1b",
                              "channels": {"web": 0}, "nodes": []}

    def test_thousand_skus_pass_and_one_more_answers_422_naming_skus(self, http: httpx.Client) -> None:
        skus = [f"SNAP-{i:04d}" for i in range(1000)]
        assert len(http.post("/v1/availability/batch", json={"skus": skus}).json()["results"]) == 1000
        response = http.post("/v1/availability/batch", json={"skus": [*skus, "ONE-MORE"]})
        assert response.status_code == 422
        assert error_of(response)["field"] == "skus"
        assert error_of(response)["code"] == "too_many_skus"

    def test_bad_sku_in_the_list_is_named_by_index(self, http: httpx.Client) -> None:
        response = http.post("/v1/availability/batch", json={"skus": ["TV-55", "ok", "", "b d"]})
        assert response.status_code == 422
        assert error_of(response)["field"] == "skus[2]"

    def test_empty_list_and_unknown_channel_and_unknown_field(self, http: httpx.Client) -> None:
        assert error_of(http.post("/v1/availability/batch", json={"skus": []}))["field"] == "skus"
        response = http.post("/v1/availability/batch", json={"skus": ["TV-55"], "channel": "nosuch"})
        assert (response.status_code, error_of(response)["field"]) == (422, "channel")
        response = http.post("/v1/availability/batch", json={"skus": ["TV-55"], "chanel": "web"})
        assert (response.status_code, error_of(response)["field"]) == (422, "chanel")

    def test_malformed_json_names_body(self, http: httpx.Client) -> None:
        response = http.post(
            "/v1/availability/batch", content=b'{"skus": [', headers={"content-type": "application/json"},
        )
        assert response.status_code == 400
        assert error_of(response) | {"message": ""} == {"code": "malformed_body", "message": "", "field": "body"}
        response = http.post("/v1/availability/batch", json=["TV-55"])
        assert (response.status_code, error_of(response)["field"]) == (422, "body")


class TestSnapshot:
    def test_paging_returns_every_sku_exactly_once(self, http: httpx.Client, store: SyncClient) -> None:
        seen: list[str] = []
        values: dict[str, int] = {}
        cursor: str | None = None
        pages = 0
        while True:
            params: dict[str, str | int] = {"limit": 100} | ({"cursor": cursor} if cursor else {})
            response = http.get("/v1/channels/web/snapshot", params=params)
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["channel"] == "web" and body["rules_version"] == "3f9c2a1b"
            assert len(body["items"]) <= 100
            seen += [item["sku"] for item in body["items"]]
            values |= {item["sku"]: item["available"] for item in body["items"]}
            pages += 1
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert seen == sorted(store.zrange(KEYS.skus, 0, -1))
        assert len(seen) == len(set(seen)) == len(SNAPSHOT_SKUS) + 2
        assert pages == 13
        # the live numbers, not the feed's trailing ones; TV-55's delta never went out, it shows all the same
        assert values["SNAP-0000"] == 0 and values["SNAP-0004"] == 4 and values["TV-55"] == 9

    def test_malformed_cursor_answers_422_naming_cursor(self, http: httpx.Client) -> None:
        not_a_sku = base64.urlsafe_b64encode(b"bad sku").rstrip(b"=").decode()
        for cursor in ["!!!", "a", not_a_sku]:
            response = http.get("/v1/channels/web/snapshot", params={"cursor": cursor})
            assert response.status_code == 422, cursor
            assert error_of(response)["field"] == "cursor"

    def test_limit_bounds_and_unknown_channel(self, http: httpx.Client) -> None:
        assert error_of(http.get("/v1/channels/web/snapshot", params={"limit": 5001}))["field"] == "limit"
        assert error_of(http.get("/v1/channels/web/snapshot", params={"limit": 0}))["field"] == "limit"
        response = http.get("/v1/channels/nosuch/snapshot")
        assert (response.status_code, error_of(response)["code"]) == (422, "unknown_channel")


class TestAuth:
    def test_missing_and_wrong_key_answer_401(self, api: RunningApi) -> None:
        for headers in ({}, {"X-API-Key": "not-a-configured-key"}, {"X-API-Key": READ_KEY + "x"}):
            response = httpx.get(f"{api.base_url}/v1/availability/TV-55", headers=headers)
            assert response.status_code == 401
            assert error_of(response)["code"] == "unauthorized"
            assert "X-API-Key" in response.headers["www-authenticate"]

    def test_401_comes_before_validation(self, api: RunningApi) -> None:
        assert httpx.get(f"{api.base_url}/v1/availability/bad sku").status_code == 401
        assert httpx.post(f"{api.base_url}/v1/availability/batch", json={"skus": []}).status_code == 401

    def test_channel_key_reads_only_its_channel(self, api: RunningApi) -> None:
        with httpx.Client(base_url=api.base_url, headers={"X-API-Key": AMAZON_KEY}) as amazon:
            assert amazon.get("/v1/availability/TV-55", params={"channel": "amazon"}).status_code == 200
            for response in (
                amazon.get("/v1/availability/TV-55", params={"channel": "web"}),
                amazon.get("/v1/availability/TV-55"),
                amazon.post("/v1/availability/batch", json={"skus": ["TV-55"]}),
                amazon.post("/v1/availability/batch", json={"skus": ["TV-55"], "channel": "web"}),
                amazon.get("/v1/channels/web/snapshot"),
                amazon.get("/metrics"),
            ):
                assert response.status_code == 403, response.request.url
                assert error_of(response)["code"] == "forbidden"
                assert "read" in str(error_of(response)["message"])
            assert amazon.post("/v1/availability/batch", json={"skus": ["TV-55"], "channel": "amazon"}).is_success
            assert amazon.get("/v1/channels/amazon/snapshot", params={"limit": 1}).is_success

    def test_admin_reads_everything(self, api: RunningApi) -> None:
        with httpx.Client(base_url=api.base_url, headers={"X-API-Key": ADMIN_KEY}) as admin:
            assert admin.get("/v1/availability/TV-55").is_success
            assert admin.get("/metrics").is_success

    def test_health_needs_no_key(self, api: RunningApi) -> None:
        response = httpx.get(f"{api.base_url}/healthz")
        assert (response.status_code, response.json()) == (200, {"status": "ok"})


class TestOperations:
    def test_readyz_fails_once_the_heartbeat_is_old(self, api: RunningApi, store: SyncClient) -> None:
        fresh_heartbeat(store)
        response = httpx.get(f"{api.base_url}/readyz")
        assert response.status_code == 200, response.text
        assert response.json()["ready"] is True
        assert set(response.json()["checks"]) == {"redis", "rules", "flow"}
        fresh_heartbeat(store, age_s=60)
        try:
            response = httpx.get(f"{api.base_url}/readyz")
            assert response.status_code == 503
            body = response.json()
            assert body["ready"] is False
            assert body["checks"]["flow"]["ok"] is False
            assert body["checks"]["redis"]["ok"] is True and body["checks"]["rules"]["ok"] is True
        finally:
            fresh_heartbeat(store)

    def test_metrics_show_flow_counters_and_requests(self, http: httpx.Client) -> None:
        http.get("/v1/availability/TV-55")
        response = http.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        text = response.text
        assert 'avail_flow_events_total{status="applied"} 1200.0' in text
        assert 'avail_flow_events_total{status="duplicate"} 7.0' in text
        assert 'avail_flow_events_rejected_total{code="not_json"} 3.0' in text
        assert 'avail_flow_events_rejected_total{code="bad_qty"} 2.0' in text
        assert "avail_flow_undeclared_node_events_total 5.0" in text
        assert "avail_flow_stats_up 1.0" in text
        assert 'avail_flow_consumer_lag{partition="1",topic="pos.sales"} 42.0' in text
        assert 'avail_rules_info{version="3f9c2a1b"} 1.0' in text
        assert 'avail_api_requests_total{method="GET",route="/v1/availability/{sku:path}",status="200"}' in text
        assert 'avail_api_request_duration_seconds_bucket{le="0.005",method="GET",route="/v1/availability/' in text

    def test_metrics_need_a_key(self, api: RunningApi) -> None:
        assert httpx.get(f"{api.base_url}/metrics").status_code == 401

    def test_the_overview_shows_rules_rejects_incidents_and_totals(self, api: RunningApi, store: SyncClient) -> None:
        refused = {"at": "2026-12-06T01:00:00+00:00", "kept_version": "3f9c2a1b",
                   "problems": ["rules.yaml:12 channels.amazon.percent: must be between 0 and 100, got 120"]}
        rejects = [orjson.dumps({"at_us": i, "topic": "pos.sales", "partition": 0, "offset": i, "error": "not_json",
                                 "detail": "not valid JSON", "field": None}) for i in range(3)]
        pipe = store.pipeline(transaction=False)
        pipe.set(KEYS.rules_error, orjson.dumps(refused))
        pipe.lpush(KEYS.rejects, *rejects)
        pipe.hset(KEYS.stats, "rules_reload_failed", 1)
        pipe.execute()
        try:
            admin = {"X-API-Key": ADMIN_KEY}
            answer = httpx.get(f"{api.base_url}/v1/ops/overview", headers=admin, params={"rejects": 2}).json()
            assert answer["rules"] == {"version": "3f9c2a1b", "reloads": 0, "reload_failures": 1, "refused": refused}
            assert [r["offset"] for r in answer["rejects"]] == [2, 1], "newest first, as many as asked"
            assert answer["totals"] == {"applied": 1200, "duplicate": 7, "rejected": 5}  # the store's counters
            assert answer["dlq_export_command"].startswith("avail dlq export")
            assert set(answer["freshness"]) == {"stale", "reason", "detail"}
            assert isinstance(answer["series"], list)
            none = httpx.get(f"{api.base_url}/v1/ops/overview", headers=admin, params={"rejects": 0}).json()
            assert none["rejects"] == []
            assert httpx.get(f"{api.base_url}/v1/ops/overview", headers={"X-API-Key": READ_KEY}).status_code == 403
            assert error_of(httpx.get(f"{api.base_url}/v1/ops/overview", headers=admin,
                                      params={"rejects": 101}))["field"] == "rejects"
        finally:
            store.delete(KEYS.rules_error, KEYS.rejects)
            store.hdel(KEYS.stats, "rules_reload_failed")

    def test_the_operations_page_is_served_without_a_key_and_loads_nothing_from_elsewhere(
        self, api: RunningApi,
    ) -> None:
        page = httpx.get(f"{api.base_url}/ui")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        text = page.text.replace('"http://www.w3.org/2000/svg"', "")  # a namespace name, never fetched
        assert "http://" not in text and "https://" not in text and "//cdn" not in text

    def test_openapi_declares_the_api_key_scheme(self, api: RunningApi) -> None:
        spec = httpx.get(f"{api.base_url}/openapi.json").json()
        assert spec["components"]["securitySchemes"]["ApiKey"] == {
            "type": "apiKey", "in": "header", "name": "X-API-Key",
            "description": spec["components"]["securitySchemes"]["ApiKey"]["description"],
        }


def test_redis_down_answers_503_json(tmp_path_factory: pytest.TempPathFactory) -> None:
    server = start_redis()
    url = f"redis://{LOOPBACK}:{server.port}/0"
    running: RunningApi | None = None
    try:
        seed = sync_client(url, decode_responses=True)
        seed.hset(KEYS.sku("TV-55"), mapping={"v": 1, "a": AS_OF_US, "r": "x"})
        seed.close()
        running = start_api(url, PREFIX, API_KEYS, log_dir=tmp_path_factory.mktemp("api-down"))
        headers = {"X-API-Key": READ_KEY}
        assert httpx.get(f"{running.base_url}/v1/availability/TV-55", headers=headers).status_code == 200
        server.stop()
        started = time.monotonic()
        response = httpx.get(f"{running.base_url}/v1/availability/TV-55", headers=headers, timeout=10)
        assert response.status_code == 503
        assert error_of(response)["code"] == "redis_unavailable"
        assert time.monotonic() - started < 3
        response = httpx.post(f"{running.base_url}/v1/availability/batch", json={"skus": ["A"]}, headers=headers)
        assert (response.status_code, error_of(response)["code"]) == (503, "redis_unavailable")
        ready = httpx.get(f"{running.base_url}/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["redis"]["ok"] is False
        metrics = httpx.get(f"{running.base_url}/metrics", headers=headers)
        assert metrics.status_code == 200 and "avail_flow_stats_up 0.0" in metrics.text
    finally:
        if running is not None:
            running.stop()
        server.stop()


def test_refuses_to_start_without_keys(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    with pytest.raises(ApiStartError) as refused:
        start_api(redis_url, PREFIX, None, log_dir=tmp_path_factory.mktemp("api-nokeys"))
    assert "AVAIL_API_KEYS" in str(refused.value)
    assert "--insecure-no-auth" in str(refused.value)


def test_insecure_no_auth_serves_without_a_key_and_warns(
    redis_url: str, store: SyncClient, tmp_path_factory: pytest.TempPathFactory,
) -> None:
    running = start_api(redis_url, PREFIX, None, extra_env={"AVAIL_INSECURE_NO_AUTH": "true"},
                        log_dir=tmp_path_factory.mktemp("api-insecure"))
    try:
        assert httpx.get(f"{running.base_url}/v1/availability/TV-55").status_code == 200
        assert httpx.get(f"{running.base_url}/metrics").status_code == 200
    finally:
        running.stop()
    assert "WARNING: AUTHENTICATION IS OFF" in running.log()
