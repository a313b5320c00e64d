"""The HTTP routes: parse the request, call a query, build the answer (contract §4)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, cast

import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.responses import Response, StreamingResponse

from availability_api import promise, queries, reads, sse
from availability_api.auth import ANONYMOUS_ADMIN, Principal
from availability_api.context import Context
from availability_api.delta_stream import follow
from availability_api.documents import SnapshotCursor, decode_snapshot_cursor, encode_snapshot_cursor, snapshot_page
from availability_api.errors import RateLimited, RulesUnavailable, Unauthorized
from availability_api.freshness import HEADER, Freshness
from availability_api.openapi import NO_ROUTE_404, STALE_HEADER, delta_stream_responses, error_responses
from availability_api.schemas import (
    BatchRequest,
    BatchResponse,
    ChannelSnapshot,
    PromiseRequest,
    PromiseResponse,
    SkuAvailability,
    SkuSchedule,
)
from availability_api.types import DEFAULT_PAGE, ID_PATTERN, ID_RULE, MAX_PAGE, Document
from projection.explain import explain_document


async def get_context(request: Request) -> Context:  # async: a sync dependency would run in a thread
    return cast(Context, request.app.state.context)


_api_key_header = APIKeyHeader(
    name="X-API-Key", scheme_name="ApiKey", auto_error=False,
    description="An API key from AVAIL_API_KEYS. Scopes: read (every channel), read:<channel>, admin.",
)
_bearer = HTTPBearer(
    scheme_name="BearerKey", auto_error=False,
    description="The same API key as `Authorization: Bearer <key>`, for clients that can only send that "
    "(a Prometheus scrape: `authorization: {type: Bearer, credentials: <key>}`).",
)


@dataclass(frozen=True, slots=True)
class Call:
    """An authenticated request: the scopes of its key and the app's context."""

    principal: Principal
    ctx: Context


