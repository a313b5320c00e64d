r"""Kafka message values to typed inbound events (contract sections 1 and 7), or a Rejection.

Bytes go through msgspec Structs (a tagged union on ``type`` with ``Meta``
constraints), msgspec's validation errors are mapped to a ``RejectCode`` and the
field at fault, and the Structs are converted to the frozen dataclasses of
``atp.events``. ``load_tests/decode_alternative.py`` holds the same rules written
by hand over ``orjson.loads``; ``load_tests/bench_decode.py`` compares the two.

Decisions where the contract is silent:

- A ``None`` or empty value (a tombstone) is ``NOT_JSON``.
- Invalid UTF-8 anywhere, even inside an ignored field, is ``NOT_UTF8``; it wins
  over malformed JSON. JSON escapes of lone surrogates (``"\ud800"``) are
  ``NOT_JSON``: they cannot be re-encoded for the dead-letter topic or Redis.
- JSON ``null`` in a required field is ``WRONG_TYPE``; in an optional field
  (reserve ``node``/``expires_at``, pick ``reservation_id``, receipt
  ``reference``, release ``node``/``qty``, transfer_shipped ``expected_at``) it
  means absent.
- ``release``: ``node`` and ``qty`` are optional and unused, but when present they
  must be valid (a producer sending a malformed qty has a bug worth seeing).
  Every other unknown field, on any type (``node`` on transfers, ``qty`` on
  snapshots, ...), is ignored without validation.
- Duplicate keys: every occurrence is validated and the last one wins; two
  different ``type`` values are ``INVALID_VALUE``.
- Integers beyond 64 bits are out of range, not wrong type; a float literal
  (``5.0``, ``1e3``, ``1e400``) in an integer field is ``WRONG_TYPE``. Nesting
  deeper than the parser allows (about 1,000 levels) is ``NOT_JSON``.
- Timestamps: RFC 3339 ``date-time`` only: ``T``/``t`` separator, ``Z``/``z`` or
  ``+HH:MM``/``-HH:MM`` offset, any number of fraction digits (truncated to
  microseconds, never rounded). A leap second (``:60``) is accepted and counts as
  the first second of the next minute, as POSIX time does. No space separator,
  no offset without colon, no missing seconds.
- ``expires_at`` at or before ``occurred_at`` is valid here; per-SKU state decides
  that such a reservation never counts. ``expected_at`` may be any time, past ones
  included: late supply is sellable from tomorrow (section 7).
- ``supply_id`` follows the id rule (1 to 128 characters, ``INVALID_ID``);
  ``expected_at`` is checked after ``occurred_at``. ``expected_at`` on
  ``transfer_received``/``transfer_cancelled`` is an unknown field, ignored.
- A valid event whose type is not accepted on its topic is ``WRONG_TOPIC``; all
  other checks come first. With several faults in one message, one is reported.
- ``disposition`` and ``type`` are case-sensitive; ``reference`` is any string.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, ClassVar, Final

import msgspec

from atp.events import (
    TYPE_NAMES,
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

MAX_VALUE_BYTES: Final = 65_536
MAX_QTY: Final = 1_000_000
MAX_ON_HAND: Final = 1_000_000_000
CODE_PATTERN: Final = r"^[A-Za-z0-9._:/-]{1,64}\Z"  # \Z: "$" would accept a final "\n"

ID_FIELDS: Final = frozenset({"event_id", "reservation_id", "transfer_id", "supply_id"})
NODE_FIELDS: Final = frozenset({"node", "from_node", "to_node"})
FIELD_CODES: Final[dict[str, RejectCode]] = {
    **dict.fromkeys(ID_FIELDS, RejectCode.INVALID_ID),
    **dict.fromkeys(NODE_FIELDS, RejectCode.INVALID_NODE),
    "sku": RejectCode.INVALID_SKU,
    "channel": RejectCode.INVALID_CHANNEL,
    "qty": RejectCode.QTY_OUT_OF_RANGE,
    "on_hand": RejectCode.QTY_OUT_OF_RANGE,
}
"""The code for a value of the right JSON type that breaks its field's rule."""

_CHARSET = "1 to 64 characters of A-Z a-z 0-9 . _ - : /"
FIELD_RULES: Final[dict[str, str]] = {
    **dict.fromkeys(ID_FIELDS, "1 to 128 characters"),
    **dict.fromkeys(NODE_FIELDS, _CHARSET),
    "sku": _CHARSET,
    "channel": _CHARSET,
    "reason": "1 to 256 characters",
    "disposition": "one of restock, damaged, inspect",
}

