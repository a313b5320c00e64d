"""Operations routes: liveness, readiness (with data freshness), Prometheus metrics, oversells."""

from __future__ import annotations

import time
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query
from prometheus_client import CONTENT_TYPE_LATEST
from redis import exceptions as redis_errors
from starlette.responses import PlainTextResponse, Response

from availability_api import queries
from availability_api.auth import ADMIN, READ
from availability_api.freshness import UNKNOWN, Freshness, Progress, assess
from availability_api.openapi import error_responses
from availability_api.routes import Authenticated, Ctx, json_response
from availability_api.schemas import Health, Readiness

router = APIRouter()


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
        "than AVAIL_STALE_AFTER_S; 503 with the same body otherwise. No API key needed.\n\n"
        "`freshness` is what availability answers say in `stale`/`X-Availability-Stale` (read here afresh): "
        "`flow_down`, `no_input`, `input_idle` and `lagging` flag the data, and only `flow_down` (and Redis "
        "not answering) makes the process unready: stale data is still the best answer there is."
    ),
    responses={503: {"model": Readiness, "description": "not ready; `checks` says why", "content": {
        "application/json": {"example": {"ready": False, "checks": {
            "redis": {"ok": True, "detail": "PING answered"},
            "rules": {"ok": True, "detail": "rules document present"},
            "flow": {"ok": False, "detail": "newest heartbeat 42.0 s old (limit 10 s)"},
        }, "freshness": {
            "stale": True, "reason": "flow_down", "detail": "newest flow heartbeat 42.0 s old (limit 10 s)",
        }}},
    }}},
)
async def readyz(ctx: Ctx) -> Response:
    state = await queries.read_readiness(ctx.redis, ctx.keys)
    redis_ok, rules_ok, age = state.redis is None, state.rules_present, state.heartbeat_age_s
    stale_after_s = ctx.freshness.limits.flow_down_after_s
    flow_ok = redis_ok and age is not None and age < stale_after_s
    if not redis_ok:
        flow_detail = "unknown: Redis is not answering"
    elif age is None:
        flow_detail = "no heartbeat from the dataflow"
    else:
        flow_detail = f"newest heartbeat {max(age, 0.0):.1f} s old (limit {stale_after_s:g} s)"
    if state.heartbeats is None or state.progress is None:
        freshness = Freshness(UNKNOWN, "unknown: Redis is not answering")
    else:
        progress = Progress.parse(state.heartbeats, state.progress)
        freshness = assess(progress, time.time_ns() // 1000, ctx.freshness.limits)
    ready = redis_ok and rules_ok and flow_ok
    return json_response({"ready": ready, "checks": {
        "redis": {"ok": redis_ok, "detail": state.redis or "PING answered"},
        "rules": {"ok": rules_ok, "detail": _rules_detail(state)},
        "flow": {"ok": flow_ok, "detail": flow_detail},
    }, "freshness": freshness.report()}, 200 if ready else 503)


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
    **error_responses(401, 403, 429, json_route=False),
}


@router.get(
    "/metrics", tags=["operations"], response_class=PlainTextResponse, summary="Prometheus metrics",
    description=(
        "The API's request counts and latencies by route template, method and status, requests refused by the "
        "per-key rate limit, and the dataflow's counters as read from Redis at scrape time (`avail_flow_*`; "
        "`avail_flow_stats_up` is 0 when Redis did not answer). Needs `read` or `admin`."
    ),
    responses=_METRICS_RESPONSES,
)
async def metrics(call: Authenticated) -> Response:
    call.principal.require_any(READ, ADMIN)
    ctx = call.ctx
    stats: dict[str, str] | None
    try:
        stats, rules_version = await queries.read_flow_stats_and_rules(ctx.redis, ctx.keys)
    except (redis_errors.ConnectionError, redis_errors.TimeoutError):
        stats, rules_version = None, None
    return Response(ctx.metrics.render(stats, rules_version), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/v1/ops/oversells", tags=["operations"], summary="The latest oversells and phantom sales, newest first",
    description=(
        "Oversells (a `reserve` for a channel beyond the number the channel showed just before it; `units` is "
        "the excess) and phantom sales (a sale or pick that left a node's on_hand below 0 and lower than before; "
        "`units` = min(qty, -on_hand after)), exactly as contract section 8 defines them, newest first by "
        "`occurred_at`. Each event is recorded once, whatever replays. The counts per channel and node type "
        "are on `/metrics` (`avail_oversells_total`, `avail_phantom_sales_total`…). Needs `admin`."
    ),
    responses=error_responses(401, 403, 422, 429, 503),
)
async def oversells(
    call: Authenticated, limit: Annotated[int, Query(ge=1, le=1000, description="incidents to list")] = 100,
) -> Response:
    call.principal.require_any(ADMIN)
    ctx = call.ctx
    latest = await queries.read_incidents(ctx.redis, ctx.keys, limit)
    return json_response({"incidents": [orjson.loads(document) for document in latest]})