async def authenticate(
    request: Request, key: Annotated[str | None, Security(_api_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Call:
    # One dependency (plus the header schemes, which document X-API-Key and Bearer) keeps per-request
    # dependency solving cheap: it is most of the framework's cost on the hot path.
    ctx = cast(Context, request.app.state.context)
    key = key or (bearer.credentials if bearer is not None else None)
    if ctx.keyring is None:
        return Call(ANONYMOUS_ADMIN, ctx)
    if not key:
        raise Unauthorized("missing X-API-Key header")
    principal = ctx.keyring.lookup(key)
    if principal is None:
        raise Unauthorized("unknown API key")
    if principal.rate_per_s is not None:
        retry_after_s = await ctx.limiter.take(principal)
        if retry_after_s:
            ctx.metrics.rate_limited.inc()
            raise RateLimited(retry_after_s)
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


def answer(body: bytes, freshness: Freshness) -> Response:
    """An availability answer rendered by ``reads``."""
    return Response(body, media_type="application/json", headers={HEADER: freshness.header})


def availability_response(document: Document, freshness: Freshness) -> Response:
    """An availability answer, saying whether its data is fresh (``stale`` fields and header)."""
    document.update(freshness.fields)
    return Response(orjson.dumps(document), media_type="application/json", headers={HEADER: freshness.header})


_FRESHNESS_DOC = (
    "\n\n`stale` (and the `X-Availability-Stale` header) says whether the engine is keeping these numbers "
    "current: false (`0`), or true with `stale_reason` (`flow_down`, `no_input`, `input_idle`, `lagging`, "
    "`unknown`; see /readyz for details)."
)
_FRESH_200: dict[int | str, dict[str, Any]] = {200: {"headers": STALE_HEADER}}


router = APIRouter()


# Before the single-SKU route: OPTIONS/PUT/... /v1/availability/batch then answers 405 with `Allow: POST`
# (the first route matching the path names the methods); GET of it still reaches the SKU route.
@router.post(
    "/v1/availability/batch", tags=["availability"], response_model=BatchResponse,
    summary="Availability of up to 1,000 SKUs",
    description=(
        "One result per requested SKU, in request order, read in one Redis round trip. A SKU never seen "
        "answers `known: false` with every channel (or the asked one) at 0 and no nodes. Needs `read`, "
        "`admin`, or `read:<channel>` together with `channel`. A body over AVAIL_MAX_BODY_BYTES answers 413."
        + _FRESHNESS_DOC
    ),
    responses=_FRESH_200 | error_responses(400, 401, 403, 413, 415, 422, 429, 503),
)
async def post_batch(body: BatchRequest, call: Authenticated) -> Response:
    channel, ctx = body.channel, call.ctx
    call.principal.require_read(channel)
    view, feeding = await reads.channel_view(ctx, channel)
    return answer(*await reads.batch_answer(ctx, body.skus, channel, view, feeding))


_UNKNOWN_CHANNEL_422: dict[int, tuple[str, str, str | None]] = {
    422: ("unknown_channel", "unknown channel 'tv'; the active rules define: amazon, web", "channel"),
}
_PROMISE_DOC = (
    "\n\nDays are UTC dates; *today* is the API clock's. Expected supply (purchase-order lines, advance "
    "shipping notices, transfers with an ETA) counts from its sellable day, max(expected date, tomorrow) + "
    "the rules' `promise.lead_days` of its node's type, up to today + `promise.horizon_days`, and only on "
    "channels with `future_supply: true`; on any other channel every day shows today's number. Worked out "
    "when asked, so the answer moves on at midnight without any new event."
)


# Before the single-SKU route, as the batch route is (a POST there would otherwise answer 405).
@router.post(
    "/v1/availability/promise", tags=["availability"], response_model=PromiseResponse,
    summary="Promise dates for up to 1,000 order lines",
    description=(
        "For each line, in request order and each on its own (two lines of one SKU do not add up): `date`, the "
        "earliest day from today on when the channel shows at least `qty`, and `available`, what it shows "
        "then; `date` is null when no day within the horizon does, and `available` is then the number at the "
        "horizon. A SKU never seen shows 0 (`date` null). Every SKU is read in one Redis round trip. Needs "
        "`read`, `admin` or `read:<channel>`. Fields at fault are named like `lines[3].qty`; more than 1,000 "
        "lines answer 422 naming `lines`." + _PROMISE_DOC + _FRESHNESS_DOC
    ),
    responses=_FRESH_200 | error_responses(400, 401, 403, 413, 415, 422, 429, 503, examples={
        422: ("invalid_request", "lines[3].qty: Input should be greater than or equal to 1", "lines[3].qty"),
    }),
)
async def post_promise(body: PromiseRequest, call: Authenticated) -> Response:
    call.principal.require_read(body.channel)
    lines = [(line["sku"], line["qty"]) for line in body.lines]
    document = await promise.promise_answer(call.ctx, body.channel, lines)
    return availability_response(document, call.ctx.freshness.current())


@router.get(
    "/v1/availability/{sku:path}/explain", tags=["availability"],
    summary="How one channel's number of a SKU was computed",
    description=(
        "The channel formula step by step (contract sections 3 and 8): every node of the SKU with its position, "
        "safety stock and the rule that set it (`file:line`, or the default), whether it feeds the channel and "
        "why not (undeclared, or neither its type, tags nor id selected), its node buffer and contribution; the "
        "channel's unsourced reservations; the pool; the value after percent, buffer, min_available and "
        "max_available (defaults where the channel sets none); and `final`, which equals the channel's number "
        "(`shown`, `matches_shown`) for the same state. A SKU whose name ends in `/explain` cannot be asked for "
        "here. Needs `read`, `admin` or `read:<channel>`."
    ),
    responses=error_responses(401, 403, 404, 422, 429, 503),
)
async def get_explanation(
    sku: SkuPath, call: Authenticated,
    channel: Annotated[str, Query(pattern=ID_PATTERN, description="the channel to explain", examples=["amazon"])],
) -> Response:
    call.principal.require_read(channel)
    ctx = call.ctx
    await ctx.rules.channel(channel)  # unknown_channel (naming `channel`) before anything else
    rules = await ctx.rule_sets.current()
    fields = await ctx.skus.one(sku)
    if channel not in rules.channels:  # the rules changed between the two reads
        raise RulesUnavailable
    return json_response(explain_document(sku, channel, fields, rules))


@router.get(
    "/v1/availability/{sku:path}/schedule", tags=["availability"], response_model=SkuSchedule,
    summary="One channel's availability of a SKU day by day, with expected supply",
    description=(
        "`available` is what the channel shows today (the number of `GET /v1/availability/{sku}?channel=`); "
        "`schedule` lists, ascending, only the days after today on which the shown quantity changes, up to "
        "today + `horizon_days`: the quantity holds from each date until the next. A SKU never seen answers "
        "`available` 0 and an empty schedule. A SKU whose name ends in `/schedule` cannot be asked for here. "
        "Needs `read`, `admin` or `read:<channel>`." + _PROMISE_DOC + _FRESHNESS_DOC
    ),
    responses=_FRESH_200 | error_responses(401, 403, 422, 429, 503, examples=_UNKNOWN_CHANNEL_422),
)
async def get_schedule(
    sku: SkuPath, call: Authenticated,
    channel: Annotated[str, Query(pattern=ID_PATTERN, description="a channel of the active rules", examples=["web"])],
) -> Response:
    call.principal.require_read(channel)
    document = await promise.schedule_answer(call.ctx, sku, channel)
    return availability_response(document, call.ctx.freshness.current())


@router.get(
    "/v1/availability/{sku:path}", tags=["availability"], response_model=SkuAvailability,
    summary="Availability of one SKU",
    description=(
        "Every channel's shown quantity and every node's position of one SKU, with the time of the newest "
        "event reflected (`as_of`) and the rules version used. With `?channel=`, only that channel and only "
        "the nodes that feed it. Needs `read`, `admin`, or `read:<channel>` together with `?channel=`."
        + _FRESHNESS_DOC
    ),
    responses=_FRESH_200 | error_responses(401, 403, 404, 422, 429, 503),
)
async def get_availability(sku: SkuPath, call: Authenticated, channel: ChannelQuery = None) -> Response:
    call.principal.require_read(channel)
    ctx = call.ctx
    feeding = None if channel is None else (await reads.channel_view(ctx, channel))[1]
    return answer(*await reads.single_answer(ctx, sku, channel, feeding))


@router.get(
    "/v1/channels/{channel:path}/snapshot", tags=["channels"], response_model=ChannelSnapshot,
    summary="Every SKU's shown quantity for one channel, paged: the start of the delta feed",
    description=(
        "Pages through every known SKU in byte order. Pass `next_cursor` back as `cursor` until it is null; "
        "each SKU appears exactly once. SKUs added while paging show up if they sort after the cursor.\n\n"
        "Bootstrap a channel with it: the first page reads the feed's position first and answers it as "
        "`delta_cursor` (the same on every page). This snapshot plus the feed from there "
        "(`GET /v1/channels/{channel}/deltas?after=<delta_cursor>`) gives the current numbers, with no gap "
        "and no locks: a delta the snapshot already reflects is sent again and sets the same number. The "
        "quantities are the live ones, as the single-SKU route shows them, even for SKUs whose delta still "
        "waits in the channel's throttle (`publish` rules): a bootstrap never shows less than there is. "
        "`pending_deltas` counts those SKUs; the feed catches up at the channel's `max_per_second`. "
        "Needs `read`, `admin` or `read:<channel>`." + _FRESHNESS_DOC
    ),
    responses=_FRESH_200 | error_responses(401, 403, 404, 422, 429, 503, overrides={404: NO_ROUTE_404}),
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
    document = snapshot_page(channel, view.version, page.skus, page.values, next_cursor, str(delta_seq), page.backlog)
    return availability_response(document, ctx.freshness.current())


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
