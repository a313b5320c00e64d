"""The app without Redis: configuration checks, OpenAPI, and answers that never reach Redis."""

import asyncio
import logging
import re
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from availability_api import create_app
from availability_api.auth import AuthConfigError
from engine_settings import ApiSettings

KEY = "unit-test-key-0123456789"
AMAZON_KEY = "unit-test-amazon-0123456789"


def settings(**overrides: Any) -> ApiSettings:
    values: dict[str, Any] = {
        "redis_url": SecretStr("redis://127.0.0.1:1/0"),  # never contacted by these tests
        "api_keys": {SecretStr(KEY): ["read"], SecretStr(AMAZON_KEY): ["read:amazon"]},
    } | overrides
    return ApiSettings(**values)


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app(settings())


def call(app: FastAPI, method: str, path: str, key: str | None = KEY,
         headers: dict[str, str] | None = None) -> httpx.Response:
    """One request in process, with the app's lifespan around it (Starlette's TestClient wants httpx2)."""

    async def main() -> httpx.Response:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://unit") as client:
                sent = ({"X-API-Key": key} if key else {}) | (headers or {})
                return await client.request(method, path, headers=sent)

    return asyncio.run(main())


class TestConfiguration:
    @pytest.mark.parametrize("keys", [None, {}])
    def test_refuses_without_keys_naming_the_variable_and_the_escape(self, keys: object) -> None:
        with pytest.raises(AuthConfigError, match="AVAIL_API_KEYS") as refused:
            create_app(settings(api_keys=keys))
        assert "--insecure-no-auth" in str(refused.value)

    def test_insecure_no_auth_warns_loudly(self, caplog: pytest.LogCaptureFixture) -> None:
        with caplog.at_level(logging.WARNING):
            create_app(settings(api_keys=None, insecure_no_auth=True))
        assert any(r.levelno == logging.WARNING and "AUTHENTICATION IS OFF" in r.message for r in caplog.records)

    def test_configured_keys_win_over_insecure_no_auth(self, caplog: pytest.LogCaptureFixture) -> None:
        app = create_app(settings(insecure_no_auth=True))
        assert "ignored" in caplog.text
        assert call(app, "GET", "/v1/availability/TV-55", key=None).status_code == 401

    def test_keys_never_reach_the_log(self, caplog: pytest.LogCaptureFixture) -> None:
        with caplog.at_level(logging.DEBUG):
            create_app(settings(insecure_no_auth=True))
        assert KEY not in caplog.text and AMAZON_KEY not in caplog.text


class TestAnswersBeforeRedis:
    def test_missing_key(self, app: FastAPI) -> None:
        response = call(app, "GET", "/v1/availability/TV-55", key=None)
        assert response.status_code == 401
        assert response.json() == {"error": {"code": "unauthorized", "message": "missing X-API-Key header",
                                             "field": None}}

    def test_bad_sku(self, app: FastAPI) -> None:
        response = call(app, "GET", "/v1/availability/" + "x" * 65)
        assert response.status_code == 422
        assert response.json()["error"]["field"] == "sku"

    def test_forbidden_before_redis(self, app: FastAPI) -> None:
        response = call(app, "GET", "/v1/channels/web/snapshot", key=AMAZON_KEY)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"

    def test_framework_errors_have_the_error_shape(self, app: FastAPI) -> None:
        missing = call(app, "GET", "/v2/nothing")
        assert missing.json() == {"error": {"code": "not_found", "message": "Not Found", "field": None}}
        wrong_method = call(app, "DELETE", "/v1/availability/batch")
        assert wrong_method.status_code == 405
        assert wrong_method.json()["error"]["code"] == "method_not_allowed"

    def test_a_schedule_without_a_channel_names_it_and_never_reaches_the_fast_path(self, app: FastAPI) -> None:
        response = call(app, "GET", "/v1/availability/TV-55/schedule")
        assert response.status_code == 422
        assert response.json()["error"]["field"] == "channel"

    def test_a_schedule_of_another_channel_is_forbidden(self, app: FastAPI) -> None:
        response = call(app, "GET", "/v1/availability/TV-55/schedule?channel=web", key=AMAZON_KEY)
        assert response.status_code == 403

    @pytest.mark.parametrize(("body", "code", "field"), [
        ({"lines": [{"sku": "TV-55", "qty": 1}]}, "invalid_request", "channel"),
        ({"channel": "web", "lines": []}, "invalid_request", "lines"),
        ({"channel": "web", "lines": [{"sku": "TV-55", "qty": 1}] * 1001}, "too_many_lines", "lines"),
        ({"channel": "web", "lines": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 0}]}, "invalid_request",
         "lines[1].qty"),
        ({"channel": "web", "lines": [{"sku": "A", "qty": "2"}]}, "invalid_request", "lines[0].qty"),
        ({"channel": "web", "lines": [{"sku": "bad sku", "qty": 1}]}, "invalid_sku", "lines[0].sku"),
        ({"channel": "web", "lines": [{"sku": "A"}]}, "invalid_request", "lines[0].qty"),
        ({"channel": "web", "lines": [{"sku": "A", "qty": 1, "note": "x"}]}, "unknown_field", "lines[0].note"),
    ])
    def test_a_bad_promise_body_names_the_field(self, app: FastAPI, body: object, code: str, field: str) -> None:
        async def main() -> httpx.Response:
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://unit") as client:
                    return await client.post("/v1/availability/promise", json=body, headers={"X-API-Key": KEY})

        response = asyncio.run(main())
        assert response.status_code == 422
        assert (response.json()["error"]["code"], response.json()["error"]["field"]) == (code, field)

    def test_healthz(self, app: FastAPI) -> None:
        assert call(app, "GET", "/healthz", key=None).json() == {"status": "ok"}


