"""Every error the API answers, and the one place that maps them to HTTP.

Each 4xx/5xx answer is ``{"error": {"code", "message", "field"}}``, including the
framework's own (validation, unknown route, wrong method).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from redis import exceptions as redis_errors
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from atp.exceptions import UnknownSku
from availability_api.types import ID_RULE, MAX_BATCH

log = logging.getLogger(__name__)
E = TypeVar("E", bound=Exception)


class ApiError(Exception):
    """An answer other than success; subclasses fix the status and the default code."""

    status_code = 500
    code = "internal_error"

    def __init__(
        self, message: str, *, field: str | None = None, code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code
        self.headers = dict(headers or {})

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" + (f" (field {self.field})" if self.field else "")


class Unauthorized(ApiError):
    status_code = 401
    code = "unauthorized"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": 'ApiKey header="X-API-Key"'})


class Forbidden(ApiError):
    status_code = 403
    code = "forbidden"


class InvalidInput(ApiError):
    status_code = 422
    code = "invalid_request"


class UnknownChannel(InvalidInput):
    code = "unknown_channel"

    def __init__(self, channel: str, known: Sequence[str]) -> None:
        listed = ", ".join(known) if known else "none"
        super().__init__(f"unknown channel {channel!r}; the active rules define: {listed}", field="channel")


class InvalidCursor(InvalidInput):
    code = "invalid_cursor"

    def __init__(self) -> None:
        super().__init__("cursor is not one this API handed out; start again without it", field="cursor")


class InvalidPosition(InvalidInput):
    code = "invalid_position"

    def __init__(self, field: str) -> None:
        super().__init__(f"{field} must be a delta seq: a whole number from 0 (as sent in the events' id)", field=field)


class PositionAhead(InvalidInput):
    code = "feed_position_ahead"

    def __init__(self, field: str, position: int, last_seq: int) -> None:
        super().__init__(
            f"{field}={position} names a seq not yet given out (the feed is at {last_seq}); re-bootstrap from "
            "the channel snapshot and follow the feed from its delta_cursor", field=field,
        )


class PositionTrimmed(ApiError):
    status_code = 410
    code = "feed_position_trimmed"

    def __init__(self, field: str, position: int, oldest: int, channel: str) -> None:
        super().__init__(
            f"the feed no longer holds seq {position + 1} (the oldest retained is {oldest}); re-bootstrap: read "
            f"GET /v1/channels/{channel}/snapshot and follow the feed from its delta_cursor", field=field,
        )


class RateLimited(ApiError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            f"this API key is over its request rate (its rate_per_s in AVAIL_API_KEYS); retry in {retry_after_s} s",
            headers={"Retry-After": str(retry_after_s)},
        )


class BodyTooLarge(StarletteHTTPException):
    """Raised by the body limit while the body is read.

    An ``HTTPException`` because FastAPI turns any other exception raised while it
    reads a body into a 400 answer.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes (AVAIL_MAX_BODY_BYTES)")


class ServiceUnavailable(ApiError):
    status_code = 503
    code = "redis_unavailable"


class RulesUnavailable(ServiceUnavailable):
    code = "rules_unavailable"

    def __init__(self) -> None:
        super().__init__("no rule set has been published yet: is the dataflow running?", field="channel")


def error_body(code: str, message: str, field: str | None = None) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message, "field": field}})


