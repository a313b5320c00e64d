"""Request and response models: the batch and promise bodies are parsed with them; the rest document /docs.

Answers are built as dicts and serialised with orjson on the hot path; these models
describe exactly those dicts (see ``documents.py``).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, with_config
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from availability_api.types import MAX_BATCH, MAX_PROMISE_QTY, ChannelName, Sku

_SKU_EXAMPLE: dict[str, Any] = {
    "sku": "TV-55", "as_of": "2026-11-23T10:15:00.123Z", "rules_version": "3f9c2a1b",
    "channels": {"amazon": 3, "web": 7},
    "nodes": [
        {"node": "dc-east", "on_hand": 12, "reserved": 2, "in_transit": 4, "unsellable": 0,
         "safety_stock": 0, "atp": 10},
        {"node": "store-001", "on_hand": 5, "reserved": 1, "in_transit": 0, "unsellable": 1,
         "safety_stock": 2, "atp": 2},
    ],
}


class NodeOut(BaseModel):
    """One position: the SKU at one node (contract §2)."""

    node: str
    on_hand: int = Field(description="may be negative when a till sold stock the system did not know about")
    reserved: int
    in_transit: int
    unsellable: int = Field(description="shown, never promised (damaged or awaiting inspection)")
    safety_stock: int
    atp: int = Field(description="max(0, on_hand − reserved − safety_stock)")


StaleReason = Literal["flow_down", "no_input", "input_idle", "lagging", "unknown"]


class Staleness(BaseModel):
    """Whether the engine keeps the numbers of an answer current (also in the X-Availability-Stale header)."""

    stale: bool = Field(description="true when the numbers may be out of date; `stale_reason` says why")
    stale_reason: StaleReason | None = Field(
        None, description="only when stale: flow_down (no flow heartbeat), no_input (no event ever applied), "
        "input_idle (no event applied lately), lagging (events applied long after they occurred), unknown "
        "(freshness could not be read)",
    )


class SkuFieldsOut(BaseModel):
    """What one SKU's answer and a batch item share."""

    sku: str
    as_of: str | None = Field(description="newest event time reflected, RFC 3339 UTC with milliseconds")
    rules_version: str | None = Field(description="content hash of the rule set these numbers were computed with")
    channels: dict[str, int] = Field(description="channel → shown quantity (only the asked channel with ?channel=)")
    nodes: list[NodeOut] = Field(description="positions by node id (only the nodes feeding the asked channel)")


class SkuAvailability(SkuFieldsOut, Staleness):
    """One SKU's availability."""

    model_config = ConfigDict(json_schema_extra={"examples": [_SKU_EXAMPLE | {"stale": False}]})


class BatchRequest(BaseModel):
    """Up to 1,000 SKUs, optionally for one channel."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"skus": ["TV-55", "HDMI-2M", "NEVER-SEEN"], "channel": "web"}]},
    )

    skus: Annotated[list[Sku], Field(min_length=1, max_length=MAX_BATCH)]
    channel: ChannelName | None = None


class BatchItem(SkuFieldsOut):
    """A SKU of a batch; ``known`` is false (zeros, no nodes) for a SKU never seen."""

    known: bool


class BatchResponse(Staleness):
    """One result per requested SKU, in request order (repeats included)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"results": [
        {"known": True} | _SKU_EXAMPLE,
        {"sku": "NEVER-SEEN", "known": False, "as_of": None, "rules_version": "3f9c2a1b",
         "channels": {"amazon": 0, "web": 0}, "nodes": []},
    ], "stale": False}]})

    results: list[BatchItem]


class SnapshotItem(BaseModel):
    sku: str
    available: int = Field(description="the quantity the channel's delta feed last published (0 when none)")


