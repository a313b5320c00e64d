import base64
import string
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from availability_api.documents import (
    batch_item,
    decode_cursor,
    encode_cursor,
    format_as_of,
    sku_document,
    snapshot_page,
)
from availability_api.errors import InvalidCursor

FIELDS = {
    "v": "17", "a": "1795428900123456", "r": "3f9c2a1b",
    "c:web": "9", "c:amazon": "3",
    "n:store-001": "5,1,0,1,2,2", "n:dc-east": "12,2,4,0,0,10", "n:aaa-undeclared": "-4,0,0,0,0,0",
}
SKU_CHARS = string.ascii_letters + string.digits + "._:/-"


class TestAsOf:
    @pytest.mark.parametrize(("micros", "text"), [
        (0, "1970-01-01T00:00:00.000Z"),
        (1_795_428_900_123_456, "2026-11-23T10:15:00.123Z"),
        ("1795428900123999", "2026-11-23T10:15:00.123Z"),
        (1_795_428_900_000_999, "2026-11-23T10:15:00.000Z"),
        (951_782_400_000_000, "2000-02-29T00:00:00.000Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
    ])
    def test_rfc3339_utc_millis_floored(self, micros: int | str, text: str) -> None:
        assert format_as_of(micros) == text

    def test_absent_is_null(self) -> None:
        assert format_as_of(None) is None

    @given(st.lists(st.integers(min_value=-62_135_596_800_000_000 + 86_400_000_000,
                                max_value=253_402_300_799_999_999), min_size=1, max_size=50))
    def test_equals_the_calendar_arithmetic_whatever_seconds_were_formatted_before(self, times: list[int]) -> None:
        for micros in times:  # the per-second memo is shared: earlier values must not leak into later ones
            expected = (datetime(1970, 1, 1) + timedelta(microseconds=micros)).isoformat(timespec="milliseconds")
            assert format_as_of(micros) == expected + "Z"


class TestSkuDocument:
    def test_all_channels_and_nodes_sorted(self) -> None:
        doc = sku_document("TV-55", FIELDS)
        assert doc["sku"] == "TV-55"
        assert doc["as_of"] == "2026-11-23T10:15:00.123Z"
        assert doc["rules_version"] == "3f9c2a1b"
        assert doc["channels"] == {"amazon": 3, "web": 9}
        assert list(doc["channels"]) == ["amazon", "web"]  # type: ignore[call-overload]
        assert [n["node"] for n in doc["nodes"]] == ["aaa-undeclared", "dc-east", "store-001"]  # type: ignore[attr-defined]
        assert doc["nodes"][2] == {  # type: ignore[index]
            "node": "store-001", "on_hand": 5, "reserved": 1, "in_transit": 0, "unsellable": 1,
            "safety_stock": 2, "atp": 2,
        }

    def test_one_channel_keeps_only_feeding_nodes(self) -> None:
        doc = sku_document("TV-55", FIELDS, "amazon", frozenset({"dc-east", "not-stocked"}))
        assert doc["channels"] == {"amazon": 3}
        assert [n["node"] for n in doc["nodes"]] == ["dc-east"]  # type: ignore[attr-defined]

    def test_channel_without_a_field_is_zero(self) -> None:
        assert sku_document("TV-55", FIELDS, "store_pickup", frozenset())["channels"] == {"store_pickup": 0}

    def test_missing_as_of_and_rules_version_are_null(self) -> None:
        doc = sku_document("X", {"v": "1", "n:a": "1,0,0,0,0,1"})
        assert doc["as_of"] is None and doc["rules_version"] is None and doc["channels"] == {}


class TestBatchItem:
    def test_unknown_sku_has_zeros_for_every_channel(self) -> None:
        item = batch_item("NOPE", {}, None, None, ["amazon", "web"], "3f9c2a1b")
        assert item == {"sku": "NOPE", "known": False, "as_of": None, "rules_version": "3f9c2a1b",
                        "channels": {"amazon": 0, "web": 0}, "nodes": []}

    def test_unknown_sku_for_one_channel(self) -> None:
        assert batch_item("NOPE", {}, "web", frozenset(), ["amazon", "web"], "v")["channels"] == {"web": 0}

    def test_known_sku_is_the_single_shape_plus_known(self) -> None:
        item = batch_item("TV-55", FIELDS, None, None, ["amazon", "web"], "other")
        assert item == {"known": True, **sku_document("TV-55", FIELDS)}
        assert list(item)[:2] == ["sku", "known"]


class TestSnapshotPage:
    def test_missing_values_are_zero_and_without_a_cursor_no_delta_cursor(self) -> None:
        page = snapshot_page("web", "v1", ["A", "B"], ["4", None], "Qg")
        assert page == {"channel": "web", "rules_version": "v1",
                        "items": [{"sku": "A", "available": 4}, {"sku": "B", "available": 0}],
                        "next_cursor": "Qg", "delta_cursor": None, "pending_deltas": 0}


class TestCursor:
    @given(st.text(SKU_CHARS, min_size=1, max_size=64))
    def test_round_trips_every_valid_sku(self, sku: str) -> None:
        cursor = encode_cursor(sku)
        assert "=" not in cursor and "/" not in cursor and "+" not in cursor
        assert decode_cursor(cursor) == sku

    @pytest.mark.parametrize("cursor", [
        "", "!!", "a", "VFYtNTU=", "VFYtNTV",  # bad charset, impossible length, padding, non-canonical bits
        base64.urlsafe_b64encode(b"bad sku").decode().rstrip("="),
        base64.urlsafe_b64encode("caf\u00e9".encode()).decode().rstrip("="),
        base64.urlsafe_b64encode(b"x" * 65).decode().rstrip("="),
    ])
    def test_rejects_what_it_could_not_have_made(self, cursor: str) -> None:
        with pytest.raises(InvalidCursor) as rejected:
            decode_cursor(cursor)
        assert rejected.value.field == "cursor"
        assert rejected.value.status_code == 422
