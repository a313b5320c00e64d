"""Why an inbound message was not applied: data for the dead-letter topic."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mypy_extensions import mypyc_attr

from atp.values import ByFields


class RejectCode(StrEnum):
    """Machine-readable reject reasons, stable across releases (metrics label them)."""

    TOO_LARGE = "too_large"
    NOT_UTF8 = "not_utf8"
    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    UNKNOWN_TYPE = "unknown_type"
    WRONG_TOPIC = "wrong_topic"
    INVALID_ID = "invalid_id"
    INVALID_SKU = "invalid_sku"
    INVALID_NODE = "invalid_node"
    INVALID_CHANNEL = "invalid_channel"
    QTY_OUT_OF_RANGE = "qty_out_of_range"
    BAD_TIMESTAMP = "bad_timestamp"
    INVALID_VALUE = "invalid_value"
    # Decided by per-SKU state, not by the decoder.
    OUTSIDE_WINDOW = "outside_window"


@mypyc_attr(acyclic=True)
@dataclass(frozen=True, slots=True)
class Rejection(ByFields):
    """A message that was not applied, with the field at fault when there is one."""

    code: RejectCode
    detail: str
    field: str | None = None

    def __str__(self) -> str:
        return f"{self.code.value}: {self.detail}"
