"""API hardening (issue 7): per-key rate limit, body limit, scopes on every route, keys kept out
of the logs, schemathesis finding no 5xx, and answers flagged when their data is not fresh.

Every test talks to the API as a real uvicorn process over a real Redis.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, settings
from pydantic import SecretStr
from schemathesis import Case
from schemathesis.specs.openapi.checks import positive_data_acceptance
from starlette.routing import BaseRoute, Route

from availability_api import create_app
from engine_settings import ApiSettings
from local_servers import LOOPBACK, free_port
from projection import Keys
from tests.support.api import (
    ApiStartError,
    Grant,
    RunningApi,
    api_command,
    api_env,
    delete_prefix,
    serving_api,
    write_heartbeat,
)

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

PREFIX = f"hardening-{uuid.uuid4().hex[:8]}"
KEYS = Keys(PREFIX)
READ_KEY = secrets.token_urlsafe(24)
AMAZON_KEY = secrets.token_urlsafe(24)
ADMIN_KEY = secrets.token_urlsafe(24)
API_KEYS = {READ_KEY: ["read"], AMAZON_KEY: ["read:amazon"], ADMIN_KEY: ["admin"]}
RULES = {"version": "hard1", "channels": {"amazon": {"nodes": ["dc-east"]}, "web": {"nodes": ["dc-east"]}}}

# The app as built in-process: its routes and its OpenAPI spec are what the real process serves.
APP = create_app(ApiSettings(redis_url=SecretStr("redis://127.0.0.1:1/0"), api_keys={SecretStr("x" * 16): ["read"]}))
SPEC = APP.openapi()
# /ui holds no data: the page asks for the key and sends it with each of its requests
PUBLIC = frozenset({"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/ui"})
"""Routes anyone may call: liveness, readiness, and the API's documentation (it holds no data)."""


RULES_YAML = """\
nodes:
  - {id: dc-east, type: dc}
channels:
  web:
    nodes: {types: [dc]}
  amazon:
    nodes: {types: [dc]}
    percent: 50
"""
"""The files behind RULES, as a flow publishes them (the explain route reads them)."""


def now_us() -> int:
    return time.time_ns() // 1000


def seed(store: redis.Redis, keys: Keys) -> None:
    pipe = store.pipeline(transaction=False)
    pipe.set(keys.rules, orjson.dumps(RULES))
    pipe.set(keys.rules_source, orjson.dumps({"version": RULES["version"], "sources": {"rules.yaml": RULES_YAML}}))
    for sku in ("TV-55", "HDMI-2M"):
        pipe.hset(keys.sku(sku), mapping={"v": 1, "a": now_us(), "r": "hard1", "c:web": 3, "c:amazon": 1,
                                          "n:dc-east": "5,1,0,0,0,4"})
        pipe.zadd(keys.skus, {sku: 0})
    pipe.execute()
    write_heartbeat(store, keys)


def error_of(response: httpx.Response) -> dict[str, str | None]:
    assert response.headers["content-type"] == "application/json", response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "field"}, body
    return body["error"]


