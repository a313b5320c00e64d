"""The HTTP routes: parse the request, call a query, build the answer (contract §4)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, cast

import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Request, Security
from fastapi.security import APIKeyHeader
from prometheus_client import CONTENT_TYPE_LATEST
from redis import exceptions as redis_errors
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from avail.projection import Keys
from availability_api import queries, sse
from availability_api.auth import ADMIN, ANONYMOUS_ADMIN, READ, KeyRing, Principal
from availability_api.delta_stream import follow
from availability_api.documents import (
    SnapshotCursor,
    batch_item,
    decode_snapshot_cursor,
    encode_snapshot_cursor,
    sku_document,
    snapshot_page,
)
from availability_api.errors import Unauthorized
from availability_api.feed import FeedHub
from availability_api.metrics import ApiMetrics
from availability_api.openapi import delta_stream_responses, error_responses
from availability_api.rules_cache import RulesCache
from availability_api.schemas import (
    BatchRequest,
    BatchResponse,
    ChannelSnapshot,
    Health,
    Readiness,
    SkuAvailability,
)
from availability_api.types import DEFAULT_PAGE, ID_PATTERN, ID_RULE, MAX_PAGE, Document, RedisClient


@dataclass(frozen=True, slots=True)
class Context:
    """What the routes need, built once per app in its lifespan."""

    keys: Keys
    redis: RedisClient
    rules: RulesCache
    keyring: KeyRing | None
    """None when authentication is switched off (--insecure-no-auth)."""
    metrics: ApiMetrics
    stale_after_s: float
    hub: FeedHub
    sse_heartbeat_s: float


async def get_context(request: Request) -> Context:  # async: a sync dependency would run in a thread
    return cast(Context, request.app.state.context)


_api_key_header = APIKeyHeader(
    name="X-API-Key", scheme_name="ApiKey", auto_error=False,
    description="An API key from AVAIL_API_KEYS. Scopes: read (every channel), read:<channel>, admin.",
)


@dataclass(frozen=True, slots=True)
class Call:
    """An authenticated request: the scopes of its key and the app's context."""

    principal: Principal
    ctx: Context


async def authenticate(request: Request, key: Annotated[str | None, Security(_api_key_header)]) -> Call:
    # One dependency (plus the header scheme, which documents X-API-Key) keeps per-request
    # dependency solving cheap: it is most of the framework's cost on the hot path.
    ctx = cast(Context, request.app.state.context)
    if ctx.keyring is None:
        return Call(ANONYMOUS_ADMIN, ctx)
    if not key:
        raise Unauthorized("missing X-API-Key header")
    principal = ctx.keyring.lookup(key)
    if principal is None:
        raise Unauthorized("unknown API key")
    return Call(principal, ctx)


Ctx = Annotated[Context, Depends(get_context)]
Authenticated = Annotated[Call, Depends(authenticate)]
SkuPath = Annotated[str, Path(pattern=ID_PATTERN, description=f"the SKU: {ID_RULE}", examples=["TV-55"])]
ChannelPath = Annotated[str, Path(pattern=ID_PATTERN, description="a channel of the active rules", examples=["web"])]
ChannelQuery = Annotated[str | None, Query(
    pattern=ID_PATTERN, description="only this channel, and only the nodes that feed it", examples=["web"],
)]


def json_response(document: Document, status_code: int = 200) -> Response:
    return Response(orjson.dumps(document), status_code=status_code, media_type="application/json")


router = APIRouter()


@router.get(
    "/v1/availability/{sku:path}", tags=["availability"], response_model=SkuAvailability,
    summary="Availability of one SKU",
    description=(
        "Every channel's shown quantity and every node's position of one SKU, with the time of the newest "
        "event reflected (`as_of`) and the rules version used. With `?channel=`, only that channel and only "
        "the nodes that feed it. Needs `read`, `admin`, or `read:<channel>` together with `?channel=`."
    ),
    responses=error_responses(401, 403, 404, 422, 503),
)
async def get_availability(sku: SkuPath, call: Authenticated, channel: ChannelQuery = None) -> Response:
    call.principal.require_read(channel)
    ctx = call.ctx
    if channel is None:
        return json_response(sku_document(sku, await queries.read_sku(ctx.redis, ctx.keys, sku)))
    _, feeding = await ctx.rules.channel(channel)
    fields = await queries.read_sku(ctx.redis, ctx.keys, sku)
    return json_response(sku_document(sku, fields, channel, feeding))


