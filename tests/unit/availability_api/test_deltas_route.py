"""The delta feed route without Redis: what it answers before streaming, and how it is documented."""

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from availability_api import create_app
from engine_settings import ApiSettings

KEY = "unit-test-key-0123456789"
AMAZON_KEY = "unit-test-amazon-0123456789"
PATH = "/v1/channels/{channel}/deltas"


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app(ApiSettings(
        redis_url=SecretStr("redis://127.0.0.1:1/0"),  # never contacted by these tests
        api_keys={SecretStr(KEY): ["read"], SecretStr(AMAZON_KEY): ["read:amazon"]},
    ))


def get(app: FastAPI, path: str, key: str = KEY, **headers: str) -> httpx.Response:
    async def main() -> httpx.Response:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://unit") as client:
                return await client.get(path, headers={"X-API-Key": key} | headers)

    return asyncio.run(main())


class TestAnswersBeforeStreaming:
    def test_a_key_for_another_channel_is_forbidden(self, app: FastAPI) -> None:
        response = get(app, "/v1/channels/web/deltas", key=AMAZON_KEY)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"

    def test_no_key_is_unauthorized(self, app: FastAPI) -> None:
        assert get(app, "/v1/channels/web/deltas", key="").status_code == 401

    @pytest.mark.parametrize(("path", "headers", "field"), [
        ("/v1/channels/web/deltas?after=x", {}, "after"),
        ("/v1/channels/web/deltas", {"Last-Event-ID": "-3"}, "Last-Event-ID"),
    ])
    def test_a_malformed_position_names_its_field(
        self, app: FastAPI, path: str, headers: dict[str, str], field: str,
    ) -> None:
        response = get(app, path, **headers)
        assert response.status_code == 422
        assert response.json()["error"] == {
            "code": "invalid_position", "field": field,
            "message": f"{field} must be a delta seq: a whole number from 0 (as sent in the events' id)",
        }

    def test_redis_down_at_connect_answers_503(self, app: FastAPI) -> None:
        response = get(app, "/v1/channels/web/deltas")
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "redis_unavailable"


@pytest.fixture
def operation(app: FastAPI) -> dict[str, Any]:
    return app.openapi()["paths"][PATH]["get"]  # type: ignore[no-any-return]


class TestOpenApi:
    def test_success_is_an_event_stream_with_an_example(self, operation: dict[str, Any]) -> None:
        ok = operation["responses"]["200"]
        assert list(ok["content"]) == ["text/event-stream"]
        example = ok["content"]["text/event-stream"]["example"]
        assert "\nid: 1042\nevent: delta\ndata: {" in example and ": keepalive\n\n" in example
        assert set(ok["headers"]) == {"Cache-Control", "X-Accel-Buffering"}

    def test_errors_are_json_including_410(self, operation: dict[str, Any]) -> None:
        responses = operation["responses"]
        assert {"401", "403", "410", "422", "503"} <= set(responses)
        for status in ("401", "403", "410", "422", "503"):
            assert "schema" in responses[status]["content"]["application/json"], status
        gone = responses["410"]["content"]["application/json"]["example"]["error"]
        assert gone["code"] == "feed_position_trimmed" and "snapshot" in gone["message"]

    def test_position_parameters_and_key_are_declared(self, operation: dict[str, Any]) -> None:
        parameters = {(p["in"], p["name"]) for p in operation["parameters"]}
        assert {("path", "channel"), ("query", "after"), ("header", "Last-Event-ID")} <= parameters
        assert operation["security"] == [{"ApiKey": []}, {"BearerKey": []}]  # either one
        assert "Last-Event-ID" in operation["description"] and "410" in operation["description"]

    def test_snapshot_documents_the_delta_cursor(self, app: FastAPI) -> None:
        spec = app.openapi()
        snapshot = spec["paths"]["/v1/channels/{channel}/snapshot"]["get"]
        assert "delta_cursor" in snapshot["description"] and "deltas?after=" in snapshot["description"]
        field = spec["components"]["schemas"]["ChannelSnapshot"]["properties"]["delta_cursor"]
        assert field["type"] == "string"