class ChannelSnapshot(Staleness):
    """One page of every SKU's shown quantity for a channel, in SKU byte order."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "channel": "web", "rules_version": "3f9c2a1b",
        "items": [{"sku": "HDMI-2M", "available": 40}, {"sku": "TV-55", "available": 7}],
        "next_cursor": "1042.VFYtNTU", "delta_cursor": "1042", "pending_deltas": 0, "stale": True,
        "stale_reason": "lagging",
    }]})

    channel: str
    rules_version: str
    items: list[SnapshotItem]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last page")
    delta_cursor: str = Field(
        description="the feed seq this snapshot starts from, the same on every page: follow the delta feed "
        "with GET /v1/channels/{channel}/deltas?after=<delta_cursor>",
    )
    pending_deltas: int = Field(
        description="SKUs whose change still waits in the channel's throttle when this page was read: the feed "
        "trails the live numbers by these (they are already in this snapshot); it drains at the channel's "
        "publish.max_per_second",
    )


class ScheduleDay(BaseModel):
    date: dt.date = Field(description="a UTC date after today")
    available: int = Field(description="shown from this date on (until the next entry)")


class SkuSchedule(Staleness):
    """One channel's shown quantity of a SKU from today to today + horizon_days, as a step function."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "sku": "TV-55", "channel": "web", "rules_version": "3f9c2a1b", "as_of": "2026-11-18T09:00:00.000Z",
        "today": "2026-11-18", "horizon_days": 30, "available": 0,
        "schedule": [{"date": "2026-11-21", "available": 54}], "stale": False,
    }]})

    sku: str
    channel: str
    rules_version: str = Field(description="the rule set the later days were worked out with")
    as_of: str | None = Field(description="newest event time reflected (null for a SKU never seen)")
    today: dt.date = Field(description="the API clock's UTC date")
    horizon_days: int = Field(description="the schedule covers today … today + horizon_days (rules `promise`)")
    available: int = Field(description="shown today: the channel's number in every availability answer")
    schedule: list[ScheduleDay] = Field(
        description="ascending, only the dates after today on which the shown quantity differs from the day "
        "before; empty when it never does within the horizon",
    )


@with_config(ConfigDict(extra="forbid"))
class PromiseLine(TypedDict):
    """An order line. A TypedDict, not a model: a thousand of them validate four times faster."""

    sku: Sku
    qty: Annotated[int, Field(strict=True, ge=1, le=MAX_PROMISE_QTY, description="units wanted")]


class PromiseRequest(BaseModel):
    """Order lines (1 to 1,000) to date for one channel."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"channel": "web", "lines": [
            {"sku": "TV-55", "qty": 2}, {"sku": "TV-55", "qty": 60}, {"sku": "NEVER-SEEN", "qty": 1},
        ]}]},
    )

    channel: ChannelName
    lines: Annotated[list[PromiseLine], Field(min_length=1, max_length=MAX_BATCH)]


class PromiseResult(BaseModel):
    sku: str
    qty: int
    date: dt.date | None = Field(
        description="the earliest day from today on when the channel shows at least qty; null if none within "
        "the horizon",
    )
    available: int = Field(description="shown on `date`; when `date` is null, shown at the horizon")


class PromiseResponse(Staleness):
    """One result per line, in request order (repeats included), each answered on its own."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "channel": "web", "rules_version": "3f9c2a1b", "today": "2026-11-18", "results": [
            {"sku": "TV-55", "qty": 2, "date": "2026-11-21", "available": 54},
            {"sku": "TV-55", "qty": 60, "date": None, "available": 54},
            {"sku": "NEVER-SEEN", "qty": 1, "date": None, "available": 0},
        ], "stale": False,
    }]})

    channel: str
    rules_version: str
    today: dt.date = Field(description="the API clock's UTC date")
    results: list[PromiseResult]


class ErrorDetail(BaseModel):
    code: str = Field(description="machine-readable, e.g. unknown_sku, invalid_sku, unauthorized")
    message: str = Field(description="for people")
    field: str | None = Field(description="the request field at fault, e.g. sku, skus[3], channel, cursor, body")


class ErrorResponse(BaseModel):
    """Every 4xx/5xx answer."""

    error: ErrorDetail


class Health(BaseModel):
    status: str


class Check(BaseModel):
    ok: bool
    detail: str


class FreshnessReport(BaseModel):
    stale: bool
    reason: StaleReason | None = Field(description="as `stale_reason` of the availability answers; null when fresh")
    detail: str


class Readiness(BaseModel):
    """Ready when Redis answers, a rule set is published and the flow's heartbeat is fresh."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"ready": True, "checks": {
        "redis": {"ok": True, "detail": "PING answered"},
        "rules": {"ok": True, "detail": "rules document present"},
        "flow": {"ok": True, "detail": "newest heartbeat 0.4 s old (limit 10 s)"},
    }, "freshness": {
        "stale": False, "reason": None, "detail": "last event applied 0.3 s ago, 0.2 s after it occurred",
    }}]})

    ready: bool
    checks: dict[str, Check]
    freshness: FreshnessReport = Field(description="whether availability answers are flagged stale, and why")