@router.post(
    "/v1/availability/batch", tags=["availability"], response_model=BatchResponse,
    summary="Availability of up to 1,000 SKUs",
    description=(
        "One result per requested SKU, in request order, read in one Redis round trip. A SKU never seen "
        "answers `known: false` with every channel (or the asked one) at 0 and no nodes. Needs `read`, "
        "`admin`, or `read:<channel>` together with `channel`."
    ),
    responses=error_responses(400, 401, 403, 422, 503),
)
async def post_batch(body: BatchRequest, call: Authenticated) -> Response:
    channel, ctx = body.channel, call.ctx
    call.principal.require_read(channel)
    if channel is None:
        view, feeding = await ctx.rules.current(), None
    else:
        view, feeding = await ctx.rules.channel(channel)
    found = await queries.read_skus(ctx.redis, ctx.keys, body.skus)
    names = view.channel_names if view is not None else []
    version = view.version if view is not None else None
    return json_response({"results": [
        batch_item(sku, fields, channel, feeding, names, version) for sku, fields in zip(body.skus, found, strict=True)
    ]})


@router.get(
    "/v1/channels/{channel:path}/snapshot", tags=["channels"], response_model=ChannelSnapshot,
    summary="Every SKU's published quantity for one channel, paged: the start of the delta feed",
    description=(
        "Pages through every known SKU in byte order. Pass `next_cursor` back as `cursor` until it is null; "
        "each SKU appears exactly once. SKUs added while paging show up if they sort after the cursor.\n\n"
        "Bootstrap a channel with it: the first page reads the feed's position first and answers it as "
        "`delta_cursor` (the same on every page). This snapshot plus the feed from there "
        "(`GET /v1/channels/{channel}/deltas?after=<delta_cursor>`) gives the current numbers, with no gap "
        "and no locks: a delta the snapshot already reflects is sent again and sets the same number. The "
        "quantities are the feed's published ones, so they can lag the single-SKU route by the channel's "
        "throttle (`publish` rules). Needs `read`, `admin` or `read:<channel>`."
    ),
    responses=error_responses(401, 403, 422, 503),
)
async def get_snapshot(
    channel: ChannelPath, call: Authenticated,
    cursor: Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="SKUs per page")] = DEFAULT_PAGE,
) -> Response:
    call.principal.require_read(channel)
    ctx = call.ctx
    continued = decode_snapshot_cursor(cursor) if cursor is not None else None
    view, _ = await ctx.rules.channel(channel)
    after = continued.last_sku if continued is not None else None
    page = await queries.read_channel_page(ctx.redis, ctx.keys, channel, after, limit)
    delta_seq = continued.delta_seq if continued is not None else page.feed_seq or 0
    next_cursor = encode_snapshot_cursor(SnapshotCursor(delta_seq, page.last)) if page.last is not None else None
    return json_response(snapshot_page(channel, view.version, page.skus, page.values, next_cursor, str(delta_seq)))


@router.get(
    "/v1/channels/{channel:path}/deltas", tags=["channels"], response_class=StreamingResponse,
    summary="The channel's delta feed (Server-Sent Events)",
    description=(
        "Every change of the channel's shown quantity, as throttled by its `publish` rules, as "
        "`text/event-stream`. Each event is `id: <seq>`, `event: delta`, `data: {\"channel\", \"sku\", "
        "\"available\", \"previous\", \"as_of\", \"rules_version\", \"seq\"}`. Start after a position with "
        "`?after=<seq>` (a snapshot's `delta_cursor`) or the `Last-Event-ID` header (what an EventSource sends "
        "when it reconnects; it wins over `after`); with neither, only new deltas are sent. A reconnecting "
        "client misses nothing still retained; when the deltas after its position were trimmed the answer is "
        "410 `feed_position_trimmed`: read the snapshot again and follow from its `delta_cursor`. The server "
        "ends a stream (after a comment saying why) when the client falls too far behind, when Redis stops "
        "answering and when it shuts down: reconnect with `Last-Event-ID`. Needs `read`, `admin` or "
        "`read:<channel>`."
    ),
    responses=delta_stream_responses(),
)
async def get_deltas(
    channel: ChannelPath, call: Authenticated, request: Request,
    after: Annotated[str | None, Query(
        description="stream the deltas after this seq (a snapshot's `delta_cursor`)", examples=["1041"],
    )] = None,
    last_event_id: Annotated[str | None, Header(
        alias=sse.LAST_EVENT_ID, description="the id of the last event received; wins over `after`",
        examples=["1041"],
    )] = None,
) -> Response:
    call.principal.require_read(channel)
    position = sse.requested_position(last_event_id, after)
    ctx = call.ctx
    await ctx.rules.channel(channel)
    start = await ctx.hub.start_after(channel, position)
    stream = follow(
        ctx.hub, channel, start, heartbeat_s=ctx.sse_heartbeat_s, is_disconnected=request.is_disconnected,
        metrics=ctx.metrics,
    )
    return StreamingResponse(stream, media_type="text/event-stream", headers=sse.HEADERS)