class TestOpenApi:
    ROUTES = {
        ("get", "/v1/availability/{sku}"): {"200", "401", "403", "404", "422", "429", "503"},
        ("post", "/v1/availability/batch"): {"200", "400", "401", "403", "413", "422", "429", "503"},
        ("get", "/v1/channels/{channel}/snapshot"): {"200", "401", "403", "422", "429", "503"},
        ("get", "/v1/availability/{sku}/schedule"): {"200", "401", "403", "422", "429", "503"},
        ("post", "/v1/availability/promise"): {"200", "400", "401", "403", "413", "422", "429", "503"},
        ("get", "/metrics"): {"200", "401", "403", "429"},
        ("get", "/healthz"): {"200"},
        ("get", "/readyz"): {"200", "503"},
    }

    def test_every_route_is_documented(self, app: FastAPI) -> None:
        paths = app.openapi()["paths"]
        for (method, path), statuses in self.ROUTES.items():
            operation = paths[path][method]
            assert operation["summary"] and operation["description"], path
            assert statuses <= set(operation["responses"]), path
            for status in statuses - {"200"}:
                content = operation["responses"][status]["content"]["application/json"]
                assert "schema" in content, (path, status)

    def test_error_examples_have_the_contract_shape(self, app: FastAPI) -> None:
        operation = app.openapi()["paths"]["/v1/availability/{sku}"]["get"]
        example = operation["responses"]["404"]["content"]["application/json"]["example"]
        assert example["error"]["code"] == "unknown_sku"

    def test_rate_limited_answers_document_retry_after(self, app: FastAPI) -> None:
        for (method, path), statuses in self.ROUTES.items():
            if "429" in statuses:
                answer = app.openapi()["paths"][path][method]["responses"]["429"]
                assert answer["headers"]["Retry-After"]["schema"]["minimum"] == 1, path

    @pytest.mark.parametrize(("path", "method", "schema"), [
        ("/v1/availability/{sku}", "get", "SkuAvailability"),
        ("/v1/availability/batch", "post", "BatchResponse"),
        ("/v1/channels/{channel}/snapshot", "get", "ChannelSnapshot"),
        ("/v1/availability/{sku}/schedule", "get", "SkuSchedule"),
        ("/v1/availability/promise", "post", "PromiseResponse"),
    ])
    def test_availability_answers_document_freshness(self, app: FastAPI, path: str, method: str, schema: str) -> None:
        spec = app.openapi()
        ok = spec["paths"][path][method]["responses"]["200"]
        assert ok["content"]["application/json"]["schema"]["$ref"].endswith("/" + schema)
        assert "X-Availability-Stale" in ok["headers"]
        properties = spec["components"]["schemas"][schema]["properties"]
        assert {"stale", "stale_reason"} <= set(properties)
        assert "stale" in spec["components"]["schemas"][schema]["required"]
        assert "stale" not in spec["components"]["schemas"]["BatchItem"]["properties"], "once per answer"

    def test_api_key_scheme_declared_and_required_where_it_is(self, app: FastAPI) -> None:
        spec = app.openapi()
        assert spec["components"]["securitySchemes"]["ApiKey"]["name"] == "X-API-Key"
        for (method, path) in self.ROUTES:
            secured = "security" in spec["paths"][path][method]
            assert secured == (path not in ("/healthz", "/readyz")), path


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


class TestDocumentationPagesNeedNoNetwork:
    @pytest.mark.parametrize("page", ["/docs", "/redoc"])
    def test_every_asset_comes_from_the_api_itself(self, app: FastAPI, page: str) -> None:
        html = call(app, "GET", page, key=None)
        assert html.status_code == 200
        links = _Links()
        links.feed(html.text)
        assert links.urls, html.text
        scripts = re.findall(r"(?:https?:)?//[^\s'\"<>)]+", html.text)
        assert not scripts, f"{page} loads from outside: {scripts}"
        for url in links.urls:
            assert url.startswith("/"), url
            asset = call(app, "GET", url, key=None)
            assert asset.status_code == 200 and len(asset.content) > 1000, url

    def test_swagger_ui_asks_no_online_validator(self, app: FastAPI) -> None:
        page = call(app, "GET", "/docs", key=None).text
        assert re.search(r"\"?validatorUrl\"?: null", page), page


class TestPrometheusScrapes:
    def test_metrics_take_the_key_as_a_bearer_token(self, app: FastAPI) -> None:
        scraped = call(app, "GET", "/metrics", key=None, headers={"Authorization": f"Bearer {KEY}"})
        assert scraped.status_code == 200 and "avail_api_requests_total" in scraped.text
        wrong = call(app, "GET", "/metrics", key=None, headers={"Authorization": "Bearer not-a-key-0123456789"})
        assert wrong.status_code == 401
        assert call(app, "GET", "/metrics", key=None).status_code == 401


class TestBodyWithoutJsonContentType:
    @pytest.mark.parametrize("content_type", [None, "application/x-www-form-urlencoded", "text/plain"])
    def test_a_body_not_sent_as_json_names_the_header(self, app: FastAPI, content_type: str | None) -> None:
        async def main() -> httpx.Response:
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://unit") as client:
                    headers = {"X-API-Key": KEY} | ({"Content-Type": content_type} if content_type else {})
                    return await client.post("/v1/availability/batch", content=b'{"skus": ["TV-55"]}',
                                             headers=headers)

        answer = asyncio.run(main())
        assert answer.status_code == 415
        error = answer.json()["error"]
        assert error["field"] == "content-type" and "Content-Type: application/json" in error["message"]
