"""The two hot routes, answered before the framework's routing and dependency solving.

``GET /v1/availability/{sku}[?channel=<c>]`` and ``POST /v1/availability/batch`` are
most of the traffic, and FastAPI's per-request machinery (route matching, dependency
solving, parameter validation, exception wrappers) cost more than the answer itself
(see docs/performance.md). This pure ASGI middleware answers the common case of both
with the same code the routes use (``reads``), so the answers are the same, byte for byte.

Anything out of the ordinary passes on untouched to the FastAPI routes, which answer
it as they always did and still describe both routes in /docs: a missing or unknown
key, a missing scope, an unknown channel or no rules yet, a refused rate, a query
string other than ``channel=<id>``, a SKU that does not match the charset, a body that
is not JSON with ``skus`` (1 to 1,000 ids) and an optional ``channel``. No request is
rate-limited twice: the token is taken only once the answer is ours, and from then on
every outcome (404 unknown SKU, 503 Redis down) is answered here, with the bodies of
``availability_api.errors``.
"""

from __future__ import annotations

import re
from typing import Any, cast

import orjson
from redis import exceptions as redis_errors
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from atp.exceptions import UnknownSku
from availability_api import reads
from availability_api.auth import ANONYMOUS_ADMIN, Principal
from availability_api.context import Context
from availability_api.errors import ApiError, redis_failure, unknown_sku_failure
from availability_api.freshness import HEADER, Freshness
from availability_api.types import ID_PATTERN, MAX_BATCH

SINGLE_PREFIX = "/v1/availability/"
ROUTE_SUFFIXES = ("/explain", "/schedule")
"""``/v1/availability/{sku}/explain`` and ``…/schedule`` are other routes' (a SKU may hold ``/``, but not end so)."""
BATCH_PATH = "/v1/availability/batch"
_ID = re.compile(ID_PATTERN)
_ONE_ID = ID_PATTERN.removeprefix("^").removesuffix("$")
_IDS = re.compile(f"{_ONE_ID}(?:\n{_ONE_ID})*")
"""Ids joined by newlines: all of them valid exactly when this matches and the newlines are only the joins."""
_CHANNEL_QUERY = re.compile(rb"channel=([A-Za-z0-9._:/-]{1,64})")
_API_KEY = b"x-api-key"
_CONTENT_TYPE = b"content-type"
_JSON = b"application/json"
_STALE_HEADER = HEADER.lower().encode("latin-1")
_BATCH_FIELDS = frozenset({"skus", "channel"})


