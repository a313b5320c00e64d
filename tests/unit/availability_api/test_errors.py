from typing import Any

import orjson
import pytest

from availability_api.errors import (
    InvalidCursor,
    RulesUnavailable,
    Unauthorized,
    UnknownChannel,
    describe_validation_error,
    error_body,
    field_name,
)


@pytest.mark.parametrize(("loc", "name"), [
    (("path", "sku"), "sku"),
    (("body", "skus", 3), "skus[3]"),
    (("body", "skus"), "skus"),
    (("query", "channel"), "channel"),
    (("body",), "body"),
    (("body", "a", "b", 0, "c"), "a.b[0].c"),
])
def test_field_name(loc: tuple[int | str, ...], name: str) -> None:
    assert field_name(loc) == name


@pytest.mark.parametrize(("error", "expected"), [
    ({"type": "json_invalid", "loc": ("body", 7), "msg": "JSON decode error", "ctx": {"error": "Expecting value"}},
     (400, "malformed_body", "body")),
    ({"type": "string_pattern_mismatch", "loc": ("path", "sku"), "msg": "..."}, (422, "invalid_sku", "sku")),
    ({"type": "string_pattern_mismatch", "loc": ("body", "skus", 4), "msg": "..."},
     (422, "invalid_sku", "skus[4]")),
    ({"type": "string_pattern_mismatch", "loc": ("query", "channel"), "msg": "..."},
     (422, "invalid_request", "channel")),
    ({"type": "too_long", "loc": ("body", "skus"), "msg": "..."}, (422, "too_many_skus", "skus")),
    ({"type": "too_long", "loc": ("body", "lines"), "msg": "..."}, (422, "too_many_lines", "lines")),
    ({"type": "string_pattern_mismatch", "loc": ("body", "lines", 2, "sku"), "msg": "..."},
     (422, "invalid_sku", "lines[2].sku")),
    ({"type": "greater_than_equal", "loc": ("body", "lines", 3, "qty"), "msg": "..."},
     (422, "invalid_request", "lines[3].qty")),
    ({"type": "extra_forbidden", "loc": ("body", "chanel"), "msg": "..."}, (422, "unknown_field", "chanel")),
    ({"type": "model_attributes_type", "loc": ("body",), "msg": "..."}, (422, "malformed_body", "body")),
    ({"type": "less_than_equal", "loc": ("query", "limit"), "msg": "..."}, (422, "invalid_request", "limit")),
])
def test_validation_errors_map_to_code_and_field(error: dict[str, Any], expected: tuple[int, str, str]) -> None:
    status, code, field, message = describe_validation_error(error)
    assert (status, code, field) == expected
    assert message


def test_error_body_has_the_contract_shape() -> None:
    assert orjson.loads(error_body("unknown_sku", "never seen", "sku")) == {
        "error": {"code": "unknown_sku", "message": "never seen", "field": "sku"},
    }
    assert orjson.loads(error_body("forbidden", "no"))["error"]["field"] is None


def test_api_errors_carry_status_code_and_field() -> None:
    unknown = UnknownChannel("ebay", ["amazon", "web"])
    assert (unknown.status_code, unknown.code, unknown.field) == (422, "unknown_channel", "channel")
    assert "amazon, web" in unknown.message
    assert (InvalidCursor().status_code, InvalidCursor().field) == (422, "cursor")
    assert (RulesUnavailable().status_code, RulesUnavailable().code) == (503, "rules_unavailable")
    assert Unauthorized("x").headers["WWW-Authenticate"].startswith("ApiKey")
    assert str(unknown).startswith("unknown_channel: ")