_RFC3339 = re.compile(  # [0-9], not \d: \d also matches non-ASCII digits
    r"([0-9]{4})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3]):([0-5][0-9]):([0-5][0-9]|60)"
    r"(\.[0-9]+)?([Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DAY = _EPOCH.toordinal()
_MICROSECOND = timedelta(microseconds=1)


def parse_timestamp(text: str) -> int | None:
    """Converts an RFC 3339 timestamp with offset to exact microseconds since epoch.

    Args:
        text: e.g. ``2026-11-23T10:15:00.123+05:30``.

    Returns:
        Microseconds since 1970-01-01T00:00Z (fraction truncated), or None if
        ``text`` is not such a timestamp.
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        return None
    try:  # C fast path; it refuses t, z and leap seconds, which the slow path takes
        return (datetime.fromisoformat(text) - _EPOCH) // _MICROSECOND
    except ValueError:
        pass
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        days = date(int(year), int(month), int(day)).toordinal() - _EPOCH_DAY
    except ValueError:  # e.g. February 30th
        return None
    seconds = days * 86_400 + int(hour) * 3_600 + int(minute) * 60 + int(second)
    if offset not in ("Z", "z"):
        shift = int(offset[1:3]) * 3_600 + int(offset[4:6]) * 60
        seconds += -shift if offset[0] == "+" else shift
    micros = int(fraction[1:7].ljust(6, "0")) if fraction else 0
    return seconds * 1_000_000 + micros


class InvalidField(Exception):
    """Control flow inside decoders only; never escapes ``decode_event``."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(rejection)
        self.rejection = rejection


def timestamp_field(text: str, field: str) -> int:
    """Parses a timestamp field, raising InvalidField with BAD_TIMESTAMP."""
    micros = parse_timestamp(text)
    if micros is None:
        detail = f"{field} must be an RFC 3339 timestamp with offset, e.g. 2026-11-23T10:15:00.123Z"
        raise InvalidField(Rejection(RejectCode.BAD_TIMESTAMP, detail, field))
    return micros


def check_transfer_nodes(from_node: str, to_node: str) -> None:
    """Raises InvalidField when a transfer goes nowhere."""
    if from_node == to_node:
        detail = f"to_node must differ from from_node ({from_node!r})"
        raise InvalidField(Rejection(RejectCode.INVALID_VALUE, detail, "to_node"))


def precheck(value: bytes | None) -> bytes | Rejection:
    """The checks made before parsing: returns ``value`` if it may be JSON."""
    if value is None:
        return Rejection(RejectCode.NOT_JSON, "no value (a tombstone)")
    if not value:
        return Rejection(RejectCode.NOT_JSON, "empty value")
    if len(value) > MAX_VALUE_BYTES:
        detail = f"value is {len(value)} bytes, over the {MAX_VALUE_BYTES}-byte limit"
        return Rejection(RejectCode.TOO_LARGE, detail)
    if not value.isascii():  # a fast scan; most events are pure ASCII
        try:
            value.decode("utf-8")
        except UnicodeDecodeError as exc:
            detail = f"not valid UTF-8 at byte {exc.start}"
            return Rejection(RejectCode.NOT_UTF8, detail)
    return value


def wrong_topic(event: Event, accepted_types: frozenset[str] | None) -> Rejection | None:
    """A WRONG_TOPIC rejection if ``event``'s type is not accepted, else None."""
    name = TYPE_NAMES[type(event)]
    if accepted_types is None or name in accepted_types:
        return None
    accepted = ", ".join(sorted(accepted_types))
    detail = f"type {name!r} is not accepted on this topic (accepted: {accepted})"
    return Rejection(RejectCode.WRONG_TOPIC, detail, "type")


EventId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Code = Annotated[str, msgspec.Meta(pattern=CODE_PATTERN)]
Qty = Annotated[int, msgspec.Meta(ge=1, le=MAX_QTY)]


class _Base(msgspec.Struct, tag_field="type", gc=False):
    event_id: EventId
    sku: Code


class _Movement(_Base):
    node: Code
    qty: Qty
    occurred_at: str


class _Sale(_Movement, tag="sale"):
    event_class: ClassVar[type[Sale | SaleVoid]] = Sale

    def to_event(self) -> Event:
        at = timestamp_field(self.occurred_at, "occurred_at")
        return self.event_class(self.event_id, self.sku, self.node, self.qty, at)


class _SaleVoid(_Sale, tag="sale_void"):
    event_class = SaleVoid


class _Receipt(_Movement, tag="receipt"):
    reference: str | None = None

    def to_event(self) -> Event:
        at = timestamp_field(self.occurred_at, "occurred_at")
        return Receipt(self.event_id, self.sku, self.node, self.qty, at, self.reference)


class _Pick(_Movement, tag="pick"):
    reservation_id: EventId | None = None

    def to_event(self) -> Event:
        at = timestamp_field(self.occurred_at, "occurred_at")
        return Pick(self.event_id, self.sku, self.node, self.qty, at, self.reservation_id)


class _Return(_Movement, tag="return"):
    disposition: Disposition

    def to_event(self) -> Event:
        at = timestamp_field(self.occurred_at, "occurred_at")
        return Return(self.event_id, self.sku, self.node, self.qty, self.disposition, at)


class _Adjustment(_Base, tag="adjustment"):
    node: Code
    qty: Annotated[int, msgspec.Meta(ge=-MAX_QTY, le=MAX_QTY)]
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    occurred_at: str

    def to_event(self) -> Event:
        if self.qty == 0:
            raise InvalidField(Rejection(RejectCode.QTY_OUT_OF_RANGE, "qty must be non-zero", "qty"))
        at = timestamp_field(self.occurred_at, "occurred_at")
        return Adjustment(self.event_id, self.sku, self.node, self.qty, self.reason, at)


class _Snapshot(_Base, tag="snapshot"):
    node: Code
    on_hand: Annotated[int, msgspec.Meta(ge=0, le=MAX_ON_HAND)]
    as_of: str

    def to_event(self) -> Event:
        as_of = timestamp_field(self.as_of, "as_of")
        return InventorySnapshot(self.event_id, self.sku, self.node, self.on_hand, as_of)


class _Reserve(_Base, tag="reserve"):
    reservation_id: EventId
    channel: Code
    qty: Qty
    occurred_at: str
    node: Code | None = None
    expires_at: str | None = None

    def to_event(self) -> Event:
        at = timestamp_field(self.occurred_at, "occurred_at")
        expires = None if self.expires_at is None else timestamp_field(self.expires_at, "expires_at")
        return Reserve(self.event_id, self.sku, self.reservation_id, self.channel, self.qty, at, self.node, expires)


class _Release(_Base, tag="release"):
    reservation_id: EventId
    occurred_at: str
    node: Code | None = None  # validated, then dropped (module docstring)
    qty: Qty | None = None

    def to_event(self) -> Event:
        at = timestamp_field(self.occurred_at, "occurred_at")
        return Release(self.event_id, self.sku, self.reservation_id, at)


class _Transfer(_Base):
    transfer_id: EventId
    from_node: Code
    to_node: Code
    qty: Qty
    occurred_at: str


class _TransferShipped(_Transfer, tag="transfer_shipped"):
    expected_at: str | None = None

    def to_event(self) -> Event:
        check_transfer_nodes(self.from_node, self.to_node)
        at = timestamp_field(self.occurred_at, "occurred_at")
        expected = None if self.expected_at is None else timestamp_field(self.expected_at, "expected_at")
        return TransferShipped(
            self.event_id, self.sku, self.transfer_id, self.from_node, self.to_node, self.qty, at, expected)


class _TransferReceived(_Transfer, tag="transfer_received"):
    event_class: ClassVar[type[TransferReceived | TransferCancelled]] = TransferReceived

    def to_event(self) -> Event:
        check_transfer_nodes(self.from_node, self.to_node)
        at = timestamp_field(self.occurred_at, "occurred_at")
        return self.event_class(self.event_id, self.sku, self.transfer_id, self.from_node, self.to_node, self.qty, at)


class _TransferCancelled(_TransferReceived, tag="transfer_cancelled"):
    event_class = TransferCancelled


class _SupplyExpected(_Base, tag="supply_expected"):
    supply_id: EventId
    node: Code
    qty: Qty
    expected_at: str
    occurred_at: str

    def to_event(self) -> Event:
        at = timestamp_field(self.occurred_at, "occurred_at")
        expected = timestamp_field(self.expected_at, "expected_at")
        return SupplyExpected(self.event_id, self.sku, self.supply_id, self.node, self.qty, expected, at)


class _SupplyCancelled(_Base, tag="supply_cancelled"):
    supply_id: EventId
    occurred_at: str

    def to_event(self) -> Event:
        at = timestamp_field(self.occurred_at, "occurred_at")
        return SupplyCancelled(self.event_id, self.sku, self.supply_id, at)


_Wire = (
    _Sale | _SaleVoid | _Reserve | _Release | _Pick | _TransferShipped | _TransferReceived | _TransferCancelled
    | _Return | _Receipt | _Adjustment | _Snapshot | _SupplyExpected | _SupplyCancelled
)  # fmt: skip
_DECODER: Final = msgspec.json.Decoder(_Wire)
_TYPE_NAMES: Final = frozenset(TYPE_NAMES.values())
_EXPECTED_GOT = re.compile(r"Expected `([^`]*)`, got `([^`]*)`")
_INT_FIELDS: Final = frozenset({"qty", "on_hand"})


def _rejection_for(error: msgspec.ValidationError) -> Rejection:
    # the last separator: a quoted value earlier in the message may contain the same text
    head, at, path = str(error).rpartition(" - at `$.")
    message, field = (head, path.rstrip("`")) if at else (path, "")
    if not at:
        if message.startswith("Object missing required field"):
            name = message.split("`")[1]
            return Rejection(RejectCode.MISSING_FIELD, f"missing required field {name!r}", name)
        if message.startswith("Expected `object`"):
            got = message.rpartition("got ")[2].strip("`")
            return Rejection(RejectCode.NOT_OBJECT, f"expected a JSON object, got {got}")
        if message == "Number out of range":  # a lone float literal beyond double range, e.g. 1e400
            return Rejection(RejectCode.NOT_OBJECT, "expected a JSON object, got float")
        return Rejection(RejectCode.NOT_JSON, message)
    if field == "type":
        if message.startswith("Invalid value "):
            if message[15:-1] in _TYPE_NAMES:  # a known type here can only be a second, different "type" key
                return Rejection(RejectCode.INVALID_VALUE, "type: given twice with different values", field)
            return Rejection(RejectCode.UNKNOWN_TYPE, f"unknown type {message[14:]}", field)
        return Rejection(RejectCode.WRONG_TYPE, "type: expected str", field)
    kinds = _EXPECTED_GOT.fullmatch(message)
    if kinds is not None:
        expected = kinds[1].removesuffix(" | null")
        return Rejection(RejectCode.WRONG_TYPE, f"{field}: expected {expected}, got {kinds[2]}", field)
    if message == "Number out of range":  # a float literal beyond double range, in any typed field
        expected = "int" if field in _INT_FIELDS else "str"
        return Rejection(RejectCode.WRONG_TYPE, f"{field}: expected {expected}, got float", field)
    code = FIELD_CODES.get(field, RejectCode.INVALID_VALUE)
    if message == "Integer value out of range":  # beyond 64 bits
        return Rejection(code, f"{field} is out of range", field)
    rule = FIELD_RULES.get(field) or message.replace("Expected `int`", "an integer")
    return Rejection(code, f"{field} must be {rule}", field)


def decode_event(value: bytes | None, accepted_types: frozenset[str] | None = None) -> Event | Rejection:
    """Decodes one Kafka message value into an inbound event.

    Never raises: anything invalid per contract section 1 comes back as data.

    Args:
        value: the raw message value (None for a tombstone).
        accepted_types: the ``type`` names allowed on the source topic
            (``atp.events.TOPIC_TYPES``), or None to accept every type.

    Returns:
        The typed event, or a Rejection with its code, a human detail and the
        field at fault (None when the message as a whole is at fault).
    """
    checked = precheck(value)
    if isinstance(checked, Rejection):
        return checked
    try:
        event = _DECODER.decode(checked).to_event()
    except msgspec.ValidationError as exc:
        return _rejection_for(exc)
    except InvalidField as exc:
        return exc.rejection
    except (msgspec.DecodeError, RecursionError) as exc:
        return Rejection(RejectCode.NOT_JSON, f"not valid JSON: {exc}")
    return wrong_topic(event, accepted_types) or event