@router.get(
    "/healthz", tags=["operations"], response_model=Health, summary="Liveness",
    description="200 while the process serves HTTP. No API key needed; touches nothing else.",
)
async def healthz() -> Response:
    return json_response({"status": "ok"})


@router.get(
    "/readyz", tags=["operations"], response_model=Readiness, summary="Readiness",
    description=(
        "200 when Redis answers PING, a rule set is published and the dataflow's newest heartbeat is younger "
        "than AVAIL_STALE_AFTER_S; 503 with the same body otherwise. No API key needed."
    ),
    responses={503: {"model": Readiness, "description": "not ready; `checks` says why", "content": {
        "application/json": {"example": {"ready": False, "checks": {
            "redis": {"ok": True, "detail": "PING answered"},
            "rules": {"ok": True, "detail": "rules document present"},
            "flow": {"ok": False, "detail": "newest heartbeat 42.0 s old (limit 10 s)"},
        }}},
    }}},
)
async def readyz(ctx: Ctx) -> Response:
    state = await queries.read_readiness(ctx.redis, ctx.keys)
    redis_ok, rules_ok, age = state.redis is None, state.rules_present, state.heartbeat_age_s
    flow_ok = redis_ok and age is not None and age < ctx.stale_after_s
    if not redis_ok:
        flow_detail = "unknown: Redis is not answering"
    elif age is None:
        flow_detail = "no heartbeat from the dataflow"
    else:
        flow_detail = f"newest heartbeat {max(age, 0.0):.1f} s old (limit {ctx.stale_after_s:g} s)"
    ready = redis_ok and rules_ok and flow_ok
    return json_response({"ready": ready, "checks": {
        "redis": {"ok": redis_ok, "detail": state.redis or "PING answered"},
        "rules": {"ok": rules_ok, "detail": _rules_detail(state)},
        "flow": {"ok": flow_ok, "detail": flow_detail},
    }}, 200 if ready else 503)


def _rules_detail(state: queries.Readiness) -> str:
    if not state.rules_present:
        return "no rules document published"
    running = f"rules {state.rules_version} active" if state.rules_version else "rules document present"
    # a refused change keeps the engine ready (it serves the last valid set) but is shown here
    return f"{running}; last {state.rules_refused}" if state.rules_refused else running


_METRICS_EXAMPLE = (
    '# TYPE avail_flow_events_total counter\navail_flow_events_total{status="applied"} 1.234e+06\n'
    '# TYPE avail_flow_events_rejected_total counter\navail_flow_events_rejected_total{code="not_json"} 3.0\n'
)

_METRICS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Prometheus text exposition format", "content": {"text/plain": {"example": _METRICS_EXAMPLE}}},
    **error_responses(401, 403, json_route=False),
}


@router.get(
    "/metrics", tags=["operations"], response_class=PlainTextResponse, summary="Prometheus metrics",
    description=(
        "The API's request counts and latencies by route template, method and status, and the dataflow's "
        "counters as read from Redis at scrape time (`avail_flow_*`; `avail_flow_stats_up` is 0 when Redis did "
        "not answer). Needs `read` or `admin`."
    ),
    responses=_METRICS_RESPONSES,
)
async def metrics(call: Authenticated) -> Response:
    call.principal.require_any(READ, ADMIN)
    ctx = call.ctx
    try:
        stats: dict[str, str] | None = await queries.read_flow_stats(ctx.redis, ctx.keys)
    except (redis_errors.ConnectionError, redis_errors.TimeoutError):
        stats = None
    return Response(ctx.metrics.render(stats), media_type=CONTENT_TYPE_LATEST)
