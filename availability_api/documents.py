"""Pure functions from projection fields to the JSON answers of the API (contract §4)."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Container, Iterable
from dataclasses import dataclass

from availability_api.errors import InvalidCursor
from availability_api.types import ID_PATTERN, Document, SkuFields
from projection import AS_OF, CHANNEL_PREFIX, NODE_PREFIX, RULES_VERSION, format_as_of

_ID = re.compile(ID_PATTERN)
_CURSOR = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
_SEQ = re.compile(r"^[0-9]{1,19}$")


def _node(node: str, value: str) -> Document:
    # The fields of projection.decode_position, without building a NodePosition (hot path).
    on_hand, reserved, in_transit, unsellable, safety_stock, atp = map(int, value.split(","))
    return {
        "node": node, "on_hand": on_hand, "reserved": reserved, "in_transit": in_transit,
        "unsellable": unsellable, "safety_stock": safety_stock, "atp": atp,
    }


def sku_document(
    sku: str, fields: SkuFields, channel: str | None = None, feeding: Container[str] | None = None,
) -> Document:
    """One known SKU's answer: every channel and node, or one channel and the nodes in ``feeding``."""
    channels: dict[str, int] = {}
    nodes: list[tuple[str, str]] = []
    for name, value in fields.items():
        if name.startswith(NODE_PREFIX):
            node = name[len(NODE_PREFIX):]
            if feeding is None or node in feeding:
                nodes.append((node, value))
        elif channel is None and name.startswith(CHANNEL_PREFIX):
            channels[name[len(CHANNEL_PREFIX):]] = int(value)
    if channel is not None:
        channels[channel] = int(fields.get(CHANNEL_PREFIX + channel, 0))
    nodes.sort()
    return {
        "sku": sku,
        "as_of": format_as_of(fields.get(AS_OF)),
        "rules_version": fields.get(RULES_VERSION),
        "channels": dict(sorted(channels.items())),
        "nodes": [_node(node, value) for node, value in nodes],
    }


def batch_item(
    sku: str, fields: SkuFields, channel: str | None, feeding: Container[str] | None,
    channel_names: Iterable[str], rules_version: str | None,
) -> Document:
    """One entry of a batch answer: ``known`` plus the single-SKU shape, zeros when never seen."""
    if fields:
        return {"sku": sku, "known": True} | sku_document(sku, fields, channel, feeding)
    names = [channel] if channel is not None else channel_names
    return {
        "sku": sku, "known": False, "as_of": None, "rules_version": rules_version,
        "channels": dict.fromkeys(names, 0), "nodes": [],
    }


def snapshot_page(
    channel: str, rules_version: str, skus: list[str], values: list[str | None], next_cursor: str | None,
    delta_cursor: str | None = None, pending_deltas: int = 0,
) -> Document:
    return {
        "channel": channel,
        "rules_version": rules_version,
        "items": [
            {"sku": sku, "available": int(v) if v is not None else 0} for sku, v in zip(skus, values, strict=True)
        ],
        "next_cursor": next_cursor,
        "delta_cursor": delta_cursor,
        "pending_deltas": pending_deltas,
    }


@dataclass(frozen=True, slots=True)
class SnapshotCursor:
    """Where a snapshot continues: after ``last_sku``, for the feed position ``delta_seq`` of its first page."""

    delta_seq: int
    last_sku: str


def encode_snapshot_cursor(cursor: SnapshotCursor) -> str:
    """``<delta_seq>.<encode_cursor(last_sku)>``: opaque to clients, and never a cursor of the old format."""
    return f"{cursor.delta_seq}.{encode_cursor(cursor.last_sku)}"


def decode_snapshot_cursor(cursor: str) -> SnapshotCursor:
    """The position a snapshot cursor stands for; ``InvalidCursor`` unless it is one we could have made."""
    seq, dot, sku_part = cursor.partition(".")
    if not dot or not _SEQ.fullmatch(seq) or str(int(seq)) != seq:
        raise InvalidCursor()
    return SnapshotCursor(int(seq), decode_cursor(sku_part))


def encode_cursor(last_sku: str) -> str:
    """Opaque snapshot cursor: URL-safe base64 (unpadded) of the last SKU of a page."""
    return base64.urlsafe_b64encode(last_sku.encode()).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> str:
    """The last SKU a cursor stands for; ``InvalidCursor`` unless it is one we could have made."""
    if not _CURSOR.fullmatch(cursor):
        raise InvalidCursor()
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        sku = raw.decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidCursor() from None
    if not _ID.fullmatch(sku) or encode_cursor(sku) != cursor:
        raise InvalidCursor()
    return sku

