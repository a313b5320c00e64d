"""The operations page (``/ui``) and the one admin document it polls (``/v1/ops/overview``).

The page is a single committed HTML file with its script and styles inline: no build
step, nothing loaded from outside the machine. It holds no data, so it is served
without a key; the key is typed into the page, kept in the tab's session storage and
sent as ``X-API-Key``, never in a URL.

The sparklines come from ``counter_history``: each API process samples the flow's
counters in the background.
"""

from __future__ import annotations

import contextlib
import time
from importlib import resources
from typing import Annotated

import orjson
from fastapi import APIRouter, Query
from redis import exceptions as redis_errors
from starlette.responses import HTMLResponse, Response

from availability_api import queries
from availability_api.auth import ADMIN
from availability_api.counter_history import count, rejected_total, series
from availability_api.openapi import error_responses
from availability_api.routes import Authenticated, json_response

DLQ_EXPORT_COMMAND = "avail dlq export -o dead-letters.jsonl"

router = APIRouter()

_PAGE = resources.files("availability_api").joinpath("ui/index.html").read_bytes()
# Inline script and styles only; nothing from another origin, no framing.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                               "img-src 'self' data:; frame-ancestors 'none'",
    "Cache-Control": "no-cache",
    "Referrer-Policy": "no-referrer",
}


@router.get("/ui", include_in_schema=False)
async def ui_page() -> Response:
    return HTMLResponse(_PAGE, headers=_PAGE_HEADERS)


@router.get(
    "/v1/ops/overview", tags=["operations"], summary="What the operations page shows, in one document",
    description=(
        "The active rules version and the result of the last rules change (a refused change lists its problems "
        "with file and line), the data's freshness, the flow's totals, the recent per-interval rates this API "
        "process sampled (events applied and rejected a second, mean event-to-queryable seconds), the latest "
        "dead letters (summaries: the dead-letter topic holds them whole; `dlq_export_command` exports them) "
        "and the latest oversells and phantom sales. Needs `admin`."
    ),
    responses=error_responses(401, 403, 422, 429, 503),
)
async def overview(
    call: Authenticated, rejects: Annotated[int, Query(ge=0, le=100, description="dead letters to list")] = 20,
    incidents: Annotated[int, Query(ge=0, le=1000, description="oversells and phantom sales to list")] = 20,
) -> Response:
    call.principal.require_any(ADMIN)
    ctx = call.ctx
    state = await queries.read_overview(ctx.redis, ctx.keys, rejects, incidents)
    sampler = ctx.sampler
    with contextlib.suppress(redis_errors.ConnectionError, redis_errors.TimeoutError):
        if not sampler.samples() or time.time() - sampler.samples()[-1].at_s >= sampler.every_s:
            await sampler.sample()  # a first request after start gets a point to draw from
    stats = state.stats
    return json_response({
        "rules": {
            "version": state.rules_version,
            "reloads": count(stats.get("rules_reloaded")),
            "reload_failures": count(stats.get("rules_reload_failed")),
            "refused": orjson.loads(state.rules_error) if state.rules_error else None,
        },
        "freshness": ctx.freshness.current().report(),
        "totals": {
            "applied": count(stats.get("applied")),
            "duplicate": count(stats.get("duplicate")),
            "rejected": rejected_total(stats),
        },
        "series": series(sampler.samples()),
        "sample_every_s": sampler.every_s,
        "rejects": [orjson.loads(document) for document in state.rejects],
        "dlq_export_command": DLQ_EXPORT_COMMAND,
        "incidents": [orjson.loads(document) for document in state.incidents],
    })