class FastReads:
    """Answers the hot availability routes directly; ``routes`` names their FastAPI routes (metrics labels)."""

    def __init__(self, app: ASGIApp, single_route: BaseRoute, batch_route: BaseRoute) -> None:
        self.app = app
        self.single_route = single_route
        self.batch_route = batch_route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method, path = scope["method"], scope["path"]
            if method == "POST" and path == BATCH_PATH:
                replay = await self._batch(scope, receive, send)
                if replay is None:
                    return
                receive = replay
            elif method == "GET" and path.startswith(SINGLE_PREFIX) and await self._single(scope, receive, send):
                return
        await self.app(scope, receive, send)

    async def _single(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """True when answered; False: pass on to the routes (nothing was consumed)."""
        ctx = _context(scope)
        sku = scope["path"][len(SINGLE_PREFIX):]
        if ctx is None or not _ID.fullmatch(sku) or sku.endswith(ROUTE_SUFFIXES):
            return False
        query: bytes = scope["query_string"]
        channel: str | None = None
        if query:
            match = _CHANNEL_QUERY.fullmatch(query)
            if match is None:
                return False
            channel = match[1].decode("ascii")
        principal = _principal(ctx, scope)
        if principal is None or not principal.may_read(channel):
            return False
        feeding = None
        if channel is not None:
            try:
                _, feeding = await reads.channel_view(ctx, channel)
            except (ApiError, redis_errors.RedisError):
                return False
        if not await _within_limit(ctx, principal):
            return False
        scope["route"] = self.single_route
        try:
            body, freshness = await reads.single_answer(ctx, sku, channel, feeding)
        except UnknownSku as exc:
            await _send_error(send, *unknown_sku_failure(exc))
            return True
        except redis_errors.RedisError as exc:
            await _send_error(send, *redis_failure(scope["method"], scope["path"], exc))
            return True
        await _send_json(send, body, freshness)
        return True

    async def _batch(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """None when answered, else the ``receive`` to pass on (it replays the body read here)."""
        ctx = _context(scope)
        if ctx is None or _header(scope, _CONTENT_TYPE) != _JSON:
            return receive
        body, messages = await _read_body(receive)
        replay = _replaying(messages, receive)
        if body is None:
            return replay
        request = _batch_request(body)
        if request is None:
            return replay
        skus, channel = request
        principal = _principal(ctx, scope)
        if principal is None or not principal.may_read(channel):
            return replay
        try:
            view, feeding = await reads.channel_view(ctx, channel)
        except (ApiError, redis_errors.RedisError):
            return replay
        if not await _within_limit(ctx, principal):
            return replay
        scope["route"] = self.batch_route
        try:
            body, freshness = await reads.batch_answer(ctx, skus, channel, view, feeding)
        except redis_errors.RedisError as exc:
            await _send_error(send, *redis_failure(scope["method"], scope["path"], exc))
            return None
        await _send_json(send, body, freshness)
        return None


def _context(scope: Scope) -> Context | None:
    app = scope.get("app")
    return cast(Context | None, getattr(getattr(app, "state", None), "context", None))


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return cast(bytes, value)
    return None


def _principal(ctx: Context, scope: Scope) -> Principal | None:
    if ctx.keyring is None:
        return ANONYMOUS_ADMIN
    key = _header(scope, _API_KEY)
    if not key:
        return None
    return ctx.keyring.lookup(key.decode("latin-1"))


async def _within_limit(ctx: Context, principal: Principal) -> bool:
    """As ``routes.authenticate``: a key without a rate (or no auth) is not limited; else one Redis call.

    Over the limit (or Redis failing), the request goes on to the routes, which answer 429 (or 503).
    """
    if principal.rate_per_s is None:
        return True
    try:
        return await ctx.limiter.take(principal) == 0
    except redis_errors.RedisError:
        return False


def _batch_request(body: bytes) -> tuple[list[str], str | None] | None:
    """``(skus, channel)`` when the body is exactly what the batch model accepts, else None."""
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if type(parsed) is not dict or not _BATCH_FIELDS.issuperset(parsed):
        return None
    skus, channel = parsed.get("skus"), parsed.get("channel")
    if type(skus) is not list or not 1 <= len(skus) <= MAX_BATCH:
        return None
    try:
        joined = "\n".join(skus)  # every id at once: one regex call instead of one per SKU
    except TypeError:  # not all strings (orjson makes exact str only)
        return None
    if joined.count("\n") != len(skus) - 1 or not _IDS.fullmatch(joined):  # no id may hold a newline itself
        return None
    if channel is not None and (type(channel) is not str or not _ID.fullmatch(channel)):
        return None
    return skus, channel


async def _read_body(receive: Receive) -> tuple[bytes | None, list[Message]]:
    """The whole body (None when the client went away) and the messages read, to replay."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return None, messages
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), messages


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


async def _send_json(send: Send, body: bytes, freshness: Freshness) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-length", str(len(body)).encode("ascii")), (b"content-type", _JSON),
        (_STALE_HEADER, freshness.header.encode("latin-1")),
    ]})
    await send({"type": "http.response.body", "body": body})


async def _send_error(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-length", str(len(body)).encode("ascii")), (b"content-type", _JSON),
    ]})
    await send({"type": "http.response.body", "body": body})