def error_response(
    status_code: int, code: str, message: str, field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    return Response(
        error_body(code, message, field), status_code=status_code, media_type="application/json",
        headers=dict(headers) if headers else None,
    )


def field_name(loc: Sequence[int | str]) -> str:
    """``("body", "skus", 3)`` → ``skus[3]``; the location kind (path, query, body) is dropped."""
    name = ""
    for part in loc[1:]:
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            name += f".{part}" if name else part
    return name or (str(loc[0]) if loc else "body")


def describe_validation_error(error: Mapping[str, Any]) -> tuple[int, str, str, str]:
    """One pydantic/FastAPI error → (status, code, field, message)."""
    loc: Sequence[int | str] = error.get("loc", ())
    kind = str(error.get("type", ""))
    if kind == "json_invalid":
        detail = (error.get("ctx") or {}).get("error", "JSON decode error")
        return 400, "malformed_body", "body", f"request body is not valid JSON: {detail}"
    field = field_name(loc)
    if kind == "string_pattern_mismatch":
        is_sku = field == "sku" or field.startswith("skus[") or field.endswith(".sku")  # lines[3].sku
        return 422, "invalid_sku" if is_sku else "invalid_request", field, f"{field} must be {ID_RULE}"
    if kind == "too_long" and field == "skus":
        return 422, "too_many_skus", field, f"at most {MAX_BATCH} SKUs per request"
    if kind == "too_long" and field == "lines":
        return 422, "too_many_lines", field, f"at most {MAX_BATCH} lines per request"
    if kind == "extra_forbidden":
        return 422, "unknown_field", field, f"unknown field {field!r}"
    if len(loc) == 1 and loc[0] == "body":
        return 422, "malformed_body", "body", f"request body: {error.get('msg', 'invalid')}"
    return 422, "invalid_request", field, f"{field}: {error.get('msg', 'invalid value')}"


def _first_error(errors: Sequence[Any]) -> Mapping[str, Any]:
    # Container-level errors ("too many SKUs") say more than the first bad item inside it.
    return min(errors, key=lambda e: len(e.get("loc", ()))) if errors else {}


def _on_api_error(_: Request, exc: ApiError) -> Response:
    return error_response(exc.status_code, exc.code, exc.message, exc.field, exc.headers)


def unknown_sku_failure(exc: UnknownSku) -> tuple[int, bytes]:
    return 404, error_body("unknown_sku", f"no availability for SKU {exc.sku!r}: never seen", "sku")


def _on_unknown_sku(_: Request, exc: UnknownSku) -> Response:
    status_code, body = unknown_sku_failure(exc)
    return Response(body, status_code=status_code, media_type="application/json")


def _on_validation_error(request: Request, exc: RequestValidationError) -> Response:
    errors = exc.errors()
    content_type = request.headers.get("content-type", "")
    if any(e.get("loc", ())[:1] == ("body",) for e in errors) and not _is_json(content_type):
        # FastAPI reads a body as JSON only when it says so: curl -d sends a form's type.
        return error_response(
            415, "unsupported_media_type",
            f"the request body must be sent with Content-Type: application/json (got {content_type or 'none'})",
            "content-type")
    status_code, code, field, message = describe_validation_error(_first_error(errors))
    return error_response(status_code, code, message, field)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


_HTTP_CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}


def _on_http_exception(_: Request, exc: StarletteHTTPException) -> Response:
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), None, exc.headers)


def _on_body_too_large(_: Request, exc: BodyTooLarge) -> Response:
    return error_response(413, "body_too_large", str(exc.detail), "body")


def redis_failure(method: str, path: str, exc: redis_errors.RedisError) -> tuple[int, bytes]:
    """Logs a failed Redis call and gives the answer's status and body: 503 when Redis is not answering."""
    if isinstance(exc, redis_errors.ConnectionError | redis_errors.TimeoutError):
        log.warning("Redis unavailable during %s %s: %s", method, path, type(exc).__name__)
        return 503, error_body("redis_unavailable", "the availability store (Redis) is not answering; retry")
    log.error("Redis error during %s %s", method, path, exc_info=exc)
    return 500, error_body("internal_error", "unexpected answer from the availability store")


def _on_redis_error(request: Request, exc: redis_errors.RedisError) -> Response:
    status_code, body = redis_failure(request.method, request.url.path, exc)
    return Response(body, status_code=status_code, media_type="application/json")


def _on_unexpected(_: Request, exc: Exception) -> Response:
    # Starlette re-raises after this answer is sent, and the server logs the traceback.
    return error_response(500, "internal_error", "internal error; see the API log")


def _register(app: FastAPI, exc_type: type[E], render: Callable[[Request, E], Response]) -> None:
    async def handler(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, exc_type):  # Starlette looks handlers up by class, so this cannot happen
            raise exc
        return render(request, exc)

    app.add_exception_handler(exc_type, handler)


def install_error_handlers(app: FastAPI) -> None:
    """Registers the mapping from exceptions to JSON error answers."""
    _register(app, ApiError, _on_api_error)
    _register(app, UnknownSku, _on_unknown_sku)
    _register(app, RequestValidationError, _on_validation_error)
    _register(app, BodyTooLarge, _on_body_too_large)
    _register(app, StarletteHTTPException, _on_http_exception)
    _register(app, redis_errors.ConnectionError, _on_redis_error)
    _register(app, redis_errors.TimeoutError, _on_redis_error)
    _register(app, redis_errors.RedisError, _on_redis_error)
    _register(app, Exception, _on_unexpected)
