"""Decoding Kafka values into events (contract section 1), run against both decoders.

``atp.decoding`` (msgspec) is the one the engine uses; ``load_tests.decode_alternative``
(orjson) is the benchmark's runner-up, tested here so that it cannot rot silently.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from atp import decoding
from atp.events import (
    TOPIC_TYPES,
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
    Topic,
    TransferCancelled,
    TransferEvent,
    TransferReceived,
    TransferShipped,
)
from atp.rejections import RejectCode, Rejection
from load_tests import decode_alternative

Decode = Callable[..., Event | Rejection]
both_decoders = pytest.mark.parametrize(
    "decode",
    [pytest.param(decoding.decode_event, id="msgspec"), pytest.param(decode_alternative.decode_event, id="orjson")],
)

AT = "2026-11-23T10:15:00.123Z"
AT_US = 1_795_428_900_123_000  # date -u -d @1795428900 -> Mon Nov 23 10:15:00 UTC 2026
UTC_PLUS_0530 = "2026-11-23T15:45:00.123+05:30"  # the same instant as AT
UTC_MINUS_0800 = "2026-11-23T02:15:00.123-08:00"  # the same instant as AT
HOUR_US = 3_600_000_000

VALID: dict[str, tuple[dict[str, Any], Event]] = {
    "sale": (
        {"event_id": "e-1", "type": "sale", "sku": "TV-55", "node": "store-001", "qty": 2, "occurred_at": AT},
        Sale("e-1", "TV-55", "store-001", 2, AT_US),
    ),
    "sale_void": (
        {"event_id": "e-2", "type": "sale_void", "sku": "TV-55", "node": "store-001", "qty": 1,
         "occurred_at": UTC_PLUS_0530},
        SaleVoid("e-2", "TV-55", "store-001", 1, AT_US),
    ),
    "reserve": (
        {"event_id": "e-3", "type": "reserve", "sku": "TV-55", "reservation_id": "ord-9", "channel": "web",
         "qty": 3, "occurred_at": AT, "node": "dc-east", "expires_at": "2026-11-23T11:15:00.123-00:00"},
        Reserve("e-3", "TV-55", "ord-9", "web", 3, AT_US, "dc-east", AT_US + HOUR_US),
    ),
    "release": (
        {"event_id": "e-4", "type": "release", "sku": "TV-55", "reservation_id": "ord-9",
         "occurred_at": UTC_MINUS_0800},
        Release("e-4", "TV-55", "ord-9", AT_US),
    ),
    "pick": (
        {"event_id": "e-5", "type": "pick", "sku": "TV-55", "node": "dc-east", "qty": 3, "occurred_at": AT,
         "reservation_id": "ord-9"},
        Pick("e-5", "TV-55", "dc-east", 3, AT_US, "ord-9"),
    ),
    "return": (
        {"event_id": "e-6", "type": "return", "sku": "TV-55", "node": "store-001", "qty": 1,
         "disposition": "damaged", "occurred_at": AT},
        Return("e-6", "TV-55", "store-001", 1, Disposition.DAMAGED, AT_US),
    ),
    "receipt": (
        {"event_id": "e-7", "type": "receipt", "sku": "TV-55", "node": "dc-east", "qty": 1_000_000,
         "occurred_at": AT, "reference": "PO-4711"},
        Receipt("e-7", "TV-55", "dc-east", 1_000_000, AT_US, "PO-4711"),
    ),
    "adjustment": (
        {"event_id": "e-8", "type": "adjustment", "sku": "TV-55", "node": "store-001", "qty": -4,
         "reason": "cycle count", "occurred_at": AT},
        Adjustment("e-8", "TV-55", "store-001", -4, "cycle count", AT_US),
    ),
    "snapshot": (
        {"event_id": "e-9", "type": "snapshot", "sku": "TV-55", "node": "store-001", "on_hand": 0,
         "as_of": UTC_MINUS_0800},
        InventorySnapshot("e-9", "TV-55", "store-001", 0, AT_US),
    ),
}  # fmt: skip


def transfer(type_name: str, cls: type[TransferEvent]) -> tuple[dict[str, Any], Event]:
    body = {"event_id": f"e-{type_name}", "type": type_name, "sku": "TV-55", "transfer_id": "TR-1",
            "from_node": "dc-east", "to_node": "store-001", "qty": 12, "occurred_at": AT}  # fmt: skip
    return body, cls(f"e-{type_name}", "TV-55", "TR-1", "dc-east", "store-001", 12, AT_US)


VALID["transfer_shipped"] = transfer("transfer_shipped", TransferShipped)
VALID["transfer_received"] = transfer("transfer_received", TransferReceived)
VALID["transfer_cancelled"] = transfer("transfer_cancelled", TransferCancelled)

OPTIONAL = {"reserve": {"node", "expires_at"}, "pick": {"reservation_id"}, "receipt": {"reference"}}
REQUIRED = [(t, f) for t, (body, _) in VALID.items() for f in body if f != "type" and f not in OPTIONAL.get(t, ())]


def value(type_name: str, **changes: Any) -> bytes:
    """A valid event of ``type_name`` as JSON, with fields changed (or dropped when ``...``)."""
    body = VALID[type_name][0] | changes
    return orjson.dumps({k: v for k, v in body.items() if v is not ...})


def assert_rejected(result: Event | Rejection, code: RejectCode, field: str | None = None) -> None:
    assert isinstance(result, Rejection), f"expected {code}, got {result}"
    assert (result.code, result.field) == (code, field), result
    if field is not None:
        assert field in result.detail


@both_decoders
class TestValidEvents:
    @pytest.mark.parametrize("type_name", VALID)
    def test_every_type_decodes_with_every_field(self, decode: Decode, type_name: str) -> None:
        assert decode(value(type_name)) == VALID[type_name][1]

    def test_optional_fields_may_be_absent(self, decode: Decode) -> None:
        assert decode(value("reserve", node=..., expires_at=...)) == Reserve("e-3", "TV-55", "ord-9", "web", 3, AT_US)
        assert decode(value("pick", reservation_id=...)) == Pick("e-5", "TV-55", "dc-east", 3, AT_US)
        assert decode(value("receipt", reference=...)) == Receipt("e-7", "TV-55", "dc-east", 1_000_000, AT_US)

    def test_null_in_an_optional_field_means_absent(self, decode: Decode) -> None:
        without = decode(value("reserve", node=..., expires_at=...))
        assert decode(value("reserve", node=None, expires_at=None)) == without
        assert decode(value("pick", reservation_id=None)) == decode(value("pick", reservation_id=...))

    def test_release_ignores_a_valid_node_and_qty(self, decode: Decode) -> None:
        assert decode(value("release", node="store-001", qty=2)) == VALID["release"][1]

    def test_unknown_fields_are_ignored(self, decode: Decode) -> None:
        extra = {"producer": "pos", "meta": {"deep": [1, 2.5, None]}, "qty_float": 1.5}
        assert decode(value("sale", **extra)) == VALID["sale"][1]
        assert decode(value("transfer_shipped", node="not a node!")) == VALID["transfer_shipped"][1]

    def test_key_order_does_not_matter(self, decode: Decode) -> None:
        body = VALID["pick"][0]
        assert decode(orjson.dumps(dict(reversed(body.items())))) == VALID["pick"][1]

    def test_ids_and_reason_may_hold_any_unicode(self, decode: Decode) -> None:
        event = decode(value("adjustment", event_id="Ω-日本-🙂", reason="Zählung ✓"))
        assert isinstance(event, Adjustment)
        assert (event.event_id, event.reason) == ("Ω-日本-🙂", "Zählung ✓")

    def test_boundary_values_are_accepted(self, decode: Decode) -> None:
        assert isinstance(decode(value("sale", qty=1, sku="a" * 64, event_id="e" * 128)), Sale)
        assert isinstance(decode(value("sale", sku="Az09._-:/", node="N.1_2-3:4/5")), Sale)
        assert isinstance(decode(value("adjustment", qty=-1_000_000, reason="r" * 256)), Adjustment)
        assert isinstance(decode(value("adjustment", qty=1_000_000)), Adjustment)
        assert isinstance(decode(value("snapshot", on_hand=1_000_000_000)), InventorySnapshot)
        assert isinstance(decode(value("reserve", reservation_id="é" * 128)), Reserve)

    @pytest.mark.parametrize("type_name", VALID)
    def test_each_type_is_accepted_on_its_own_topic(self, decode: Decode, type_name: str) -> None:
        topic = next(t for t, names in TOPIC_TYPES.items() if type_name in names)
        assert decode(value(type_name), TOPIC_TYPES[topic]) == VALID[type_name][1]


@both_decoders
class TestTimestamps:
    @pytest.mark.parametrize(
        ("text", "micros"),
        [
            ("1970-01-01T00:00:00Z", 0),
            ("1969-12-31T23:59:59.999999Z", -1),
            ("2026-11-23T10:15:00Z", AT_US - 123_000),
            (UTC_PLUS_0530, AT_US),
            (UTC_MINUS_0800, AT_US),
            ("2026-11-24T00:30:00+05:30", AT_US - 123_000 + 8 * HOUR_US + 45 * 60_000_000),
            ("2026-11-23t10:15:00.123z", AT_US),
            ("2024-02-29T12:00:00Z", 1_709_208_000_000_000),
            ("2016-12-31T23:59:60Z", 1_483_228_800_000_000),  # leap second = next minute's first
            ("2026-11-23T10:15:00.1Z", AT_US - 23_000),
            ("2026-11-23T10:15:00.12Z", AT_US - 3_000),
            ("2026-11-23T10:15:00.1234Z", AT_US + 400),
            ("2026-11-23T10:15:00.12345Z", AT_US + 450),
            ("2026-11-23T10:15:00.123456Z", AT_US + 456),
            ("2026-11-23T10:15:00.1234567Z", AT_US + 456),
            ("2026-11-23T10:15:00.12345678Z", AT_US + 456),
            ("2026-11-23T10:15:00.123456789+00:00", AT_US + 456),
            ("2026-11-23T10:15:00.9999999Z", AT_US - 123_000 + 999_999),  # truncated, not rounded
        ],
    )
    def test_rfc3339_timestamps_convert_to_exact_microseconds(self, decode: Decode, text: str, micros: int) -> None:
        event = decode(value("sale", occurred_at=text))
        assert isinstance(event, Sale)
        assert event.occurred_at == micros

    @pytest.mark.parametrize(
        "text",
        [
            "2026-11-23T10:15:00", "2026-11-23T10:15:00.123", "2026-11-23 10:15:00Z", "2026-11-23T10:15:00+0530",
            "2026-11-23T10:15Z", "2026-11-23", "2026-11-23T10:15:00.Z", "2026-11-23T10:15:00,123Z",
            "2026-02-29T10:15:00Z", "2026-13-01T10:15:00Z", "2026-11-31T10:15:00Z", "2026-11-23T24:00:00Z",
            "2026-11-23T10:60:00Z", "2026-11-23T10:15:61Z", "2026-11-23T10:15:00+24:00", "2026-11-23T10:15:00+05:60",
            "2026-11-23T10:15:00Z\n", " 2026-11-23T10:15:00Z", "２０２６-11-23T10:15:00Z", "0000-01-01T00:00:00Z",
            "20261123T101500Z", "2026-W48-1T10:15:00Z", "1795428900", "", "now",
        ],
    )  # fmt: skip
    def test_anything_else_is_a_bad_timestamp(self, decode: Decode, text: str) -> None:
        assert_rejected(decode(value("sale", occurred_at=text)), RejectCode.BAD_TIMESTAMP, "occurred_at")

    def test_expires_at_and_as_of_are_checked_too(self, decode: Decode) -> None:
        assert_rejected(decode(value("reserve", expires_at="tomorrow")), RejectCode.BAD_TIMESTAMP, "expires_at")
        assert_rejected(decode(value("snapshot", as_of="2026-11-23")), RejectCode.BAD_TIMESTAMP, "as_of")

    def test_epoch_number_is_wrong_type(self, decode: Decode) -> None:
        assert_rejected(decode(value("sale", occurred_at=1_795_428_900)), RejectCode.WRONG_TYPE, "occurred_at")


@given(
    st.datetimes(timezones=st.builds(timezone, st.integers(-1439, 1439).map(lambda m: timedelta(minutes=m)))),
    st.text("0123456789", max_size=6),
)
def test_any_aware_datetime_round_trips_exactly(moment: datetime, extra_digits: str) -> None:
    text = moment.isoformat(timespec="microseconds")
    text = text[:26] + extra_digits + text[26:]  # more fraction digits are truncated
    expected = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    assert decoding.parse_timestamp(text) == expected


@both_decoders
class TestWholeMessageRejections:
    def test_tombstone_is_not_json(self, decode: Decode) -> None:
        assert_rejected(decode(None), RejectCode.NOT_JSON)

    def test_empty_value_is_not_json(self, decode: Decode) -> None:
        assert_rejected(decode(b""), RejectCode.NOT_JSON)

    def test_over_64_kib_is_too_large_before_parsing(self, decode: Decode) -> None:
        assert_rejected(decode(b"\xff" * 65_537), RejectCode.TOO_LARGE)

    def test_exactly_64_kib_is_accepted(self, decode: Decode) -> None:
        padding = 65_536 - len(value("sale", pad=""))
        assert decode(value("sale", pad="x" * padding)) == VALID["sale"][1]
        assert_rejected(decode(value("sale", pad="x" * (padding + 1))), RejectCode.TOO_LARGE)

    @pytest.mark.parametrize(
        "raw",
        [value("sale").replace(b"TV-55", b"TV-\xff"), value("sale", note="x").replace(b'"x"', b'"\xc3"'),
         b'{"type":"sale","note":"\xed\xa0\x80"}', b"\xff{"],
        ids=["in_a_field", "in_an_ignored_field", "encoded_surrogate", "before_bad_json"],
    )  # fmt: skip
    def test_invalid_utf8_is_not_utf8(self, decode: Decode, raw: bytes) -> None:
        assert_rejected(decode(raw), RejectCode.NOT_UTF8)

    @pytest.mark.parametrize(
        "raw",
        [b"not json", value("sale")[:-1], b'{"qty": NaN}', b'{"qty": Infinity}', value("sale") + b" {}",
         b"\xef\xbb\xbf" + value("sale"), b'{"type": "sale", "sku": "\\ud800"}', b"   ", b"{'type': 'sale'}",
         b'{"x":' * 5_000 + b"1" + b"}" * 5_000, value("sale")[:-1] + b', "x": ' + b"[" * 5_000 + b"]" * 5_000 + b"}"],
        ids=["garbage", "truncated", "nan", "infinity", "trailing_data", "bom", "lone_surrogate_escape", "blank",
             "single_quotes", "deep_nesting", "deep_nesting_in_ignored_field"],
    )  # fmt: skip
    def test_malformed_json_is_not_json(self, decode: Decode, raw: bytes) -> None:
        assert_rejected(decode(raw), RejectCode.NOT_JSON)

    @pytest.mark.parametrize("raw", [b"[]", b'[{"type": "sale"}]', b'"sale"', b"42", b"null", b"true"])
    def test_json_other_than_an_object_is_not_object(self, decode: Decode, raw: bytes) -> None:
        assert_rejected(decode(raw), RejectCode.NOT_OBJECT)


@both_decoders
class TestTypeField:
    def test_missing_type_is_missing_field(self, decode: Decode) -> None:
        assert_rejected(decode(value("sale", type=...)), RejectCode.MISSING_FIELD, "type")

    @pytest.mark.parametrize("bad", [1, None, ["sale"], {"name": "sale"}, True])
    def test_non_string_type_is_wrong_type(self, decode: Decode, bad: object) -> None:
        assert_rejected(decode(value("sale", type=bad)), RejectCode.WRONG_TYPE, "type")

    @pytest.mark.parametrize("bad", ["stock_count", "Sale", "SALE", " sale", ""])
    def test_unknown_type_is_unknown_type(self, decode: Decode, bad: str) -> None:
        assert_rejected(decode(value("sale", type=bad)), RejectCode.UNKNOWN_TYPE, "type")

    def test_valid_event_of_another_topic_is_wrong_topic(self, decode: Decode) -> None:
        result = decode(value("sale"), TOPIC_TYPES[Topic.ECOM_RESERVATIONS])
        assert_rejected(result, RejectCode.WRONG_TOPIC, "type")
        assert "reserve" in result.detail  # type: ignore[union-attr]

    def test_field_errors_come_before_wrong_topic(self, decode: Decode) -> None:
        assert_rejected(decode(value("sale", qty=0), frozenset({"pick"})), RejectCode.QTY_OUT_OF_RANGE, "qty")

    def test_unknown_type_is_not_wrong_topic(self, decode: Decode) -> None:
        assert_rejected(decode(value("sale", type="sold"), frozenset({"pick"})), RejectCode.UNKNOWN_TYPE, "type")


@both_decoders
class TestRequiredFields:
    @pytest.mark.parametrize(("type_name", "field"), REQUIRED)
    def test_missing_required_field_is_missing_field(self, decode: Decode, type_name: str, field: str) -> None:
        assert_rejected(decode(value(type_name, **{field: ...})), RejectCode.MISSING_FIELD, field)

    @pytest.mark.parametrize(("type_name", "field"), REQUIRED)
    def test_null_required_field_is_wrong_type(self, decode: Decode, type_name: str, field: str) -> None:
        assert_rejected(decode(value(type_name, **{field: None})), RejectCode.WRONG_TYPE, field)


@both_decoders
class TestJsonTypes:
    @pytest.mark.parametrize("bad", [5.0, 1e3, "5", True, [5], {"value": 5}], ids=repr)
    def test_qty_that_is_not_a_json_integer_is_wrong_type(self, decode: Decode, bad: object) -> None:
        assert_rejected(decode(value("sale", qty=bad)), RejectCode.WRONG_TYPE, "qty")

    def test_qty_as_float_is_wrong_type(self, decode: Decode) -> None:
        assert_rejected(decode(b'{"event_id":"e","type":"sale","sku":"S","node":"N","qty":5.0,"occurred_at":"%s"}'
                               % AT.encode()), RejectCode.WRONG_TYPE, "qty")  # fmt: skip

    def test_qty_as_float_overflowing_double_is_rejected(self, decode: Decode) -> None:
        result = decode(value("sale", qty=7).replace(b'"qty":7', b'"qty":1e400'))
        assert isinstance(result, Rejection)  # msgspec: WRONG_TYPE on qty; orjson refuses the document: NOT_JSON
        assert result.code in (RejectCode.WRONG_TYPE, RejectCode.NOT_JSON)

    @pytest.mark.parametrize(
        ("type_name", "field", "bad"),
        [("sale", "event_id", 123), ("sale", "sku", {"id": "TV-55"}), ("sale", "node", ["store-001"]),
         ("reserve", "channel", 1), ("reserve", "reservation_id", 9), ("transfer_shipped", "transfer_id", 1.5),
         ("transfer_shipped", "from_node", False), ("return", "disposition", 1), ("adjustment", "reason", 7),
         ("adjustment", "qty", -4.0), ("snapshot", "on_hand", 10.0), ("snapshot", "on_hand", "10"),
         ("receipt", "reference", 4711), ("pick", "reservation_id", 9), ("reserve", "node", 1),
         ("reserve", "expires_at", 1_795_428_900), ("release", "qty", 1.0), ("release", "node", 5)],
    )  # fmt: skip
    def test_other_fields_of_the_wrong_json_type_are_wrong_type(
        self, decode: Decode, type_name: str, field: str, bad: object
    ) -> None:
        assert_rejected(decode(value(type_name, **{field: bad})), RejectCode.WRONG_TYPE, field)


@both_decoders
class TestIds:
    @pytest.mark.parametrize(
        ("type_name", "field"),
        [("sale", "event_id"), ("reserve", "reservation_id"), ("release", "reservation_id"),
         ("pick", "reservation_id"), ("transfer_received", "transfer_id")],
    )  # fmt: skip
    @pytest.mark.parametrize("bad", ["", "x" * 129, "é" * 129])
    def test_id_not_1_to_128_chars_is_invalid_id(self, decode: Decode, type_name: str, field: str, bad: str) -> None:
        assert_rejected(decode(value(type_name, **{field: bad})), RejectCode.INVALID_ID, field)


BAD_CODES = ["", "x" * 65, "TV 55", "TV-55\n", "TV#55", "télé", "TV*", "tv,55", "\u0000"]


@both_decoders
class TestCharsetFields:
    @pytest.mark.parametrize("bad", BAD_CODES, ids=repr)
    def test_sku_outside_charset_or_length_is_invalid_sku(self, decode: Decode, bad: str) -> None:
        assert_rejected(decode(value("sale", sku=bad)), RejectCode.INVALID_SKU, "sku")

    @pytest.mark.parametrize("bad", BAD_CODES, ids=repr)
    @pytest.mark.parametrize(
        ("type_name", "field"),
        [("sale", "node"), ("snapshot", "node"), ("reserve", "node"), ("release", "node"),
         ("transfer_shipped", "from_node"), ("transfer_cancelled", "to_node")],
    )  # fmt: skip
    def test_node_outside_charset_or_length_is_invalid_node(
        self, decode: Decode, type_name: str, field: str, bad: str
    ) -> None:
        assert_rejected(decode(value(type_name, **{field: bad})), RejectCode.INVALID_NODE, field)

    @pytest.mark.parametrize("bad", BAD_CODES, ids=repr)
    def test_channel_outside_charset_or_length_is_invalid_channel(self, decode: Decode, bad: str) -> None:
        assert_rejected(decode(value("reserve", channel=bad)), RejectCode.INVALID_CHANNEL, "channel")


@both_decoders
class TestQuantities:
    @pytest.mark.parametrize("bad", [0, -1, 1_000_001, -(2**63), 2**64 - 1])
    @pytest.mark.parametrize("type_name", ["sale", "sale_void", "reserve", "pick", "transfer_shipped", "return",
                                           "receipt", "release"])  # fmt: skip
    def test_qty_outside_1_to_a_million_is_out_of_range(self, decode: Decode, type_name: str, bad: int) -> None:
        assert_rejected(decode(value(type_name, qty=bad)), RejectCode.QTY_OUT_OF_RANGE, "qty")

    @pytest.mark.parametrize("bad", [0, 1_000_001, -1_000_001])
    def test_adjustment_qty_zero_or_beyond_a_million_is_out_of_range(self, decode: Decode, bad: int) -> None:
        assert_rejected(decode(value("adjustment", qty=bad)), RejectCode.QTY_OUT_OF_RANGE, "qty")

    @pytest.mark.parametrize("bad", [-1, 1_000_000_001])
    def test_snapshot_on_hand_outside_0_to_a_billion_is_out_of_range(self, decode: Decode, bad: int) -> None:
        assert_rejected(decode(value("snapshot", on_hand=bad)), RejectCode.QTY_OUT_OF_RANGE, "on_hand")


@both_decoders
class TestFieldValues:
    @pytest.mark.parametrize("bad", ["lost", "Restock", "RESTOCK", ""])
    def test_unknown_disposition_is_invalid_value(self, decode: Decode, bad: str) -> None:
        assert_rejected(decode(value("return", disposition=bad)), RejectCode.INVALID_VALUE, "disposition")

    @pytest.mark.parametrize("type_name", ["transfer_shipped", "transfer_received", "transfer_cancelled"])
    def test_transfer_to_its_own_origin_is_invalid_value(self, decode: Decode, type_name: str) -> None:
        result = decode(value(type_name, to_node="dc-east"))
        assert_rejected(result, RejectCode.INVALID_VALUE, "to_node")

    @pytest.mark.parametrize("bad", ["", "r" * 257])
    def test_adjustment_reason_not_1_to_256_chars_is_invalid_value(self, decode: Decode, bad: str) -> None:
        assert_rejected(decode(value("adjustment", reason=bad)), RejectCode.INVALID_VALUE, "reason")


class TestParserDifferences:
    """Where the two parsers cannot agree: duplicate keys and integers beyond 64 bits."""

    @pytest.mark.parametrize("decode", [decoding.decode_event, decode_alternative.decode_event])
    def test_duplicate_key_last_one_wins(self, decode: Decode) -> None:
        raw = value("sale", qty=7).replace(b'"qty":7', b'"qty":1,"qty":2')
        assert decode(raw) == VALID["sale"][1]

    def test_every_duplicate_key_is_validated(self) -> None:
        raw = value("sale", qty=7).replace(b'"qty":7', b'"qty":0,"qty":2')
        assert_rejected(decoding.decode_event(raw), RejectCode.QTY_OUT_OF_RANGE, "qty")

    def test_two_different_types_are_invalid_value(self) -> None:
        raw = value("sale").replace(b'"type":"sale"', b'"type":"sale","type":"pick"')
        assert_rejected(decoding.decode_event(raw), RejectCode.INVALID_VALUE, "type")

    def test_orjson_keeps_only_the_last_duplicate_key(self) -> None:
        raw = value("sale").replace(b'"type":"sale"', b'"type":"sale","type":"pick"')
        assert isinstance(decode_alternative.decode_event(raw), Pick)

    def test_integer_beyond_64_bits_is_out_of_range(self) -> None:
        raw = value("sale", qty=7).replace(b'"qty":7', b'"qty":99999999999999999999999')
        assert_rejected(decoding.decode_event(raw), RejectCode.QTY_OUT_OF_RANGE, "qty")

    def test_orjson_reads_an_integer_beyond_64_bits_as_a_float(self) -> None:
        raw = value("sale", qty=7).replace(b'"qty":7', b'"qty":99999999999999999999999')
        assert_rejected(decode_alternative.decode_event(raw), RejectCode.WRONG_TYPE, "qty")


FIELD_NAMES = sorted({f for body, _ in VALID.values() for f in body})
json_scalars = (
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"]), max_size=70)
)  # fmt: skip
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)  # fmt: skip
json_objects = st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8), json_values, max_size=10)
valid_bodies = st.sampled_from(sorted(VALID)).map(lambda t: VALID[t][0])


def outcome(result: Event | Rejection) -> object:
    return (result.code, result.field) if isinstance(result, Rejection) else result


@both_decoders
class TestNeverRaises:
    @given(raw=st.binary(max_size=300))
    def test_arbitrary_bytes_give_an_event_or_a_rejection(self, decode: Decode, raw: bytes) -> None:
        assert isinstance(decode(raw), Event | Rejection)

    @given(obj=json_objects, type_name=st.none() | st.sampled_from(sorted(VALID)))
    def test_arbitrary_json_objects_give_an_event_or_a_rejection(
        self, decode: Decode, obj: dict[str, Any], type_name: str | None
    ) -> None:
        if type_name is not None:
            obj["type"] = type_name
        assert isinstance(decode(orjson.dumps(obj)), Event | Rejection)

    @given(body=valid_bodies, field=st.sampled_from(FIELD_NAMES), replacement=json_values)
    def test_one_arbitrary_field_gives_an_event_or_a_rejection(
        self, decode: Decode, body: dict[str, Any], field: str, replacement: object
    ) -> None:
        assert isinstance(decode(orjson.dumps(body | {field: replacement})), Event | Rejection)


@given(body=valid_bodies, field=st.sampled_from([f for f in FIELD_NAMES if f != "type"]), replacement=json_values)
def test_both_decoders_agree_on_any_single_fault(body: dict[str, Any], field: str, replacement: object) -> None:
    raw = orjson.dumps(body | {field: replacement})
    assert outcome(decoding.decode_event(raw)) == outcome(decode_alternative.decode_event(raw))


def reference_micros(text: str) -> int | None:
    """Field-by-field arithmetic, independent of ``datetime.fromisoformat``."""
    year, month, day = (int(part) for part in text[:10].split("-"))
    try:
        days = (datetime(year, month, day) - datetime(1970, 1, 1)).days
    except ValueError:
        return None
    if text[-1] in "Zz":
        clock, offset = text[11:-1], 0
    else:
        clock, offset = text[11:-6], (int(text[-5:-3]) * 60 + int(text[-2:])) * (-1 if text[-6] == "-" else 1)
    hms, _, fraction = clock.partition(".")
    hour, minute, second = (int(part) for part in hms.split(":"))
    seconds = ((days * 24 + hour) * 60 + minute - offset) * 60 + second
    return seconds * 1_000_000 + int((fraction + "000000")[:6])


@given(
    st.from_regex(
        r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)"
        r"(\.[0-9]{1,12})?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])",
        fullmatch=True,
    )
)
def test_any_rfc3339_text_matches_a_field_by_field_reference(text: str) -> None:
    assert decoding.parse_timestamp(text) == reference_micros(text)


# -- contract section 7: the supply events and a dated shipment ----------------------------

ETA = "2026-12-01T08:00:00+01:00"
ETA_US = 1_796_108_400_000_000  # 2026-12-01T07:00:00Z
SUPPLY: dict[str, tuple[dict[str, Any], Event]] = {
    "supply_expected": (
        {"event_id": "e-10", "type": "supply_expected", "sku": "TV-55", "supply_id": "PO-4711/1",
         "node": "dc-east", "qty": 40, "expected_at": ETA, "occurred_at": AT},
        SupplyExpected("e-10", "TV-55", "PO-4711/1", "dc-east", 40, ETA_US, AT_US),
    ),
    "supply_cancelled": (
        {"event_id": "e-11", "type": "supply_cancelled", "sku": "TV-55", "supply_id": "PO-4711/1",
         "occurred_at": AT},
        SupplyCancelled("e-11", "TV-55", "PO-4711/1", AT_US),
    ),
}  # fmt: skip
SUPPLY_REQUIRED = [(t, f) for t, (body, _) in SUPPLY.items() for f in body if f != "type"]
ON_ERP_SUPPLY = TOPIC_TYPES[Topic.ERP_SUPPLY]
decode = decoding.decode_event


def supply(type_name: str, **changes: Any) -> bytes:
    body = SUPPLY[type_name][0] | changes
    return orjson.dumps({k: v for k, v in body.items() if v is not ...})


class TestSupplyEvents:
    @pytest.mark.parametrize("type_name", SUPPLY)
    def test_each_decodes_with_every_field_on_erp_supply(self, type_name: str) -> None:
        assert decode(supply(type_name), ON_ERP_SUPPLY) == SUPPLY[type_name][1]

    def test_erp_supply_takes_only_the_supply_types(self) -> None:
        assert ON_ERP_SUPPLY == {"supply_expected", "supply_cancelled"}
        assert_rejected(decode(value("receipt"), ON_ERP_SUPPLY), RejectCode.WRONG_TOPIC, "type")
        assert_rejected(decode(supply("supply_expected"), TOPIC_TYPES[Topic.ERP_INVENTORY]), RejectCode.WRONG_TOPIC,
                        "type")
        assert_rejected(decode(supply("supply_expected", type="supply_expectd"), ON_ERP_SUPPLY),
                        RejectCode.UNKNOWN_TYPE, "type")

    def test_an_expected_date_in_the_past_is_valid(self) -> None:
        event = decode(supply("supply_expected", expected_at="2020-01-01T00:00:00Z"))
        assert isinstance(event, SupplyExpected) and event.expected_at == 1_577_836_800_000_000

    @pytest.mark.parametrize(("type_name", "field"), SUPPLY_REQUIRED)
    def test_missing_required_field_is_missing_field(self, type_name: str, field: str) -> None:
        assert_rejected(decode(supply(type_name, **{field: ...})), RejectCode.MISSING_FIELD, field)

    @pytest.mark.parametrize(("type_name", "field"), SUPPLY_REQUIRED)
    def test_null_required_field_is_wrong_type(self, type_name: str, field: str) -> None:
        assert_rejected(decode(supply(type_name, **{field: None})), RejectCode.WRONG_TYPE, field)

    @pytest.mark.parametrize("type_name", SUPPLY)
    @pytest.mark.parametrize("bad", ["", "x" * 129, "é" * 129])
    def test_supply_id_not_1_to_128_chars_is_invalid_id(self, type_name: str, bad: str) -> None:
        assert_rejected(decode(supply(type_name, supply_id=bad)), RejectCode.INVALID_ID, "supply_id")

    def test_a_supply_id_of_128_characters_of_any_kind_is_valid(self) -> None:
        assert isinstance(decode(supply("supply_cancelled", supply_id="é" * 128)), SupplyCancelled)

    @pytest.mark.parametrize("bad", [0, -1, 1_000_001, 2**64 - 1])
    def test_qty_outside_1_to_a_million_is_out_of_range(self, bad: int) -> None:
        assert_rejected(decode(supply("supply_expected", qty=bad)), RejectCode.QTY_OUT_OF_RANGE, "qty")

    @pytest.mark.parametrize(("field", "bad"), [("qty", 4.0), ("qty", "4"), ("supply_id", 4711), ("node", 1),
                                                ("expected_at", 1_796_108_400)])
    def test_fields_of_the_wrong_json_type_are_wrong_type(self, field: str, bad: object) -> None:
        assert_rejected(decode(supply("supply_expected", **{field: bad})), RejectCode.WRONG_TYPE, field)

    @pytest.mark.parametrize(("field", "code"), [("sku", RejectCode.INVALID_SKU), ("node", RejectCode.INVALID_NODE)])
    def test_sku_and_node_outside_the_charset_are_refused(self, field: str, code: RejectCode) -> None:
        assert_rejected(decode(supply("supply_expected", **{field: "TV 55"})), code, field)

    @pytest.mark.parametrize("bad", ["2026-12-01", "2026-12-01T08:00:00", "next week", "2026-02-30T00:00:00Z"])
    def test_a_bad_expected_at_is_a_bad_timestamp(self, bad: str) -> None:
        assert_rejected(decode(supply("supply_expected", expected_at=bad)), RejectCode.BAD_TIMESTAMP, "expected_at")

    def test_occurred_at_is_checked_before_expected_at(self) -> None:
        both = supply("supply_expected", expected_at="soon", occurred_at="now")
        assert_rejected(decode(both), RejectCode.BAD_TIMESTAMP, "occurred_at")
        assert_rejected(decode(supply("supply_cancelled", occurred_at="now")), RejectCode.BAD_TIMESTAMP,
                        "occurred_at")


class TestDatedShipment:
    def test_transfer_shipped_may_carry_expected_at(self) -> None:
        event = decode(value("transfer_shipped", expected_at=ETA), TOPIC_TYPES[Topic.INVENTORY_TRANSFERS])
        assert event == TransferShipped("e-transfer_shipped", "TV-55", "TR-1", "dc-east", "store-001", 12, AT_US,
                                        ETA_US)

    def test_null_expected_at_means_none(self) -> None:
        assert decode(value("transfer_shipped", expected_at=None)) == VALID["transfer_shipped"][1]

    @pytest.mark.parametrize("bad", ["tomorrow", "2026-12-01T08:00:00", 1_796_108_400])
    def test_a_bad_expected_at_is_refused(self, bad: object) -> None:
        code = RejectCode.WRONG_TYPE if isinstance(bad, int) else RejectCode.BAD_TIMESTAMP
        assert_rejected(decode(value("transfer_shipped", expected_at=bad)), code, "expected_at")

    @pytest.mark.parametrize("type_name", ["transfer_received", "transfer_cancelled"])
    def test_other_transfer_events_ignore_expected_at(self, type_name: str) -> None:
        assert decode(value(type_name, expected_at="not a time")) == VALID[type_name][1]