@pytest.fixture(scope="module")
def store(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    seed(client, KEYS)
    yield client
    delete_prefix(client, PREFIX)
    client.close()


@pytest.fixture(scope="module")
def api(redis_url: str, store: redis.Redis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApi]:
    with serving_api(redis_url, PREFIX, API_KEYS, tmp_path_factory.mktemp("api-hardening")) as running:
        yield running


# -- 1. rate limit ---------------------------------------------------------------------------

THREE_A_SECOND = {"scopes": ["read"], "rate_per_s": 3}
LIMITED_KEYS: dict[str, Grant] = {secrets.token_urlsafe(24): THREE_A_SECOND for _ in range(5)} | {
    secrets.token_urlsafe(24): ["admin"], secrets.token_urlsafe(24): ["read"]}
KEY_A, KEY_B, KEY_ROUTES, KEY_SSE, KEY_FLOOD, KEY_METRICS, KEY_UNLIMITED = LIMITED_KEYS


@pytest.fixture(scope="module")
def limited_api(redis_url: str, store: redis.Redis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApi]:
    """Three requests a second for the first five keys; the admin and the last read key have no limit."""
    with serving_api(redis_url, PREFIX, LIMITED_KEYS, tmp_path_factory.mktemp("api-limited")) as running:
        yield running


class TestRateLimit:
    def test_past_its_rate_a_key_gets_429_with_retry_after_and_other_keys_do_not(
        self, limited_api: RunningApi,
    ) -> None:
        with httpx.Client(base_url=limited_api.base_url, timeout=5) as http:
            a = {"X-API-Key": KEY_A}
            assert [http.get("/v1/availability/TV-55", headers=a).status_code for _ in range(3)] == [200] * 3
            refused = http.get("/v1/availability/TV-55", headers=a)
            assert refused.status_code == 429
            assert error_of(refused)["code"] == "rate_limited"
            retry_after = int(refused.headers["retry-after"])
            assert retry_after == 1  # the window is a second: the oldest request leaves it within one
            assert http.get("/v1/availability/TV-55", headers={"X-API-Key": KEY_B}).status_code == 200
            assert http.get("/v1/availability/TV-55", headers={"X-API-Key": "wrong-" + KEY_A}).status_code == 401
            time.sleep(retry_after)
            assert http.get("/v1/availability/TV-55", headers=a).status_code == 200

    def test_every_authenticated_route_spends_from_the_same_bucket(self, limited_api: RunningApi) -> None:
        with httpx.Client(base_url=limited_api.base_url, headers={"X-API-Key": KEY_ROUTES}, timeout=5) as http:
            assert http.post("/v1/availability/batch", json={"skus": ["TV-55"]}).status_code == 200
            assert http.get("/v1/channels/web/snapshot").status_code == 200
            assert http.get("/metrics").status_code == 200
            assert http.get("/v1/availability/TV-55").status_code == 429
            with http.stream("GET", "/v1/channels/web/deltas") as stream:
                assert stream.status_code == 429
                assert int(stream.headers["retry-after"]) >= 1

    def test_a_delta_stream_counts_once_however_long_it_runs(
        self, limited_api: RunningApi, store: redis.Redis,
    ) -> None:
        headers = {"X-API-Key": KEY_SSE}
        with httpx.Client(base_url=limited_api.base_url, headers=headers, timeout=5) as http, \
                http.stream("GET", "/v1/channels/web/deltas") as stream:
            assert stream.status_code == 200
            lines = stream.iter_lines()
            assert next(lines).startswith(": connected")
            assert [http.get("/v1/availability/TV-55").status_code for _ in range(3)] == [200, 200, 429]

    def test_a_key_without_a_rate_is_never_limited(self, limited_api: RunningApi) -> None:
        with httpx.Client(base_url=limited_api.base_url, headers={"X-API-Key": KEY_UNLIMITED}, timeout=5) as http:
            assert {http.get("/v1/availability/TV-55").status_code for _ in range(50)} == {200}

    def test_refusals_are_counted_in_metrics(self, limited_api: RunningApi) -> None:
        with httpx.Client(base_url=limited_api.base_url, timeout=5) as http:
            flood = [http.get("/v1/availability/TV-55", headers={"X-API-Key": KEY_FLOOD}) for _ in range(6)]
            assert [r.status_code for r in flood] == [200] * 3 + [429] * 3
            text = http.get("/metrics", headers={"X-API-Key": KEY_METRICS}).text
        refused = [line for line in text.splitlines() if line.startswith("avail_api_rate_limited_total ")]
        assert refused and float(refused[0].split()[-1]) >= 3, text
        assert any(line.startswith("avail_api_requests_total{") and 'status="429"' in line
                   for line in text.splitlines())


# -- 2. body limit ---------------------------------------------------------------------------

MAX_BODY = 256 * 1024


class TestBodyLimit:
    def test_a_thousand_of_the_longest_skus_fit_and_one_more_sku_answers_422(self, api: RunningApi) -> None:
        skus = [f"{i:04d}-" + "X" * 59 for i in range(1000)]
        assert all(len(sku) == 64 for sku in skus)
        headers = {"X-API-Key": READ_KEY}
        ok = httpx.post(f"{api.base_url}/v1/availability/batch", json={"skus": skus}, headers=headers, timeout=10)
        assert ok.status_code == 200 and len(ok.json()["results"]) == 1000
        too_many = httpx.post(f"{api.base_url}/v1/availability/batch", json={"skus": [*skus, "ONE-MORE"]},
                              headers=headers, timeout=10)
        assert too_many.status_code == 422
        assert error_of(too_many)["code"] == "too_many_skus" and error_of(too_many)["field"] == "skus"

    @pytest.mark.parametrize("key", [READ_KEY, None], ids=["with-key", "no-key"])
    def test_a_declared_length_past_the_limit_answers_413_naming_body(self, api: RunningApi, key: str | None) -> None:
        body = b'{"skus": ["TV-55"], "pad": "' + b"x" * MAX_BODY + b'"}'
        headers = {"content-type": "application/json"} | ({"X-API-Key": key} if key else {})
        response = httpx.post(f"{api.base_url}/v1/availability/batch", content=body, headers=headers, timeout=10)
        assert response.status_code == 413
        assert error_of(response)["code"] == "body_too_large" and error_of(response)["field"] == "body"

    def test_a_chunked_body_past_the_limit_answers_413(self, api: RunningApi) -> None:
        def chunks() -> Iterator[bytes]:
            yield b'{"skus": ["TV-55"], "pad": "'
            for _ in range(6):
                yield b"x" * (64 * 1024)
            yield b'"}'

        request = httpx.Request("POST", f"{api.base_url}/v1/availability/batch", content=chunks(),
                                headers={"X-API-Key": READ_KEY, "content-type": "application/json"})
        assert "content-length" not in request.headers and request.headers["transfer-encoding"] == "chunked"
        with httpx.Client(timeout=10) as http:
            response = http.send(request)
        assert response.status_code == 413
        assert error_of(response) | {"message": ""} == {"code": "body_too_large", "message": "", "field": "body"}

    def test_a_chunked_body_within_the_limit_is_served(self, api: RunningApi) -> None:
        def chunks() -> Iterator[bytes]:
            yield b'{"skus": ['
            yield b'"TV-55", "HDMI-2M"'
            yield b"]}"

        response = httpx.post(f"{api.base_url}/v1/availability/batch", content=chunks(), timeout=10,
                              headers={"X-API-Key": READ_KEY, "content-type": "application/json"})
        assert response.status_code == 200
        assert [r["known"] for r in response.json()["results"]] == [True, True]


# -- 3. scopes on every route ----------------------------------------------------------------

SAMPLE_VALUES = {"sku": "TV-55", "channel": "web"}
"""Path and query values of a request a `read:amazon` key may not make (channel web)."""


def _walk(routes: Iterable[BaseRoute]) -> Iterator[Route]:
    for route in routes:
        if isinstance(route, Route):
            yield route
        # FastAPI keeps an included router as one entry (newer versions), a Mount holds its own routes
        inner = getattr(getattr(route, "original_router", route), "routes", None)
        if inner is not None and not isinstance(route, Route):
            yield from _walk(inner)


def _routes() -> list[tuple[str, str]]:
    found = {(method, route.path_format) for route in _walk(APP.routes) for method in route.methods or ()}
    documented = {(method.upper(), path) for path, operations in SPEC["paths"].items() for method in operations}
    assert documented <= found, f"documented but not enumerated: {documented - found}"
    return sorted((method, path) for method, path in found if method != "HEAD")


ROUTES = _routes()
SECURED = [(method, path) for method, path in ROUTES if path not in PUBLIC]


def sample_request(method: str, path: str) -> httpx.Request:
    """A request for one route that is valid apart from the key, filled in from its OpenAPI description."""
    url = re.sub(r"{(\w+)}", lambda m: SAMPLE_VALUES.get(m[1], "x"), path)
    operation: dict[str, Any] = SPEC["paths"].get(path, {}).get(method.lower(), {})
    query = {p["name"]: SAMPLE_VALUES[p["name"]] for p in operation.get("parameters", [])
             if p["in"] == "query" and p["name"] in SAMPLE_VALUES}
    body = None
    if "requestBody" in operation:
        ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        body = SPEC["components"]["schemas"][ref.rsplit("/", 1)[-1]]["examples"][0]
    return httpx.Request(method, url, params=query, json=body)


def send(api: RunningApi, request: httpx.Request, key: str | None) -> httpx.Response:
    headers = dict(request.headers) | ({"X-API-Key": key} if key is not None else {})
    with httpx.Client(base_url=api.base_url, timeout=5) as http, \
            http.stream(request.method, str(request.url), headers=headers, content=request.content) as response:
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            return response  # a stream that started: the status is all we need
        response.read()
        return response


class TestScopesOnEveryRoute:
    def test_the_enumeration_finds_every_route(self) -> None:
        assert {path for _, path in SECURED} >= {
            "/v1/availability/{sku}", "/v1/availability/batch", "/v1/channels/{channel}/snapshot",
            "/v1/channels/{channel}/deltas", "/metrics",
        }

    @pytest.mark.parametrize(("method", "path"), SECURED)
    def test_without_a_valid_key_401_and_without_the_scope_403(
        self, api: RunningApi, method: str, path: str,
    ) -> None:
        request = sample_request(method, path)
        for key in (None, "", "not-a-configured-key-0123", READ_KEY[:-1], READ_KEY + "x"):
            response = send(api, request, key)
            assert response.status_code == 401, (method, path, key)
            assert error_of(response)["code"] == "unauthorized"
        response = send(api, request, AMAZON_KEY)
        assert response.status_code == 403, (method, path)
        assert error_of(response)["code"] == "forbidden"
        # the sample is a request the route serves: 401/403 above come from the key alone
        assert send(api, request, ADMIN_KEY).status_code < 400, (method, path)

    @pytest.mark.parametrize(("method", "path"), SECURED)
    def test_the_spec_says_the_key_is_needed(self, method: str, path: str) -> None:
        operation = SPEC["paths"].get(path, {}).get(method.lower())
        assert operation is not None, f"{method} {path} is missing from the OpenAPI spec"
        assert operation["security"] == [{"ApiKey": []}, {"BearerKey": []}]  # either one
        assert {"401", "403"} <= set(operation["responses"])

    @pytest.mark.parametrize("path", sorted(PUBLIC))
    def test_public_routes_need_no_key(self, api: RunningApi, store: redis.Redis, path: str) -> None:
        write_heartbeat(store, KEYS)  # a live flow, whatever time the module's tests took: /readyz is 200
        assert httpx.get(f"{api.base_url}{path}", timeout=5).status_code < 400, path


# -- 4. keys never logged --------------------------------------------------------------------

LOG_CONFIG = {
    "version": 1, "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}},
    "root": {"level": "DEBUG", "handlers": ["stderr"]},
}


@contextlib.contextmanager
def verbose_api(redis_url: str, log_dir: Path) -> Iterator[RunningApi]:
    """The API logging everything: root at DEBUG, uvicorn at TRACE (scopes and messages), access log on."""
    config = log_dir / "logging.json"
    config.write_text(json.dumps(LOG_CONFIG))
    port = free_port()
    command = [arg for arg in api_command(port) if arg not in ("--no-access-log",)]
    level = command.index("--log-level")
    command[level + 1] = "trace"
    command += ["--access-log", "--log-config", str(config)]
    log_path = log_dir / "api-verbose.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            command, env=api_env(redis_url, PREFIX, API_KEYS), stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
    running = RunningApi(f"http://{LOOPBACK}:{port}", process, log_path)
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{running.base_url}/healthz", timeout=0.5).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise ApiStartError(running.log())
            time.sleep(0.05)
        yield running
    finally:
        running.stop()


def test_keys_never_reach_the_log_even_at_trace_level(
    redis_url: str, store: redis.Redis, tmp_path: Path,
) -> None:
    wrong = "wrong-" + secrets.token_urlsafe(24)
    with verbose_api(redis_url, tmp_path) as running, httpx.Client(base_url=running.base_url, timeout=5) as http:
        assert http.get("/v1/availability/TV-55", headers={"X-API-Key": READ_KEY}).status_code == 200
        assert http.get("/v1/availability/TV-55", headers={"X-API-Key": wrong}).status_code == 401
        assert http.get("/v1/availability/TV-55", headers={"X-API-Key": READ_KEY + "x"}).status_code == 401
        assert http.get("/v1/availability/TV-55").status_code == 401
        assert http.get("/v1/availability/TV-55", params={"api_key": ADMIN_KEY}).status_code == 401
        leaked = http.get("/v1/availability/TV-55", params={"api_key": AMAZON_KEY, "channel": "amazon"},
                          headers={"X-API-Key": READ_KEY})
        assert leaked.status_code == 200
        assert http.get("/v1/availability/TV-55", params={"channel": wrong[:60]},
                        headers={"X-API-Key": READ_KEY}).status_code == 422
        assert http.post("/v1/availability/batch", json={"skus": [ADMIN_KEY]},
                         headers={"X-API-Key": READ_KEY}).status_code == 200
        assert http.get("/v1/channels/web/deltas", headers={"X-API-Key": ADMIN_KEY, "Last-Event-ID": AMAZON_KEY},
                        params={"after": READ_KEY}).status_code == 422
        assert http.get("/metrics", headers={"X-API-Key": ADMIN_KEY}).status_code == 200
    log = running.log()
    assert "api_key=***" in log, "the access log ran (else this test proves nothing)"
    assert "ASGI [" in log and " DEBUG " in log, "trace and debug logging ran"
    for secret in (READ_KEY, AMAZON_KEY, ADMIN_KEY, wrong, wrong[:60]):
        assert secret not in log, f"a key reached the log:\n{log[-3000:]}"


# -- 5. schemathesis -------------------------------------------------------------------------

CASES: Counter[str] = Counter()


SCHEMA = schemathesis.openapi.from_dict(SPEC)
SCHEMA.config.generation.update(allow_extra_parameters=False)  # unknown query parameters are ignored by design


def bounded(max_examples: int) -> settings:
    """Fuzzing examples per operation, whatever Hypothesis profile is loaded (the CI one asks 600).

    Schemathesis takes ``max_examples`` from ``@settings`` only when it differs from
    Hypothesis's default (100), else from the loaded profile.
    """
    assert max_examples != settings.get_profile("default").max_examples
    return settings(max_examples=max_examples, deadline=None, suppress_health_check=list(HealthCheck))


# Schema-valid is not always acceptable: a channel must be one of the rules, a cursor or a feed
# position one the API handed out; those answer a documented 422, which this check would call a failure.
EXCLUDED_CHECKS = [positive_data_acceptance]


@pytest.fixture(scope="module", autouse=True)
def _report_schemathesis_cases(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if CASES:
        line = f"schemathesis: {CASES.total()} cases ({', '.join(f'{k}: {v}' for k, v in sorted(CASES.items()))})"
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
            print(f"\n{line}")


def test_the_served_spec_is_the_one_tested(api: RunningApi) -> None:
    assert httpx.get(f"{api.base_url}/openapi.json", timeout=5).json() == SPEC


@SCHEMA.exclude(path_regex="/deltas$").parametrize()
@bounded(250)
def test_schemathesis_finds_no_server_error_with_an_admin_key(case: Case, api: RunningApi, store: redis.Redis) -> None:
    write_heartbeat(store, KEYS)  # a live flow: /readyz answers 200, not its documented 503
    CASES["admin key"] += 1
    case.call_and_validate(base_url=api.base_url, headers={"X-API-Key": ADMIN_KEY}, timeout=5,
                           excluded_checks=EXCLUDED_CHECKS)


@SCHEMA.exclude(path_regex="/deltas$").parametrize()
@bounded(50)
def test_schemathesis_finds_no_server_error_without_a_key(case: Case, api: RunningApi, store: redis.Redis) -> None:
    write_heartbeat(store, KEYS)
    CASES["no key"] += 1
    case.call_and_validate(base_url=api.base_url, timeout=5, excluded_checks=EXCLUDED_CHECKS)


@SCHEMA.include(path_regex="/deltas$").parametrize()
@bounded(20)
def test_schemathesis_on_the_delta_feed_with_a_short_read(case: Case, api: RunningApi) -> None:
    CASES["delta feed"] += 1
    # an accepted stream never ends: schemathesis reads it for the timeout, then checks what came
    case.call_and_validate(base_url=api.base_url, headers={"X-API-Key": ADMIN_KEY}, timeout=0.5,
                           excluded_checks=EXCLUDED_CHECKS)


# -- 7. staleness ----------------------------------------------------------------------------

STALE_PREFIX = f"stale-{uuid.uuid4().hex[:8]}"
STALE_KEYS = Keys(STALE_PREFIX)


@pytest.fixture(scope="module")
def stale_store(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    seed(client, STALE_KEYS)
    yield client
    delete_prefix(client, STALE_PREFIX)
    client.close()


@pytest.fixture(scope="module")
def stale_api(
    redis_url: str, stale_store: redis.Redis, tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningApi]:
    with serving_api(redis_url, STALE_PREFIX, API_KEYS, tmp_path_factory.mktemp("api-stale")) as running:
        yield running


def report(store: redis.Redis, beat_age_s: float | None, applied_age_s: float | None = None, lag_s: float = 0) -> None:
    """What the flow would have written: its heartbeat and one worker's progress, so old."""
    pipe = store.pipeline(transaction=True)
    pipe.delete(STALE_KEYS.heartbeat, STALE_KEYS.progress)
    if beat_age_s is not None:
        pipe.hset(STALE_KEYS.heartbeat, "0", now_us() - int(beat_age_s * 1e6))
    if applied_age_s is not None:
        applied = now_us() - int(applied_age_s * 1e6)
        pipe.hset(STALE_KEYS.progress, mapping={"applied:0": applied, "event:0": applied - int(lag_s * 1e6)})
    pipe.execute()


def answer_once_flagged(http: httpx.Client, header: str) -> httpx.Response:
    """The single-SKU answer, once its header says ``header`` (the API re-reads every 0.5 s)."""
    deadline = time.monotonic() + 5
    while True:
        response = http.get("/v1/availability/TV-55")
        assert response.status_code == 200, response.text
        if response.headers["x-availability-stale"] == header or time.monotonic() > deadline:
            return response
        time.sleep(0.05)


class TestStaleness:
    @pytest.mark.parametrize(("reported", "reason"), [
        ({"beat_age_s": None}, "flow_down"),
        ({"beat_age_s": 30, "applied_age_s": 0.2}, "flow_down"),
        ({"beat_age_s": 0.1}, "no_input"),
        ({"beat_age_s": 0.1, "applied_age_s": 400}, "input_idle"),
        ({"beat_age_s": 0.1, "applied_age_s": 0.2, "lag_s": 120}, "lagging"),
        ({"beat_age_s": 0.1, "applied_age_s": 0.2, "lag_s": 0.5}, None),
    ])
    def test_every_availability_answer_says_whether_and_why_it_is_stale(
        self, stale_api: RunningApi, stale_store: redis.Redis, reported: dict[str, float | None], reason: str | None,
    ) -> None:
        report(stale_store, **reported)
        with httpx.Client(base_url=stale_api.base_url, headers={"X-API-Key": READ_KEY}, timeout=5) as http:
            single = answer_once_flagged(http, reason or "0")
            assert single.headers["x-availability-stale"] == (reason or "0")
            expected = {"stale": True, "stale_reason": reason} if reason else {"stale": False}
            answers = [
                single,
                http.get("/v1/availability/TV-55", params={"channel": "web"}),
                http.post("/v1/availability/batch", json={"skus": ["TV-55", "NEVER-SEEN"]}),
                http.get("/v1/channels/web/snapshot"),
            ]
            for answer in answers:
                assert answer.status_code == 200
                assert answer.headers["x-availability-stale"] == (reason or "0"), answer.request.url
                body = answer.json()
                assert {k: v for k, v in body.items() if k.startswith("stale")} == expected, answer.request.url
            ready = httpx.get(f"{stale_api.base_url}/readyz", timeout=5)
            assert ready.json()["freshness"]["stale"] is (reason is not None)
            assert ready.json()["freshness"]["reason"] == reason
            # stale data is still the best answer there is: only a silent flow makes the API unready
            assert ready.status_code == (503 if reason == "flow_down" else 200)

    def test_the_flag_costs_requests_no_redis_round_trip(
        self, stale_api: RunningApi, stale_store: redis.Redis,
    ) -> None:
        report(stale_store, beat_age_s=0.1, applied_age_s=0.2)

        def hvals_calls() -> int:
            return int(stale_store.info("commandstats").get("cmdstat_hvals", {}).get("calls", 0))

        before, started = hvals_calls(), time.monotonic()
        with httpx.Client(base_url=stale_api.base_url, headers={"X-API-Key": READ_KEY}, timeout=5) as http:
            for _ in range(200):
                assert http.get("/v1/availability/TV-55").headers["x-availability-stale"] == "0"
        elapsed = time.monotonic() - started
        # Only the background refreshes read the heartbeat hash (every API process alive: about 2/s each).
        assert hvals_calls() - before < 20 + 10 * elapsed
