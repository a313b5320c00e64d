"""The losing decoder: ``orjson.loads`` plus checks written by hand.

Kept so that ``load_tests/bench_decode.py`` can rerun the comparison with
``atp.decoding`` (msgspec Structs). Same contract (sections 1 and 7), same decisions
(see the ``atp.decoding`` docstring) and the same shared helpers, except where the
parser itself differs:

- orjson turns integers beyond 64 bits into floats, so ``"qty":
  99999999999999999999999`` is ``WRONG_TYPE`` here (``QTY_OUT_OF_RANGE`` there).
- orjson refuses ``1e400`` anywhere, even in an ignored field (``NOT_JSON``).
- Duplicate keys: orjson keeps only the last, so earlier ones go unchecked and a
  repeated ``type`` is not noticed.
- With several faults in one message, fields are checked in a fixed order here,
  in key order there.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

import orjson

from atp.decoding import (
    CODE_PATTERN,
    FIELD_CODES,
    FIELD_RULES,
    MAX_ON_HAND,
    MAX_QTY,
    InvalidField,
    check_transfer_nodes,
    precheck,
    timestamp_field,
    wrong_topic,
)
from atp.events import (
    Adjustment,
    Disposition,
    Event,
    InventorySnapshot,
    Pick,
    Receipt,
    Release,
    Reserve,
    Return,
    Sale,
    SaleVoid,
    SupplyCancelled,
    SupplyExpected,
    TransferCancelled,
    TransferReceived,
    TransferShipped,
)
from atp.rejections import RejectCode, Rejection

Json = dict[str, Any]
_ABSENT: Final = object()
_CODE = re.compile(CODE_PATTERN)
_KINDS: Final = {str: "str", int: "int", float: "float", bool: "bool", dict: "object", list: "array"}
_DISPOSITIONS: Final = {d.value: d for d in Disposition}


def _kind(value: object) -> str:
    return "null" if value is None else _KINDS.get(type(value), type(value).__name__)


def _invalid(field: str, rule: str | None = None) -> InvalidField:
    code = FIELD_CODES.get(field, RejectCode.INVALID_VALUE)
    return InvalidField(Rejection(code, f"{field} must be {rule or FIELD_RULES[field]}", field))


def _bad_type(obj: Json, field: str, expected: str) -> InvalidField:
    value = obj.get(field, _ABSENT)
    if value is _ABSENT:
        return InvalidField(Rejection(RejectCode.MISSING_FIELD, f"missing required field {field!r}", field))
    detail = f"{field}: expected {expected}, got {_kind(value)}"
    return InvalidField(Rejection(RejectCode.WRONG_TYPE, detail, field))


def _text(obj: Json, field: str) -> str:
    value = obj.get(field)
    if type(value) is str:
        return value
    raise _bad_type(obj, field, "str")


def _id(obj: Json, field: str) -> str:
    value = _text(obj, field)
    if 0 < len(value) <= 128:
        return value
    raise _invalid(field)


def _code(obj: Json, field: str) -> str:
    value = _text(obj, field)
    if _CODE.search(value) is not None:
        return value
    raise _invalid(field)


def _int(obj: Json, field: str, low: int, high: int) -> int:
    value = obj.get(field)
    if type(value) is not int:  # bool is an int subclass: type(), not isinstance()
        raise _bad_type(obj, field, "int")
    if value < low:
        raise _invalid(field, f"an integer >= {low}")
    if value > high:
        raise _invalid(field, f"an integer <= {high}")
    return value


def _qty(obj: Json) -> int:
    return _int(obj, "qty", 1, MAX_QTY)


def _time(obj: Json, field: str) -> int:
    return timestamp_field(_text(obj, field), field)


def _optional(obj: Json, field: str, parse: Callable[[Json, str], Any]) -> Any:
    return None if obj.get(field) is None else parse(obj, field)


def _sale(obj: Json) -> Event:
    return Sale(_id(obj, "event_id"), _code(obj, "sku"), _code(obj, "node"), _qty(obj), _time(obj, "occurred_at"))


def _sale_void(obj: Json) -> Event:
    return SaleVoid(_id(obj, "event_id"), _code(obj, "sku"), _code(obj, "node"), _qty(obj), _time(obj, "occurred_at"))


def _reserve(obj: Json) -> Event:
    return Reserve(
        _id(obj, "event_id"),
        _code(obj, "sku"),
        _id(obj, "reservation_id"),
        _code(obj, "channel"),
        _qty(obj),
        _time(obj, "occurred_at"),
        _optional(obj, "node", _code),
        _optional(obj, "expires_at", _time),
    )


def _release(obj: Json) -> Event:
    event = Release(_id(obj, "event_id"), _code(obj, "sku"), _id(obj, "reservation_id"), _time(obj, "occurred_at"))
    _optional(obj, "node", _code)
    _optional(obj, "qty", lambda o, _: _qty(o))
    return event


def _pick(obj: Json) -> Event:
    return Pick(
        _id(obj, "event_id"),
        _code(obj, "sku"),
        _code(obj, "node"),
        _qty(obj),
        _time(obj, "occurred_at"),
        _optional(obj, "reservation_id", _id),
    )


def _transfer(cls: type[TransferReceived | TransferCancelled]) -> Callable[[Json], Event]:
    def build(obj: Json) -> Event:
        event_id, sku, transfer_id = _id(obj, "event_id"), _code(obj, "sku"), _id(obj, "transfer_id")
        from_node, to_node = _code(obj, "from_node"), _code(obj, "to_node")
        qty, at = _qty(obj), _time(obj, "occurred_at")
        check_transfer_nodes(from_node, to_node)
        return cls(event_id, sku, transfer_id, from_node, to_node, qty, at)

    return build


def _transfer_shipped(obj: Json) -> Event:
    event_id, sku, transfer_id = _id(obj, "event_id"), _code(obj, "sku"), _id(obj, "transfer_id")
    from_node, to_node, qty = _code(obj, "from_node"), _code(obj, "to_node"), _qty(obj)
    # types before values, as msgspec checks the whole struct before ``to_event`` parses times
    occurred, expected = _text(obj, "occurred_at"), _optional(obj, "expected_at", _text)
    check_transfer_nodes(from_node, to_node)
    at = timestamp_field(occurred, "occurred_at")
    expected_at = None if expected is None else timestamp_field(expected, "expected_at")
    return TransferShipped(event_id, sku, transfer_id, from_node, to_node, qty, at, expected_at)


def _return(obj: Json) -> Event:
    event_id, sku, node, qty = _id(obj, "event_id"), _code(obj, "sku"), _code(obj, "node"), _qty(obj)
    disposition = _DISPOSITIONS.get(_text(obj, "disposition"))
    if disposition is None:
        raise _invalid("disposition")
    return Return(event_id, sku, node, qty, disposition, _time(obj, "occurred_at"))


def _receipt(obj: Json) -> Event:
    return Receipt(
        _id(obj, "event_id"),
        _code(obj, "sku"),
        _code(obj, "node"),
        _qty(obj),
        _time(obj, "occurred_at"),
        _optional(obj, "reference", _text),
    )


def _adjustment(obj: Json) -> Event:
    event_id, sku, node = _id(obj, "event_id"), _code(obj, "sku"), _code(obj, "node")
    qty = _int(obj, "qty", -MAX_QTY, MAX_QTY)
    if qty == 0:
        raise InvalidField(Rejection(RejectCode.QTY_OUT_OF_RANGE, "qty must be non-zero", "qty"))
    reason = _text(obj, "reason")
    if not 0 < len(reason) <= 256:
        raise _invalid("reason")
    return Adjustment(event_id, sku, node, qty, reason, _time(obj, "occurred_at"))


def _supply_expected(obj: Json) -> Event:
    event_id, sku, supply_id = _id(obj, "event_id"), _code(obj, "sku"), _id(obj, "supply_id")
    node, qty = _code(obj, "node"), _qty(obj)
    occurred, expected = _text(obj, "occurred_at"), _text(obj, "expected_at")
    at = timestamp_field(occurred, "occurred_at")  # occurred_at first, as atp.decoding
    return SupplyExpected(event_id, sku, supply_id, node, qty, timestamp_field(expected, "expected_at"), at)


def _supply_cancelled(obj: Json) -> Event:
    return SupplyCancelled(_id(obj, "event_id"), _code(obj, "sku"), _id(obj, "supply_id"), _time(obj, "occurred_at"))


def _snapshot(obj: Json) -> Event:
    event_id, sku, node = _id(obj, "event_id"), _code(obj, "sku"), _code(obj, "node")
    on_hand = _int(obj, "on_hand", 0, MAX_ON_HAND)
    return InventorySnapshot(event_id, sku, node, on_hand, _time(obj, "as_of"))


_BUILDERS: Final[dict[str, Callable[[Json], Event]]] = {
    "sale": _sale,
    "sale_void": _sale_void,
    "reserve": _reserve,
    "release": _release,
    "pick": _pick,
    "transfer_shipped": _transfer_shipped,
    "transfer_received": _transfer(TransferReceived),
    "transfer_cancelled": _transfer(TransferCancelled),
    "return": _return,
    "receipt": _receipt,
    "adjustment": _adjustment,
    "snapshot": _snapshot,
    "supply_expected": _supply_expected,
    "supply_cancelled": _supply_cancelled,
}


def decode_event(value: bytes | None, accepted_types: frozenset[str] | None = None) -> Event | Rejection:
    """Same contract as ``atp.decoding.decode_event``, built on orjson.

    Args:
        value: the raw message value (None for a tombstone).
        accepted_types: the ``type`` names allowed on the source topic, or None.

    Returns:
        The typed event, or a Rejection.
    """
    checked = precheck(value)
    if isinstance(checked, Rejection):
        return checked
    try:
        obj = orjson.loads(checked)
    except orjson.JSONDecodeError as exc:
        return Rejection(RejectCode.NOT_JSON, f"not valid JSON: {exc}")
    if type(obj) is not dict:
        return Rejection(RejectCode.NOT_OBJECT, f"expected a JSON object, got {_kind(obj)}")
    type_name = obj.get("type")
    builder = _BUILDERS.get(type_name) if type(type_name) is str else None
    try:
        if builder is None:
            if type(type_name) is str:
                return Rejection(RejectCode.UNKNOWN_TYPE, f"unknown type {type_name!r}", "type")
            raise _bad_type(obj, "type", "str")
        event = builder(obj)
    except InvalidField as exc:
        return exc.rejection
    return wrong_topic(event, accepted_types) or event
