"""OpenAPI helpers: the documented error answers of each route, with examples."""

from __future__ import annotations

from typing import Any

from availability_api.schemas import ErrorResponse

_ERRORS: dict[int, tuple[str, str, str, str | None]] = {
    400: ("request body is not valid JSON", "malformed_body",
          "request body is not valid JSON: Expecting value", "body"),
    401: ("no X-API-Key header, or a key that is not configured", "unauthorized", "unknown API key", None),
    403: ("the key lacks the scope this request needs", "forbidden",
          "reading channel 'web' needs the 'read' or 'read:web' scope", None),
    404: ("the SKU has never been seen", "unknown_sku", "no availability for SKU 'TV-99': never seen", "sku"),
    422: ("a request field is invalid (codes: invalid_sku, too_many_skus, unknown_channel, invalid_cursor, "
          "unknown_field, malformed_body, invalid_request)", "invalid_sku",
          "sku must be 1 to 64 characters of A-Z a-z 0-9 . _ - : /", "sku"),
    503: ("Redis is not answering (redis_unavailable), or no rule set is published yet (rules_unavailable)",
          "redis_unavailable", "the availability store (Redis) is not answering; retry", None),
}


def error_responses(*statuses: int, json_route: bool = True) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` argument documenting these error statuses.

    On a route whose success is not JSON (``json_route=False``), FastAPI would file the
    error model under the success media type, so the schema is referenced explicitly.
    """
    documented: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        description, code, message, field = _ERRORS[status]
        example = {"error": {"code": code, "message": message, "field": field}}
        if json_route:
            documented[status] = {
                "model": ErrorResponse, "description": description,
                "content": {"application/json": {"example": example}},
            }
        else:
            documented[status] = {"description": description, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{ErrorResponse.__name__}"}, "example": example,
            }}}
    return documented
