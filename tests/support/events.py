"""Typed ``atp`` events to contract JSON (the inverse of ``atp.decode_event``), for producers in tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from atp.events import (
    TYPE_NAMES,
    Adjustment,
    Event,
    InventorySnapshot,
    Pick,
    Receipt,
    Release,
    Reserve,
    Return,
    Sale,
    SaleVoid,
    Topic,
    TransferCancelled,
    TransferReceived,
    TransferShipped,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

TOPIC_OF: dict[type, Topic] = {
    Sale: Topic.POS_SALES, SaleVoid: Topic.POS_SALES,
    Reserve: Topic.ECOM_RESERVATIONS, Release: Topic.ECOM_RESERVATIONS,
    Pick: Topic.WMS_PICKS,
    TransferShipped: Topic.INVENTORY_TRANSFERS, TransferReceived: Topic.INVENTORY_TRANSFERS,
    TransferCancelled: Topic.INVENTORY_TRANSFERS,
    Return: Topic.RETURNS,
    Receipt: Topic.ERP_INVENTORY, Adjustment: Topic.ERP_INVENTORY, InventorySnapshot: Topic.ERP_INVENTORY,
}


def rfc3339(micros: int) -> str:
    return (_EPOCH + timedelta(microseconds=micros)).isoformat(timespec="microseconds").replace("+00:00", "Z")


def to_json(event: Event) -> bytes:
    body: dict[str, object] = {"type": TYPE_NAMES[type(event)]}
    for name in event.__slots__:  # type: ignore[union-attr]
        value = getattr(event, name)
        if value is None:
            continue
        if name in ("occurred_at", "as_of", "expires_at"):
            value = rfc3339(value)
        body[name] = value.value if hasattr(value, "value") else value
    return orjson.dumps(body)
