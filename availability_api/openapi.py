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
    410: ("the deltas after the requested position are no longer retained: re-bootstrap from the snapshot",
          "feed_position_trimmed", "the feed no longer holds seq 11 (the oldest retained is 101); re-bootstrap: "
          "read GET /v1/channels/web/snapshot and follow the feed from its delta_cursor", "after"),
    413: ("the request body is larger than AVAIL_MAX_BODY_BYTES", "body_too_large",
          "request body larger than 262144 bytes (AVAIL_MAX_BODY_BYTES)", "body"),
    415: ("the body was not sent as JSON (a `Content-Type` other than application/json, e.g. curl -d without "
          "-H 'Content-Type: application/json')", "unsupported_media_type",
          "the request body must be sent with Content-Type: application/json (got "
          "application/x-www-form-urlencoded)", "content-type"),
    422: ("a request field is invalid (codes: invalid_sku, too_many_skus, too_many_lines, unknown_channel, "
          "invalid_cursor, invalid_position, feed_position_ahead, unknown_field, malformed_body, invalid_request)",
          "invalid_sku",
          "sku must be 1 to 64 characters of A-Z a-z 0-9 . _ - : /", "sku"),
    429: ("this API key made more requests than its rate_per_s (AVAIL_API_KEYS) allows, counted across every API "
          "process; retry after `Retry-After` seconds", "rate_limited",
          "this API key is over its request rate (its rate_per_s in AVAIL_API_KEYS); retry in 1 s", None),
    503: ("Redis is not answering (redis_unavailable), or no rule set is published yet (rules_unavailable)",
          "redis_unavailable", "the availability store (Redis) is not answering; retry", None),
}

_HEADERS: dict[int, dict[str, Any]] = {
    429: {"Retry-After": {"description": "whole seconds (at least 1) until the key may ask again",
                          "schema": {"type": "integer", "minimum": 1}}},
}

STALE_HEADER: dict[str, Any] = {"X-Availability-Stale": {
    "description": "`0` when the data is fresh, else the reason it may not be (as `stale_reason`)",
    "schema": {"type": "string", "enum": ["0", "flow_down", "no_input", "input_idle", "lagging", "unknown"]},
}}
"""The freshness header of every availability answer."""


NO_ROUTE_404 = (
    "the path matches no route: a channel the router cannot take (one with a line break, say)",
    "not_found", "Not Found", None,
)
"""404 of the channel routes: a well-formed channel never gets it (an unknown one answers 422)."""


def error_responses(
    *statuses: int, json_route: bool = True, examples: dict[int, tuple[str, str, str | None]] | None = None,
    overrides: dict[int, tuple[str, str, str, str | None]] | None = None,
) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` argument documenting these error statuses.

    On a route whose success is not JSON (``json_route=False``), FastAPI would file the
    error model under the success media type, so the schema is referenced explicitly.
    ``examples`` replaces the example (code, message, field) of some statuses, ``overrides``
    the description too (description, code, message, field).
    """
    documented: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        description, code, message, field = (overrides or {}).get(status) or _ERRORS[status]
        if examples and status in examples:
            code, message, field = examples[status]
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
        if status in _HEADERS:
            documented[status]["headers"] = _HEADERS[status]
    return documented


DELTA_STREAM_EXAMPLE = (
    ": connected, from seq 1041\n\n"
    'id: 1042\nevent: delta\ndata: {"channel":"web","sku":"TV-55","available":7,"previous":9,'
    '"as_of":"2026-11-23T10:15:00.123Z","rules_version":"3f9c2a1b","seq":1042}\n\n'
    ": keepalive\n\n"
)


def delta_stream_responses() -> dict[int | str, dict[str, Any]]:
    """The documented answers of the delta feed: an event stream, or a JSON error before it starts."""
    return {
        200: {
            "description": (
                "`text/event-stream`: one `delta` event per delta, its `id` the delta's seq; comment lines "
                "(`: ...`) when the stream opens, every AVAIL_SSE_HEARTBEAT_S while idle, and before the server "
                "ends a stream (reconnect with `Last-Event-ID`)."
            ),
            "headers": {
                "Cache-Control": {"description": "no-cache", "schema": {"type": "string"}},
                "X-Accel-Buffering": {"description": "no: proxies must not buffer the stream",
                                      "schema": {"type": "string"}},
            },
            "content": {"text/event-stream": {"schema": {"type": "string"}, "example": DELTA_STREAM_EXAMPLE}},
        },
        **error_responses(401, 403, 404, 410, 422, 429, 503, json_route=False, overrides={404: NO_ROUTE_404}, examples={
            422: ("invalid_position", "after must be a delta seq: a whole number from 0 (as sent in the events' id)",
                  "after"),
        }),
    }
